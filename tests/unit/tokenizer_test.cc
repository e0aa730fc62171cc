// Unit tests of the tokenizer's parts on small tokenizers built in code. The
// comparison with Hugging Face `tokenizers` on real and trained tokenizers is
// tests/tokenizer/reference_test.py (ctest tokenizer_reference_*).
#include "engine/tokenizer/tokenizer.h"

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/decoders.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/pre_tokenizers.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/unicode_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/testing/test_env.h"
#include "tests/tokenizer/inline_tokenizers.h"

namespace hybridserve::engine::tokenizer {
namespace {

using ::hybridserve::tokenizer_testing::AddedTokenJson;
using ::hybridserve::tokenizer_testing::ByteLevelTokenizerJson;
using ::hybridserve::tokenizer_testing::Llama2StyleTokenizerJson;
using ::hybridserve::tokenizer_testing::MergesJson;
using ::hybridserve::tokenizer_testing::VocabJson;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kMeta = "\xE2\x96\x81";  // ▁

std::unique_ptr<Tokenizer> Load(const std::string& json, TokenizerOptions options = {}) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJson(json, "", options);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

// A character-level BPE with the given vocabulary, merges and options.
std::string CharBpeJson(const std::vector<std::string>& vocab,
                        const std::vector<std::pair<std::string, std::string>>& merges,
                        const std::string& model_extra = "",
                        const std::string& added = "") {
  return "{\"added_tokens\":[" + added + "],\"model\":{\"type\":\"BPE\",\"vocab\":" +
         VocabJson(vocab) + ",\"merges\":" + MergesJson(merges, false) + model_extra + "}}";
}

std::vector<int32_t> Encode(const Tokenizer& t, const std::string& s, bool special = false) {
  absl::StatusOr<std::vector<int32_t>> ids = t.Encode(s, special);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

std::vector<std::string> Tokens(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(*t.IdToToken(id));
  return out;
}

int32_t Id(const Tokenizer& t, const std::string& token) { return *t.TokenToId(token); }

std::string ByteLevelForm(const std::string& text) {
  std::string out;
  AppendByteLevel(text, &out);
  return out;
}

TEST(TokenizerBpeTest, BothMergeFormatsGiveTheSameIds) {
  auto strings = Load(ByteLevelTokenizerJson(/*pair_merges=*/false));
  auto pairs = Load(ByteLevelTokenizerJson(/*pair_merges=*/true));
  ASSERT_TRUE(strings && pairs);
  for (const std::string s : {"hello there", "heat the onion", "  x  "}) {
    EXPECT_EQ(Encode(*strings, s), Encode(*pairs, s)) << s;
  }
  EXPECT_THAT(Tokens(*strings, Encode(*strings, "heat")), ElementsAre("heat"));
}

TEST(TokenizerBpeTest, LowestRankFirstAndLeftmostOnTies) {
  auto t = Load(CharBpeJson({"a", "b", "c", "ab", "bc", "aa"},
                            {{"b", "c"}, {"a", "b"}, {"a", "a"}}));
  ASSERT_TRUE(t);
  EXPECT_THAT(Tokens(*t, Encode(*t, "abc")), ElementsAre("a", "bc"));
  EXPECT_THAT(Tokens(*t, Encode(*t, "aaa")), ElementsAre("aa", "a"));
  EXPECT_THAT(Tokens(*t, Encode(*t, "aab")), ElementsAre("a", "ab"));  // rank 1 < rank 2
}

TEST(TokenizerBpeTest, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  const std::vector<std::string> vocab = {"a", "b", "c", "ab", "abc"};
  auto with = Load(CharBpeJson(vocab, {{"a", "b"}}, ",\"ignore_merges\":true"));
  auto without = Load(CharBpeJson(vocab, {{"a", "b"}}, ",\"ignore_merges\":false"));
  ASSERT_TRUE(with && without);
  EXPECT_THAT(Tokens(*with, Encode(*with, "abc")), ElementsAre("abc"));
  EXPECT_THAT(Tokens(*without, Encode(*without, "abc")), ElementsAre("ab", "c"));
}

TEST(TokenizerBpeTest, ByteFallbackAndFusedUnk) {
  auto t = Load(Llama2StyleTokenizerJson(/*with_byte_tokens=*/true));
  ASSERT_TRUE(t);
  EXPECT_THAT(Tokens(*t, Encode(*t, "hello \xC3\xA9")),
              ElementsAre(kMeta + "he", "llo", kMeta, "<0xC3>", "<0xA9>"));
  auto no_bytes = Load(Llama2StyleTokenizerJson(/*with_byte_tokens=*/false));
  ASSERT_TRUE(no_bytes);
  // Unknown characters fuse into one <unk>.
  EXPECT_THAT(Tokens(*no_bytes, Encode(*no_bytes, "a\xC3\xA9\xC3\xA9 b")),
              ElementsAre(kMeta + "a", "<unk>", kMeta + "b"));
}

TEST(TokenizerBpeTest, ContinuingSubwordPrefixAndEndOfWordSuffix) {
  auto t = Load(CharBpeJson({"a", "##b", "##c</w>", "a##b", "ab"}, {{"a", "##b"}},
                            ",\"continuing_subword_prefix\":\"##\",\"end_of_word_suffix\":\"</w>\""));
  ASSERT_TRUE(t);
  // The merge of "a" and "##b" is the token "ab" (the prefix is dropped).
  EXPECT_THAT(Tokens(*t, Encode(*t, "abc")), ElementsAre("ab", "##c</w>"));
}

TEST(TokenizerAddedTest, SpecialTokensAreSplitBeforeNormalization) {
  auto t = Load(Llama2StyleTokenizerJson());
  ASSERT_TRUE(t);
  // "<s>" is matched in the raw text; each remaining piece is normalized on its
  // own (and so gets its own "▁" prefix).
  EXPECT_THAT(Tokens(*t, Encode(*t, "<s>hello</s>a", /*special=*/true)),
              ElementsAre("<s>", "<s>", kMeta + "he", "llo", "</s>", kMeta + "a"));
  const std::vector<int32_t> ids = Encode(*t, "hello</s>");
  EXPECT_EQ(*t->Decode(ids, /*skip_special_tokens=*/false), "hello</s>");
  EXPECT_EQ(*t->Decode(ids, /*skip_special_tokens=*/true), "hello");
}

TEST(TokenizerAddedTest, LstripRstripAndSingleWord) {
  rapidjson::Document doc;
  const std::string base = ByteLevelTokenizerJson();
  doc.Parse(base.data(), base.size());
  const int n = static_cast<int>(doc["model"]["vocab"].MemberCount());
  const std::string added =
      AddedTokenJson(n, "<mask>", false, /*lstrip=*/true, /*rstrip=*/false,
                     /*single_word=*/true) + "," +
      AddedTokenJson(n + 1, "[R]", false, /*lstrip=*/false, /*rstrip=*/true);
  std::string json = base;
  json.replace(json.find("\"added_tokens\":[") + 16, 0, added + ",");
  auto t = Load(json);
  ASSERT_TRUE(t);
  const int32_t mask = Id(*t, "<mask>");
  const int32_t r = Id(*t, "[R]");
  // lstrip: the token takes the spaces on its left.
  std::vector<int32_t> ids = Encode(*t, "ab  <mask> cd");
  EXPECT_EQ(ids[1], mask);
  EXPECT_EQ(*t->Decode(ids, false), "ab<mask> cd");
  // single_word: not matched inside a word.
  for (int32_t id : Encode(*t, "ab<mask>cd")) EXPECT_NE(id, mask);
  // rstrip: the token takes the spaces on its right.
  EXPECT_EQ(*t->Decode(Encode(*t, "x[R]   y"), false), "x[R]y");
  ids = Encode(*t, "x[R]   y");
  EXPECT_EQ(ids[1], r);
}

struct SplitCase {
  SplitBehavior behavior;
  bool invert;
  std::vector<std::string> want;
};

TEST(TokenizerSplitTest, Behaviors) {
  const std::vector<SplitCase> cases = {
      {SplitBehavior::kRemoved, false, {"a", "b", "c"}},
      {SplitBehavior::kIsolated, false, {"a", "-", "b", "-", "-", "c"}},
      {SplitBehavior::kMergedWithPrevious, false, {"a-", "b-", "-", "c"}},
      {SplitBehavior::kMergedWithNext, false, {"a", "-b", "-", "-c"}},
      {SplitBehavior::kContiguous, false, {"a", "-", "b", "--", "c"}},
      {SplitBehavior::kRemoved, true, {"-", "-", "-"}},
      {SplitBehavior::kMergedWithPrevious, true, {"a", "-b", "-", "-c"}},
  };
  absl::StatusOr<Pattern> dash = Pattern::Literal("-");
  ASSERT_TRUE(dash.ok());
  for (const SplitCase& c : cases) {
    std::vector<PatternSpan> spans = *dash->FindMatches("a-b--c");
    if (c.invert) {
      for (PatternSpan& s : spans) s.is_match = !s.is_match;
    }
    std::vector<Piece> out;
    SplitBySpans(Piece{"a-b--c", true}, spans, c.behavior, &out);
    std::vector<std::string> got;
    for (const Piece& p : out) got.push_back(p.text);
    EXPECT_EQ(got, c.want) << static_cast<int>(c.behavior) << " invert=" << c.invert;
  }
}

std::vector<std::string> PreTokenize(const std::string& json, const std::string& text,
                                     bool at_origin = true) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  absl::StatusOr<PreTokenizer> p = PreTokenizer::FromJson(doc);
  EXPECT_TRUE(p.ok()) << p.status();
  std::vector<Piece> pieces = {Piece{text, at_origin}};
  EXPECT_TRUE(p->Apply(&pieces).ok());
  std::vector<std::string> out;
  for (const Piece& piece : pieces) out.push_back(piece.text);
  return out;
}

TEST(TokenizerPreTokenizerTest, MetaspacePrependSchemesAndSplit) {
  const std::string always = R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true})";
  const std::string first = R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true})";
  const std::string never = R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"never","split":false})";
  EXPECT_THAT(PreTokenize(always, "hello  world"),
              ElementsAre(kMeta + "hello", kMeta, kMeta + "world"));
  EXPECT_THAT(PreTokenize(first, "hello world", /*at_origin=*/false),
              ElementsAre("hello", kMeta + "world"));
  EXPECT_THAT(PreTokenize(first, "hello world", /*at_origin=*/true),
              ElementsAre(kMeta + "hello", kMeta + "world"));
  EXPECT_THAT(PreTokenize(never, "hello world"), ElementsAre("hello" + kMeta + "world"));
}

