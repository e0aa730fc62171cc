// hs_tokenizer_bench: encode / decode throughput of a tokenizer.json.
//
// Prints MB/s (best of --repeats) for English prose and for CJK text, the time
// to encode 1 MB strings without spaces (random letters, one repeated letter,
// CJK), and streaming-decode throughput; then the same numbers as one JSON line.
//
//   hs_tokenizer_bench --tokenizer=../shared/testdata/tokenizers/llama3
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/unicode_util.h"

ABSL_FLAG(std::string, tokenizer, "",
          "Path of a tokenizer.json or of the folder holding it. Required.");
ABSL_FLAG(int, repeats, 3, "Runs per measurement; the best is reported.");
ABSL_FLAG(int, text_kib, 1024, "Size of the English and CJK texts, in KiB.");

namespace {

using hybridserve::engine::tokenizer::AppendUtf8;
using hybridserve::engine::tokenizer::IncrementalDetokenizer;
using hybridserve::engine::tokenizer::Tokenizer;
using hybridserve::engine::tokenizer::TokenizerOptions;

constexpr const char* kEnglish[] = {
    "The server accepts requests from many clients at once and streams the generated "
    "tokens back as soon as they are sampled. ",
    "Attention layers keep a key and value cache that grows with every token, while "
    "state space layers keep a state of fixed size. ",
    "In 2024, hybrid models such as Jamba, Bamba and Granite-4.0-H interleaved both "
    "kinds of layer; each has its own cost per token. ",
    "Don't forget: a tokenizer that disagrees by a single id changes the model's "
    "output, and a quadratic merge loop is a denial of service!\n",
    "Prices were $1,234.56 on Monday (up 7.8%), according to the report's authors. ",
};
constexpr const char* kChinese[] = {
    "服务器同时接收许多客户端的请求，并在采样后立即将生成的词元流式返回。",
    "注意力层的键值缓存随每个词元增长，而状态空间层的状态大小固定。",
    "混合模型交替使用两种层，每种层都有自己的每词元成本。",
    "分词器只要有一个编号不同，模型的输出就会改变。\n",
};

std::string Repeat(const char* const* parts, size_t n, size_t bytes) {
  std::string out;
  for (size_t i = 0; out.size() < bytes; ++i) out += parts[i % n];
  return out;
}

double BestSeconds(int repeats, const std::function<void()>& fn) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const std::chrono::duration<double> d = std::chrono::steady_clock::now() - start;
    best = std::min(best, d.count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  // Show this file's flags under --help (Abseil matches flag files against the
  // binary's name, hs_...; it would find none).
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "/tokenizer_bench.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "Measures tokenizer throughput: encode MB/s on English and CJK text, the time "
      "for 1 MB strings without spaces, and streaming-decode MB/s.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_tokenizer).empty()) {
    std::cerr << "hs_tokenizer_bench: --tokenizer is required\n";
    return 2;
  }
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  TokenizerOptions options;
  options.max_input_bytes = size_t{64} << 20;
  const auto load_start = std::chrono::steady_clock::now();
  auto tok_or = Tokenizer::FromFile(absl::GetFlag(FLAGS_tokenizer), options);
  if (!tok_or.ok()) {
    std::cerr << "hs_tokenizer_bench: " << tok_or.status() << "\n";
    return 2;
  }
  const std::chrono::duration<double> load = std::chrono::steady_clock::now() - load_start;
  const Tokenizer& tok = **tok_or;
  std::cout << absl::StrFormat("load: %.3f s (vocab %d)\n", load.count(), tok.vocab_size());

  const size_t text_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_text_kib)) << 10;
  std::vector<std::pair<std::string, std::string>> texts = {
      {"english", Repeat(kEnglish, std::size(kEnglish), text_bytes)},
      {"cjk", Repeat(kChinese, std::size(kChinese), text_bytes)},
  };
  std::mt19937 rng(1234);
  std::string letters(1 << 20, 'a');
  for (char& c : letters) c = static_cast<char>('a' + rng() % 26);
  std::string cjk_nospace;
  while (cjk_nospace.size() < (1u << 20)) AppendUtf8(0x4E00 + rng() % 0x5000, &cjk_nospace);
  std::vector<std::pair<std::string, std::string>> nospace = {
      {"nospace_random_letters", letters},
      {"nospace_same_letter", std::string(1 << 20, 'a')},
      {"nospace_cjk", cjk_nospace},
  };

  std::string json = "{";
  auto add = [&](const std::string& key, double value) {
    absl::StrAppend(&json, json.size() > 1 ? "," : "", "\"", key, "\":",
                    absl::StrFormat("%.4g", value));
  };
  add("load_s", load.count());
  for (const auto& [name, text] : texts) {
    std::vector<int32_t> ids;
    const double s = BestSeconds(repeats, [&] { ids = *tok.Encode(text, false); });
    const double mbps = text.size() / 1e6 / s;
    std::cout << absl::StrFormat("encode %-8s %8.2f MB/s  (%zu bytes -> %zu ids, %.3f s)\n",
                                 name, mbps, text.size(), ids.size(), s);
    add(absl::StrCat("encode_", name, "_mb_per_s"), mbps);
    std::string out;
    const double d = BestSeconds(repeats, [&] {
      out.clear();
      IncrementalDetokenizer detok(tok, false);
      for (int32_t id : ids) (void)detok.Step(id, &out);
      detok.Finish(&out);
    });
    std::cout << absl::StrFormat("stream-decode %-8s %8.2f MB/s  (%.0f ids/s)\n", name,
                                 out.size() / 1e6 / d, ids.size() / d);
    add(absl::StrCat("stream_decode_", name, "_mb_per_s"), out.size() / 1e6 / d);
  }
  for (const auto& [name, text] : nospace) {
    size_t n = 0;
    const double s = BestSeconds(repeats, [&] { n = tok.Encode(text, false)->size(); });
    std::cout << absl::StrFormat("encode %s (%zu bytes): %.3f s -> %zu ids\n", name,
                                 text.size(), s, n);
    add(absl::StrCat(name, "_1mb_s"), s);
  }
  json += "}";
  std::cout << json << "\n";
  return 0;
}
