// hs_make_tiny_model: writes a randomly initialised Llama checkpoint folder in
// Hugging Face format (config.json, safetensors weights, generation config,
// byte-level tokenizer), for tests, demos and benchmarks without torch.
//
//   hs_make_tiny_model --out /tmp/tiny
//   hs_make_tiny_model --out /tmp/m100 --preset 100m --dtype bf16 --shards 3
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/dtype.h"
#include "tools/lib/tiny_model.h"

ABSL_FLAG(std::string, out, "",
          "Output folder (created if needed; weight files of an earlier run "
          "there are replaced). Required.");
ABSL_FLAG(std::string, preset, "tiny",
          "Starting sizes: 'tiny' (hidden 64, 2 layers, vocab 512, ~0.14M "
          "parameters), 'demo' (hidden 256, 4 layers, vocab 4096, ~5M) or "
          "'100m' (hidden 768, 12 layers, intermediate 2048, 12 heads, 4 kv "
          "heads, vocab 32000, tied embeddings, ~100M). The size flags below "
          "override single values.");
ABSL_FLAG(uint64_t, seed, 0,
          "Random seed. The same seed and sizes give byte-identical files; a "
          "tensor's values depend only on the seed and its name.");
ABSL_FLAG(std::optional<int64_t>, vocab_size, std::nullopt,
          "Vocabulary rows (default: from --preset). At least 266: ids 0-255 "
          "are the bytes, 256/257 <|begin_of_text|>/<|end_of_text|>, 258-265 "
          "merges; higher ids are unused rows.");
ABSL_FLAG(std::optional<int64_t>, hidden_size, std::nullopt,
          "Model width (default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, intermediate_size, std::nullopt,
          "MLP width (default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, num_layers, std::nullopt,
          "Decoder layers (default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, num_heads, std::nullopt,
          "Attention (query) heads (default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, num_kv_heads, std::nullopt,
          "Key/value heads; must divide --num_heads (GQA when smaller) "
          "(default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, head_dim, std::nullopt,
          "Per-head dimension, even; may differ from hidden_size / num_heads "
          "(default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, max_position_embeddings, std::nullopt,
          "Context length written to config.json (default: from --preset).");
ABSL_FLAG(std::optional<double>, rope_theta, std::nullopt,
          "RoPE base, written to config.json rope_parameters.rope_theta "
          "(default: 10000).");
ABSL_FLAG(bool, tie_word_embeddings, false,
          "Share the embedding with the output projection (no lm_head.weight). "
          "When not given, the preset decides: true only for 100m.");
ABSL_FLAG(std::string, dtype, "f32",
          "Weight dtype in the safetensors files: f32, bf16 or f16.");
ABSL_FLAG(int, shards, 1,
          "Number of safetensors files. 1 writes model.safetensors; N > 1 "
          "writes model-0000k-of-0000N.safetensors and "
          "model.safetensors.index.json.");

namespace {

template <typename T>
void Override(const absl::Flag<std::optional<T>>& flag, T* value) {
  if (const std::optional<T> v = absl::GetFlag(flag); v.has_value()) *value = *v;
}

}  // namespace

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  // Show this file's flags under --help (the binary is hs_make_tiny_model, so
  // Abseil's default file-name match would find none).
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "make_tiny_model.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "Writes a randomly initialised LlamaForCausalLM checkpoint folder in "
      "Hugging Face format: config.json (transformers v5 style), weights, "
      "generation_config.json, a byte-level BPE tokenizer.json and "
      "tokenizer_config.json.\n\n"
      "  hs_make_tiny_model --out DIR [--preset tiny|demo|100m] [--seed N] "
      "[--dtype f32|bf16|f16] [--shards N] [size flags]");
  // Whether --[no]tie_word_embeddings[=...] was given (this Abseil release
  // keeps CommandLineFlag::IsSpecifiedOnCommandLine private).
  bool tie_given = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    while (absl::ConsumePrefix(&arg, "-")) {
    }
    absl::ConsumePrefix(&arg, "no");
    if (arg == "tie_word_embeddings" ||
        absl::StartsWith(arg, "tie_word_embeddings=")) {
      tie_given = true;
    }
  }
  absl::ParseCommandLine(argc, argv);

  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::fprintf(stderr, "error: --out is required (see --help)\n");
    return 2;
  }
  absl::StatusOr<hybridserve::tools::TinyLlamaOptions> preset =
      hybridserve::tools::TinyLlamaPreset(absl::GetFlag(FLAGS_preset));
  if (!preset.ok()) {
    std::fprintf(stderr, "error: --preset: %s\n",
                 std::string(preset.status().message()).c_str());
    return 2;
  }
  hybridserve::tools::TinyLlamaOptions options = *preset;
  options.seed = absl::GetFlag(FLAGS_seed);
  Override(FLAGS_vocab_size, &options.vocab_size);
  Override(FLAGS_hidden_size, &options.hidden_size);
  Override(FLAGS_intermediate_size, &options.intermediate_size);
  Override(FLAGS_num_layers, &options.num_layers);
  Override(FLAGS_num_heads, &options.num_heads);
  Override(FLAGS_num_kv_heads, &options.num_kv_heads);
  Override(FLAGS_head_dim, &options.head_dim);
  Override(FLAGS_max_position_embeddings, &options.max_position_embeddings);
  Override(FLAGS_rope_theta, &options.rope_theta);
  if (tie_given) {
    options.tie_word_embeddings = absl::GetFlag(FLAGS_tie_word_embeddings);
  }
  options.num_shards = absl::GetFlag(FLAGS_shards);
  absl::StatusOr<hybridserve::engine::DType> dtype =
      hybridserve::engine::ParseFloatDType(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) {
    std::fprintf(stderr, "error: --dtype: %s\n",
                 std::string(dtype.status().message()).c_str());
    return 2;
  }
  options.dtype = *dtype;
  options.progress = [](std::string_view line) {
    std::printf("%.*s\n", static_cast<int>(line.size()), line.data());
    std::fflush(stdout);
  };

  const absl::Status status = hybridserve::tools::WriteTinyLlama(options, out);
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