TEST(TokenizerPreTokenizerTest, ByteLevelRegexAndDigits) {
  EXPECT_THAT(PreTokenize(R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":true})",
                          "I'm  ok 42"),
              ElementsAre("I", "'m", "Ġ", "Ġok", "Ġ42"));
  EXPECT_THAT(PreTokenize(R"({"type":"ByteLevel","add_prefix_space":true,"use_regex":false})",
                          "a b"),
              ElementsAre("ĠaĠb"));
  EXPECT_THAT(PreTokenize(R"({"type":"Digits","individual_digits":true})", "a12b"),
              ElementsAre("a", "1", "2", "b"));
  EXPECT_THAT(PreTokenize(R"({"type":"Digits","individual_digits":false})", "a12b3"),
              ElementsAre("a", "12", "b", "3"));
}

std::string DecodeWith(const std::string& json, const std::vector<std::string>& tokens) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  absl::StatusOr<Decoder> d = Decoder::FromJson(json.empty() ? nullptr : &doc);
  EXPECT_TRUE(d.ok()) << d.status();
  std::vector<std::string_view> views(tokens.begin(), tokens.end());
  return d->Decode(views);
}

const char kLlama2Decoder[] =
    R"({"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},)"
    R"({"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]})";

TEST(TokenizerDecoderTest, ByteLevelDecodesLossily) {
  const std::string bl = R"({"type":"ByteLevel"})";
  EXPECT_EQ(DecodeWith(bl, {"Ġhello", ByteLevelForm("\xF0\x9F"), ByteLevelForm("\x98\x80")}),
            " hello\xF0\x9F\x98\x80");
  // One U+FFFD per maximal ill-formed subpart: E2 82 is one, FF another.
  EXPECT_EQ(DecodeWith(bl, {ByteLevelForm("\xE2\x82"), "A", ByteLevelForm("\xFF")}),
            "\xEF\xBF\xBD" "A" "\xEF\xBF\xBD");
  // A token with a character outside the byte table contributes its own UTF-8.
  EXPECT_EQ(DecodeWith(bl, {"<|eot|>", kMeta}), "<|eot|>" + kMeta);
}

