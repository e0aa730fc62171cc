// Fuzz-style tests: random bytes, random text and random id sequences through
// encode, decode and the incremental detokenizer. Nothing may crash; every
// output is valid UTF-8; streamed pieces concatenate to the whole decode; ids
// are in range; byte-level tokenizers round-trip any valid UTF-8 text.
// Seeded, so failures reproduce; sized to stay fast under sanitizers.
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/unicode_util.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"
#include "tests/tokenizer/inline_tokenizers.h"

namespace hybridserve::engine::tokenizer {
namespace {

constexpr int kStrings = 150;
constexpr int kSequences = 150;

struct Case {
  std::string name;
  std::unique_ptr<Tokenizer> tokenizer;
  bool byte_level_round_trip;  // decode(encode(s)) == s for every valid UTF-8 s
};

std::vector<Case> MakeTokenizers() {
  std::vector<Case> cases;
  auto add = [&](std::string name, absl::StatusOr<std::unique_ptr<Tokenizer>> t, bool rt) {
    EXPECT_TRUE(t.ok()) << name << ": " << t.status();
    if (t.ok()) cases.push_back(Case{std::move(name), *std::move(t), rt});
  };
  add("inline_byte_level", Tokenizer::FromJson(tokenizer_testing::ByteLevelTokenizerJson()),
      true);
  add("inline_llama2_style",
      Tokenizer::FromJson(tokenizer_testing::Llama2StyleTokenizerJson()), false);
  add("inline_llama2_style_no_bytes",
      Tokenizer::FromJson(tokenizer_testing::Llama2StyleTokenizerJson(false)), false);
  const auto dir = testing::SharedTestdataDir() / "tokenizers";
  for (const char* name : {"llama3", "qwen3", "llama2"}) {
    if (std::filesystem::exists(dir / name / "tokenizer.json")) {
      // Qwen3 normalizes to NFC, so only Llama-3 round-trips every string.
      add(name, Tokenizer::FromFile(dir / name), std::string(name) == "llama3");
    }
  }
  return cases;
}

// Built once per test binary (loading real files is slow under sanitizers).
std::vector<Case>& Tokenizers() {
  static auto* cases = new std::vector<Case>(MakeTokenizers());
  return *cases;
}

std::string RandomBytes(std::mt19937& rng) {
  std::string s(rng() % 64, '\0');
  for (char& c : s) c = static_cast<char>(rng() % 256);
  return s;
}

// Random valid UTF-8: ASCII, Latin, CJK, emoji, combining marks, ZWJ, spaces,
// and the characters of special tokens.
std::string RandomText(std::mt19937& rng) {
  static const char32_t kPool[] = {
      'a', 'Z', ' ', ' ', '\n', '\t', '\r', '0', '7', '<', '|', '>', '/', 's', '_', '\'',
      0xE9, 0x301, 0x2581, 0x120, 0x4E2D, 0x6587, 0xAC00, 0x627, 0x5D0, 0x1F642, 0x1F469,
      0x200D, 0x1F4BB, 0xFE0F, 0x3000, 0xA0, 0x180E, 0xFFFD, 0x10FFFF, 0x0};
  std::string s;
  const int n = static_cast<int>(rng() % 48);
  for (int i = 0; i < n; ++i) {
    if (rng() % 8 == 0) {
      AppendUtf8(static_cast<char32_t>(0x20 + rng() % 0x2FFE0), &s);  // may hit surrogates:
      if (!ValidateUtf8(s).ok()) s.resize(s.size() - 3);             // drop those
    } else {
      AppendUtf8(kPool[rng() % std::size(kPool)], &s);
    }
  }
  if (rng() % 4 == 0) s += rng() % 2 ? "<|im_start|>" : "<s>";
  return s;
}

std::string StreamDecode(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip) {
  IncrementalDetokenizer d(t, skip);
  std::string all;
  for (int32_t id : ids) {
    absl::StatusOr<std::string> piece = d.Step(id);
    EXPECT_TRUE(piece.ok()) << piece.status();
    if (!piece.ok()) continue;
    EXPECT_TRUE(ValidateUtf8(*piece).ok()) << "piece splits a character";
    all += *piece;
  }
  std::string rest;
  d.Finish(&rest);
  EXPECT_TRUE(ValidateUtf8(rest).ok());
  return all + rest;
}

TEST(TokenizerFuzzTest, RandomBytesAndTextThroughEncodeAndDecode) {
  std::mt19937 rng(20240315);
  for (Case& c : Tokenizers()) {
    SCOPED_TRACE(c.name);
    const Tokenizer& t = *c.tokenizer;
    for (int i = 0; i < kStrings; ++i) {
      const bool bytes = i % 3 == 0;
      const std::string s = bytes ? RandomBytes(rng) : RandomText(rng);
      absl::StatusOr<std::vector<int32_t>> ids = t.Encode(s, i % 2 == 0);
      if (!ValidateUtf8(s).ok()) {
        EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
        continue;
      }
      ASSERT_TRUE(ids.ok()) << ids.status();
      for (int32_t id : *ids) ASSERT_TRUE(id >= 0 && id < t.vocab_size()) << id;
      for (bool skip : {false, true}) {
        absl::StatusOr<std::string> text = t.Decode(*ids, skip);
        ASSERT_TRUE(text.ok()) << text.status();
        EXPECT_TRUE(ValidateUtf8(*text).ok());
        EXPECT_EQ(StreamDecode(t, *ids, skip), *text);
      }
      if (c.byte_level_round_trip && i % 2 == 1) {
        EXPECT_EQ(*t.Decode(*ids, false), s);
      }
    }
  }
}

TEST(TokenizerFuzzTest, RandomIdSequencesDecodeToValidUtf8) {
  std::mt19937 rng(4242);
  for (Case& c : Tokenizers()) {
    SCOPED_TRACE(c.name);
    const Tokenizer& t = *c.tokenizer;
    std::vector<int32_t> valid;
    for (int32_t id = 0; id < t.vocab_size(); ++id) {
      if (t.IdToToken(id) != nullptr) valid.push_back(id);
    }
    // Byte-like tokens (single byte-level characters, <0xAB>) are drawn often,
    // so that invalid UTF-8 is common.
    std::vector<int32_t> bytes;
    for (int32_t id : valid) {
      const std::string& tok = *t.IdToToken(id);
      if (tok.size() <= 2 || (tok.size() == 6 && tok.rfind("<0x", 0) == 0)) bytes.push_back(id);
    }
    for (int i = 0; i < kSequences; ++i) {
      std::vector<int32_t> ids(rng() % 40);
      for (int32_t& id : ids) {
        id = (!bytes.empty() && rng() % 2) ? bytes[rng() % bytes.size()]
                                           : valid[rng() % valid.size()];
      }
      for (bool skip : {false, true}) {
        absl::StatusOr<std::string> text = t.Decode(ids, skip);
        ASSERT_TRUE(text.ok()) << text.status();
        EXPECT_TRUE(ValidateUtf8(*text).ok());
        EXPECT_EQ(StreamDecode(t, ids, skip), *text);
      }
    }
    // Ids outside the vocabulary are errors, never crashes.
    for (int32_t bad : {-1, t.vocab_size(), t.vocab_size() + 1000, INT32_MAX, INT32_MIN}) {
      EXPECT_FALSE(t.Decode({bad}, false).ok());
      IncrementalDetokenizer d(t, false);
      EXPECT_FALSE(d.Step(bad).ok());
    }
  }
}

}  // namespace
}  // namespace hybridserve::engine::tokenizer
