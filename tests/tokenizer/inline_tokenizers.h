// Small tokenizer.json texts built in code, for the C++ tokenizer tests (they
// need no files and no Python). Header-only.
#ifndef HYBRIDSERVE_TESTS_TOKENIZER_INLINE_TOKENIZERS_H_
#define HYBRIDSERVE_TESTS_TOKENIZER_INLINE_TOKENIZERS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/tokenizer/byte_level.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace hybridserve::tokenizer_testing {

inline std::string JsonQuote(const std::string& s) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return buf.GetString();
}

// {"a": 0, ...} from tokens in id order.
inline std::string VocabJson(const std::vector<std::string>& tokens) {
  std::string out = "{";
  for (size_t i = 0; i < tokens.size(); ++i) {
    out += (i ? "," : "") + JsonQuote(tokens[i]) + ":" + std::to_string(i);
  }
  return out + "}";
}

// ["a b", ...] (string format) or [["a","b"], ...] (pair format).
inline std::string MergesJson(const std::vector<std::pair<std::string, std::string>>& merges,
                              bool pairs) {
  std::string out = "[";
  for (size_t i = 0; i < merges.size(); ++i) {
    out += i ? "," : "";
    out += pairs ? "[" + JsonQuote(merges[i].first) + "," + JsonQuote(merges[i].second) + "]"
                 : JsonQuote(merges[i].first + " " + merges[i].second);
  }
  return out + "]";
}

inline std::string AddedTokenJson(int id, const std::string& content, bool special,
                                  bool lstrip = false, bool rstrip = false,
                                  bool single_word = false, bool normalized = false) {
  return absl::StrFormat(
      R"({"id":%d,"content":%s,"single_word":%s,"lstrip":%s,"rstrip":%s,"normalized":%s,"special":%s})",
      id, JsonQuote(content), single_word ? "true" : "false", lstrip ? "true" : "false",
      rstrip ? "true" : "false", normalized ? "true" : "false", special ? "true" : "false");
}

// A GPT-2 style byte-level BPE: the 256 byte characters, merges of every pair
// of lowercase letters and of some letter pairs into 4-letter tokens (so long
// words merge a lot), and the added special tokens <|bos|> and <|eos|>.
inline std::string ByteLevelTokenizerJson(bool pair_merges = false) {
  using engine::tokenizer::ByteLevelChar;
  std::vector<std::string> vocab;
  for (int b = 0; b < 256; ++b) vocab.emplace_back(ByteLevelChar(static_cast<unsigned char>(b)));
  std::vector<std::pair<std::string, std::string>> merges;
  for (char a = 'a'; a <= 'z'; ++a) {
    for (char b = 'a'; b <= 'z'; ++b) {
      merges.emplace_back(std::string(1, a), std::string(1, b));
      vocab.push_back(std::string(1, a) + b);
    }
  }
  const std::string space(ByteLevelChar(' '));
  for (char a = 'a'; a <= 'z'; ++a) {
    merges.emplace_back(space, std::string(1, a));
    vocab.push_back(space + a);
  }
  for (const char* four : {"thth", "erer", "abab", "inin", "onon", "heat", "tion", "aaaa"}) {
    const std::string f(four);
    merges.emplace_back(f.substr(0, 2), f.substr(2, 2));
    vocab.push_back(f);
  }
  const int n = static_cast<int>(vocab.size());
  return absl::StrFormat(
      R"({"version":"1.0","added_tokens":[%s,%s],"normalizer":null,)"
      R"("pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},)"
      R"("post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|bos|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],)"
      R"("pair":[],"special_tokens":{"<|bos|>":{"id":"<|bos|>","ids":[%d],"tokens":["<|bos|>"]}}},)"
      R"("decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},)"
      R"("model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,)"
      R"("end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,)"
      R"("vocab":%s,"merges":%s}})",
      AddedTokenJson(n, "<|bos|>", true), AddedTokenJson(n + 1, "<|eos|>", true), n,
      VocabJson(vocab), MergesJson(merges, pair_merges));
}

// A Llama-2 style tokenizer: Prepend/Replace normalizer, no pre-tokenizer, BPE
// with byte fallback and a fused <unk>, decoder Replace+ByteFallback+Fuse+Strip.
// Vocabulary: <unk> <s> </s>, <0x00>..<0xFF>, ▁ and the lowercase letters,
// "▁" + letter and a few words.
inline std::string Llama2StyleTokenizerJson(bool with_byte_tokens = true) {
  std::vector<std::string> vocab = {"<unk>", "<s>", "</s>"};
  if (with_byte_tokens) {
    for (int b = 0; b < 256; ++b) vocab.push_back(absl::StrFormat("<0x%02X>", b));
  }
  const std::string meta = "\xE2\x96\x81";  // ▁
  vocab.push_back(meta);
  std::vector<std::pair<std::string, std::string>> merges;
  for (char a = 'a'; a <= 'z'; ++a) vocab.emplace_back(1, a);
  for (char a = 'a'; a <= 'z'; ++a) {
    merges.emplace_back(meta, std::string(1, a));
    vocab.push_back(meta + a);
  }
  for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
           {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"ll", "o"}}) {
    merges.emplace_back(a, b);
    vocab.push_back(a + b);
  }
  merges.emplace_back(meta + "h", "e");
  vocab.push_back(meta + "he");
  return absl::StrFormat(
      R"({"version":"1.0","added_tokens":[%s,%s,%s],)"
      R"("normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},)"
      R"("pre_tokenizer":null,)"
      R"("post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],)"
      R"("pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}},)"
      R"("decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},)"
      R"({"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},)"
      R"("model":{"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,)"
      R"("end_of_word_suffix":null,"fuse_unk":true,"byte_fallback":true,"vocab":%s,"merges":%s}})",
      AddedTokenJson(0, "<unk>", true), AddedTokenJson(1, "<s>", true),
      AddedTokenJson(2, "</s>", true), VocabJson(vocab), MergesJson(merges, false));
}

}  // namespace hybridserve::tokenizer_testing

#endif  // HYBRIDSERVE_TESTS_TOKENIZER_INLINE_TOKENIZERS_H_