TEST(TokenizerDecoderTest, ByteFallbackFuseStrip) {
  EXPECT_EQ(DecodeWith(kLlama2Decoder, {"<0xE2>", "<0x82>", "<0xAC>", kMeta + "a"}),
            "\xE2\x82\xAC a");
  // An invalid run of byte tokens gives one U+FFFD per byte.
  EXPECT_EQ(DecodeWith(kLlama2Decoder, {"<0xE2>", "<0x82>", "b"}),
            "\xEF\xBF\xBD\xEF\xBF\xBD" "b");
  // Strip after Fuse removes only the very first space.
  EXPECT_EQ(DecodeWith(kLlama2Decoder, {kMeta + "a", kMeta + kMeta + "b"}), "a  b");
}

TEST(TokenizerDecoderTest, MetaspaceDropsReplacementsOfTheFirstTokenOnly) {
  const std::string always = R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"always"})";
  const std::string never = R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"never"})";
  EXPECT_EQ(DecodeWith(always, {kMeta + "a" + kMeta + "b", kMeta + "c"}), "ab c");
  EXPECT_EQ(DecodeWith(never, {kMeta + "a", kMeta + "c"}), " a c");
  EXPECT_EQ(DecodeWith("", {"a", "b"}), "a b");  // no decoder: joined by spaces
}

TEST(IncrementalDetokenizerTest, NeverSplitsACharacter) {
  auto t = Load(ByteLevelTokenizerJson());
  ASSERT_TRUE(t);
  IncrementalDetokenizer d(*t, /*skip_special_tokens=*/false);
  EXPECT_EQ(*d.Step(Id(*t, ByteLevelForm("a"))), "a");
  EXPECT_EQ(*d.Step(Id(*t, ByteLevelForm("\xE2"))), "");
  EXPECT_EQ(*d.Step(Id(*t, ByteLevelForm("\x82"))), "");
  EXPECT_EQ(*d.Step(Id(*t, ByteLevelForm("\xAC"))), "\xE2\x82\xAC");
  // A byte that can never start valid UTF-8 comes out at once as U+FFFD.
  EXPECT_EQ(*d.Step(Id(*t, ByteLevelForm("\xFF"))), "\xEF\xBF\xBD");
  // An incomplete sequence at the end becomes U+FFFD at Finish.
  EXPECT_EQ(*d.Step(Id(*t, ByteLevelForm("\xF0"))), "");
  std::string rest;
  d.Finish(&rest);
  EXPECT_EQ(rest, "\xEF\xBF\xBD");
  EXPECT_FALSE(d.Step(0).ok());  // after Finish
}

TEST(IncrementalDetokenizerTest, ByteFallbackRunIsHeldUntilDecided) {
  auto t = Load(Llama2StyleTokenizerJson());
  ASSERT_TRUE(t);
  IncrementalDetokenizer d(*t, /*skip_special_tokens=*/true);
  EXPECT_EQ(*d.Step(Id(*t, "<s>")), "");
  EXPECT_EQ(*d.Step(Id(*t, kMeta + "he")), "he");  // the first space is stripped
  EXPECT_EQ(*d.Step(Id(*t, "<0xE2>")), "");
  EXPECT_EQ(*d.Step(Id(*t, "<0x82>")), "");
  EXPECT_EQ(*d.Step(Id(*t, "<0xAC>")), "");
  EXPECT_EQ(*d.Step(Id(*t, kMeta + "a")), "\xE2\x82\xAC a");
  EXPECT_EQ(*d.Step(Id(*t, "<0xFF>")), "");
  std::string rest;
  d.Finish(&rest);
  EXPECT_EQ(rest, "\xEF\xBF\xBD");
  EXPECT_FALSE(d.Step(-1).ok());
}

TEST(IncrementalDetokenizerTest, UnknownIdIsAnErrorAndChangesNothing) {
  auto t = Load(ByteLevelTokenizerJson());
  ASSERT_TRUE(t);
  IncrementalDetokenizer d(*t, false);
  absl::StatusOr<std::string> bad = d.Step(t->vocab_size());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.num_ids(), 0);
}

TEST(TokenizerLimitsTest, InputLongerThanTheLimitIsRejected) {
  TokenizerOptions options;
  options.max_input_bytes = 100;
  auto t = Load(ByteLevelTokenizerJson(), options);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->Encode(std::string(100, 'a'), false).ok());
  absl::StatusOr<std::vector<int32_t>> too_long = t->Encode(std::string(101, 'a'), false);
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_long.status().message()), HasSubstr("max_input_bytes"));
}

TEST(TokenizerLimitsTest, InvalidUtf8AndUnknownIdsAreRejected) {
  auto t = Load(ByteLevelTokenizerJson());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->Encode("ok\xC3(", false).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t->Decode({1, t->vocab_size()}, false).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t->Decode({-5}, false).status().code(), absl::StatusCode::kInvalidArgument);
}

// A generous bound, not a benchmark (tools/tokenizer_bench.cc measures): merging
// is O(n log n), so a 1 MB word takes a fraction of a second in an optimized
// build. Unoptimized and sanitizer builds check memory safety, not speed: they
// encode a quarter of the size (several seconds for 1 MB there).
#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__)
constexpr size_t kNoSpaceBytes = size_t{1} << 20;
#else
constexpr size_t kNoSpaceBytes = size_t{256} << 10;
#endif
constexpr double kNoSpaceBoundSeconds = 10.0;

// Real tokenizers, loaded once per test binary (loading is slow under sanitizers).
const Tokenizer* RealTokenizer(const std::string& name) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  auto it = cache->find(name);
  if (it != cache->end()) return it->second.get();
  const auto path = testing::SharedTestdataDir() / "tokenizers" / name;
  if (!std::filesystem::exists(path / "tokenizer.json")) return nullptr;
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromFile(path);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return nullptr;
  std::unique_ptr<Tokenizer>& slot = (*cache)[name];
  slot = *std::move(t);
  return slot.get();
}

double SecondsToEncode(const Tokenizer& t, const std::string& text) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<int32_t>> ids = t.Encode(text, false);
  const std::chrono::duration<double> d = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(ids.ok()) << ids.status();
  EXPECT_FALSE(ids->empty());
  return d.count();
}

std::string RandomLetters(size_t n) {
  std::mt19937 rng(7);
  std::string s(n, 'a');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

TEST(TokenizerLimitsTest, OneMegabyteWithoutSpacesIsNotQuadratic) {
  auto t = Load(ByteLevelTokenizerJson());
  ASSERT_TRUE(t);
  EXPECT_LT(SecondsToEncode(*t, RandomLetters(kNoSpaceBytes)), kNoSpaceBoundSeconds);
  EXPECT_LT(SecondsToEncode(*t, std::string(kNoSpaceBytes, 'a')), kNoSpaceBoundSeconds);
  auto llama2 = Load(Llama2StyleTokenizerJson());  // no pre-tokenizer: one word
  ASSERT_TRUE(llama2);
  EXPECT_LT(SecondsToEncode(*llama2, RandomLetters(kNoSpaceBytes)), kNoSpaceBoundSeconds);
}

TEST(TokenizerLimitsTest, OneMegabyteWithoutSpacesOnRealTokenizers) {
  const Tokenizer* llama3 = RealTokenizer("llama3");
  if (llama3 == nullptr) {
    GTEST_SKIP() << "no real tokenizer files under " << testing::SharedTestdataDir();
  }
  EXPECT_LT(SecondsToEncode(*llama3, RandomLetters(kNoSpaceBytes)), kNoSpaceBoundSeconds);
}

TEST(TokenizerLoadTest, ErrorsNameTheProblem) {
  auto status_of = [](const std::string& json) { return Tokenizer::FromJson(json).status(); };
  EXPECT_EQ(status_of("{not json").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status_of(R"({"model":{"type":"WordPiece","vocab":{}}})").code(),
            absl::StatusCode::kUnimplemented);
  absl::Status bad_merge = status_of(CharBpeJson({"a", "b"}, {{"a", "b"}}));
  EXPECT_EQ(bad_merge.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_merge.message()), HasSubstr("merges[0]"));
  std::string json = CharBpeJson({"a"}, {});
  json.insert(1, R"("pre_tokenizer":{"type":"BertPreTokenizer"},)");
  EXPECT_EQ(status_of(json).code(), absl::StatusCode::kUnimplemented);
  json = CharBpeJson({"a"}, {});
  json.insert(1, R"("pre_tokenizer":{"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated","invert":false},)");
  EXPECT_EQ(status_of(json).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Tokenizer::FromFile("/nonexistent/tokenizer.json").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TokenizerLoadTest, RealFilesAndTheirConfig) {
  const Tokenizer* llama3 = RealTokenizer("llama3");
  const Tokenizer* llama2 = RealTokenizer("llama2");
  const Tokenizer* qwen3 = RealTokenizer("qwen3");
  if (llama3 == nullptr || llama2 == nullptr || qwen3 == nullptr) {
    GTEST_SKIP() << "no real tokenizer files under " << testing::SharedTestdataDir();
  }
  EXPECT_EQ(llama3->vocab_size(), 128256);
  EXPECT_EQ(llama3->config().bos_token_id, 128000);
  EXPECT_EQ(llama3->config().eos_token_id, 128001);
  EXPECT_EQ(*llama3->Encode("Hello world", false), (std::vector<int32_t>{9906, 1917}));
  EXPECT_EQ(llama2->config().add_bos_token, true);
  EXPECT_EQ(llama2->config().bos_token_id, 1);
  EXPECT_EQ(*llama2->Encode("Hello", true), (std::vector<int32_t>{1, 22557}));
  EXPECT_EQ(qwen3->config().eos_token_id, 151645);
  EXPECT_FALSE(qwen3->config().bos_token_id.has_value());
  // A path to the file itself works as well as its folder.
  absl::StatusOr<std::unique_ptr<Tokenizer>> by_file = Tokenizer::FromFile(
      testing::SharedTestdataDir() / "tokenizers" / "llama2" / "tokenizer.json");
  ASSERT_TRUE(by_file.ok()) << by_file.status();
  EXPECT_EQ((*by_file)->config().bos_token_id, 1);
}

TEST(TokenizerRegexTest, OnigurumaClassesAndEmptyMatches) {
  // U+180E is not White_Space (Oniguruma) though PCRE2's own \s matches it.
  absl::StatusOr<Pattern> space = Pattern::Regex(R"(\s+)");
  ASSERT_TRUE(space.ok());
  std::vector<PatternSpan> spans = *space->FindMatches("a\xE1\xA0\x8E" "b c");
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[1].begin, 5u);
  EXPECT_TRUE(spans[1].is_match);
  // \w inside and outside classes; superscript two is not a word character.
  absl::StatusOr<Pattern> word = Pattern::Regex(R"(\w+|[^\w\s]+)");
  ASSERT_TRUE(word.ok());
  EXPECT_EQ(word->FindMatches("x\xC2\xB2")->size(), 2u);
  // An empty match right after the previous match is skipped (onig's rule).
  absl::StatusOr<Pattern> empty = Pattern::Regex("a*");
  ASSERT_TRUE(empty.ok());
  std::vector<PatternSpan> e = *empty->FindMatches("baab");
  std::vector<std::pair<size_t, size_t>> got;
  for (const PatternSpan& s : e) got.emplace_back(s.begin, s.end);
  EXPECT_EQ(got, (std::vector<std::pair<size_t, size_t>>{{0, 0}, {0, 1}, {1, 3}, {3, 4}, {4, 4}}));
}

TEST(TokenizerUnicodeTest, LossyDecodingMatchesRust) {
  auto lossy = [](const std::string& bytes) {
    std::string out;
    AppendUtf8Lossy(bytes, /*final=*/true, &out);
    return out;
  };
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(lossy("\xF0\x80"), r + r);                  // F0 80: 80 is not allowed after F0
  EXPECT_EQ(lossy("\xE2\x82" "A"), r + "A");            // one maximal subpart
  EXPECT_EQ(lossy("\xED\xA0\x80"), r + r + r);          // surrogates are ill-formed
  EXPECT_EQ(lossy("\xF4\x90\x80\x80"), r + r + r + r);  // beyond U+10FFFF
  std::string out;
  EXPECT_EQ(AppendUtf8Lossy("ab\xF0\x9F\x98", /*final=*/false, &out), 2u);
  EXPECT_EQ(out, "ab");
}

}  // namespace
}  // namespace hybridserve::engine::tokenizer
