// hs_make_tiny_model: writes a randomly initialised checkpoint folder in
// Hugging Face format (config.json, safetensors weights, generation config,
// byte-level tokenizer) of a Llama, Mamba-2, Bamba or Mamba-1 model, for
// tests, demos and benchmarks without torch.
//
//   hs_make_tiny_model --out /tmp/tiny
//   hs_make_tiny_model --out /tmp/m100 --preset 100m --dtype bf16 --shards 3
//   hs_make_tiny_model --out /tmp/hybrid --architecture bamba
//       --num_layers 8 --attn_layer_indices 1,5
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/dtype.h"
#include "tools/lib/tiny_model.h"

ABSL_FLAG(std::string, out, "",
          "Output folder (created if needed; weight files of an earlier run "
          "there are replaced). Required.");
ABSL_FLAG(std::string, architecture, "llama",
          "Model class: 'llama' (LlamaForCausalLM), 'qwen3' (Qwen3ForCausalLM: "
          "per-head q/k RMSNorm), 'qwen2' (Qwen2ForCausalLM: q/k/v biases), "
          "'mistral' (MistralForCausalLM, no sliding window), 'mamba2' "
          "(Mamba2ForCausalLM), 'bamba' (BambaForCausalLM: attention at "
          "--attn_layer_indices, Mamba-2 mixers elsewhere, a SwiGLU MLP after "
          "every mixer) or 'mamba' (MambaForCausalLM, Mamba-1). A size flag "
          "that does not apply to the architecture is an error.");
ABSL_FLAG(std::string, preset, "tiny",
          "Starting sizes, per --architecture. llama, qwen3, qwen2, mistral: 'tiny' (hidden 64, 2 "
          "layers, vocab 512, ~0.14M parameters), 'demo' (hidden 256, 4 "
          "layers, vocab 4096, ~5M) or '100m' (hidden 768, 12 layers, "
          "intermediate 2048, 12 heads, 4 kv heads, vocab 32000, tied "
          "embeddings, ~100M). mamba2, bamba, mamba: 'tiny' (hidden 64, "
          "Mamba-2 mixers of 8 heads x 16 with state 16 / Mamba-1 state 16, "
          "vocab 512; mamba2 and mamba 2 layers, bamba 4 with attention at "
          "layer 1) or 'demo' (hidden 256, 8 layers, vocab 266 so every id is "
          "a token; Mamba-2 mixers 8 heads x 64 with state 64; bamba: "
          "attention at layers 3 and 7, 8 heads / 4 kv heads, MLP 512, ~6M "
          "parameters — the model scripts/demo.sh serves). The size flags "
          "below override single values.");
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
          "SwiGLU MLP width (llama, bamba; default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, num_layers, std::nullopt,
          "Decoder layers, attention and SSM together (default: from "
          "--preset).");
ABSL_FLAG(std::optional<int64_t>, num_heads, std::nullopt,
          "Attention (query) heads (llama, bamba; default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, num_kv_heads, std::nullopt,
          "Key/value heads; must divide --num_heads (GQA when smaller) "
          "(llama, bamba; default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, head_dim, std::nullopt,
          "Per-head dimension, even. llama, qwen3, mistral: may differ from "
          "hidden_size / num_heads; bamba, qwen2: must equal it (their configs "
          "derive it), so it "
          "follows --hidden_size / --num_heads when not given (default: from "
          "--preset).");
ABSL_FLAG(std::optional<int64_t>, max_position_embeddings, std::nullopt,
          "Context length written to config.json (llama, bamba; default: "
          "from --preset).");
ABSL_FLAG(std::optional<double>, rope_theta, std::nullopt,
          "RoPE base, written to config.json rope_parameters.rope_theta "
          "(llama, bamba; default: 10000).");
ABSL_FLAG(std::optional<std::string>, attn_layer_indices, std::nullopt,
          "bamba: comma-separated, increasing indices of the attention layers, "
          "e.g. '1,5' (empty: none, a pure Mamba-2 stack); every other layer "
          "is a Mamba-2 mixer (default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, ssm_state_size, std::nullopt,
          "SSM state size N per channel: config state_size / mamba_d_state "
          "(mamba2, bamba, mamba; default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, ssm_conv_kernel, std::nullopt,
          "Causal conv1d taps, at least 2: conv_kernel / mamba_d_conv "
          "(mamba2, bamba, mamba; default 4).");
ABSL_FLAG(std::optional<int64_t>, ssm_expand, std::nullopt,
          "Mixer width factor: d_inner = expand x hidden_size (mamba2, bamba, "
          "mamba; default 2).");
ABSL_FLAG(std::optional<int64_t>, ssm_num_heads, std::nullopt,
          "Mamba-2 heads; ssm_num_heads x ssm_head_dim must equal "
          "ssm_expand x hidden_size (mamba2, bamba; default: from --preset, "
          "or d_inner / ssm_head_dim when only the sizes around it change).");
ABSL_FLAG(std::optional<int64_t>, ssm_head_dim, std::nullopt,
          "Mamba-2 channels per head (mamba2, bamba; default: from --preset).");
ABSL_FLAG(std::optional<int64_t>, ssm_n_groups, std::nullopt,
          "Mamba-2 B/C groups; must divide ssm_num_heads (mamba2, bamba; "
          "default 1).");
ABSL_FLAG(std::optional<int64_t>, ssm_chunk_size, std::nullopt,
          "Mamba-2 SSD chunk length written to config.json; results do not "
          "depend on it (mamba2, bamba; default 256).");
ABSL_FLAG(bool, tie_word_embeddings, false,
          "Share the embedding with the output projection (no lm_head.weight). "
          "When not given, the preset decides: true only for llama 100m.");
ABSL_FLAG(std::string, dtype, "f32",
          "Weight dtype in the safetensors files: f32, bf16 or f16.");
ABSL_FLAG(int, shards, 1,
          "Number of safetensors files. 1 writes model.safetensors; N > 1 "
          "writes model-0000k-of-0000N.safetensors and "
          "model.safetensors.index.json.");

namespace {

using hybridserve::tools::TinyArchitecture;

template <typename T>
void Override(const absl::Flag<std::optional<T>>& flag, T* value) {
  if (const std::optional<T> v = absl::GetFlag(flag); v.has_value()) *value = *v;
}

template <typename T>
bool Given(const absl::Flag<std::optional<T>>& flag) {
  return absl::GetFlag(flag).has_value();
}

// The first size flag given that `architecture` has no use for, or "".
std::string InapplicableFlag(TinyArchitecture architecture) {
  const bool attention =
      IsDenseTransformer(architecture) || architecture == TinyArchitecture::kBamba;
  const bool ssm = !IsDenseTransformer(architecture);
  const bool mamba2 = architecture == TinyArchitecture::kMamba2 ||
                      architecture == TinyArchitecture::kBamba;
  struct Entry {
    const char* name;
    bool given;
    bool applies;
  };
  const Entry flags[] = {
      {"intermediate_size", Given(FLAGS_intermediate_size), attention},
      {"num_heads", Given(FLAGS_num_heads), attention},
      {"num_kv_heads", Given(FLAGS_num_kv_heads), attention},
      {"head_dim", Given(FLAGS_head_dim), attention},
      {"max_position_embeddings", Given(FLAGS_max_position_embeddings), attention},
      {"rope_theta", Given(FLAGS_rope_theta), attention},
      {"attn_layer_indices", Given(FLAGS_attn_layer_indices),
       architecture == TinyArchitecture::kBamba},
      {"ssm_state_size", Given(FLAGS_ssm_state_size), ssm},
      {"ssm_conv_kernel", Given(FLAGS_ssm_conv_kernel), ssm},
      {"ssm_expand", Given(FLAGS_ssm_expand), ssm},
      {"ssm_num_heads", Given(FLAGS_ssm_num_heads), mamba2},
      {"ssm_head_dim", Given(FLAGS_ssm_head_dim), mamba2},
      {"ssm_n_groups", Given(FLAGS_ssm_n_groups), mamba2},
      {"ssm_chunk_size", Given(FLAGS_ssm_chunk_size), mamba2},
  };
  for (const Entry& e : flags) {
    if (e.given && !e.applies) return e.name;
  }
  return "";
}

// "1,5" → {1, 5}; "" → {}.
bool ParseIndices(const std::string& text, std::vector<int64_t>* out) {
  out->clear();
  if (text.empty()) return true;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(part, &v)) return false;
    out->push_back(v);
  }
  return true;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 2;
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
      "Writes a randomly initialised checkpoint folder in Hugging Face "
      "format, as transformers 5.24.0's save_pretrained would for the class: "
      "config.json, weights (safetensors), generation_config.json, a "
      "byte-level BPE tokenizer.json and tokenizer_config.json (the same "
      "tokenizer for every architecture).\n\n"
      "  hs_make_tiny_model --out DIR [--architecture llama|mamba2|bamba|mamba] "
      "[--preset tiny|demo|100m] [--seed N] [--dtype f32|bf16|f16] "
      "[--shards N] [size flags]\n"
      "  hs_make_tiny_model --out DIR --architecture bamba --num_layers 8 "
      "--attn_layer_indices 1,5");
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
  namespace tools = hybridserve::tools;

  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return Fail("--out is required (see --help)");
  absl::StatusOr<TinyArchitecture> architecture =
      tools::ParseTinyArchitecture(absl::GetFlag(FLAGS_architecture));
  if (!architecture.ok()) {
    return Fail(absl::StrCat("--architecture: ", architecture.status().message()));
  }
  if (const std::string flag = InapplicableFlag(*architecture); !flag.empty()) {
    return Fail(absl::StrCat("--", flag, " does not apply to --architecture ",
                             std::string(tools::TinyArchitectureName(*architecture))));
  }
  absl::StatusOr<tools::TinyModelOptions> preset =
      tools::TinyModelPreset(*architecture, absl::GetFlag(FLAGS_preset));
  if (!preset.ok()) {
    return Fail(absl::StrCat("--preset: ", preset.status().message()));
  }
  tools::TinyModelOptions options = *preset;
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
  Override(FLAGS_ssm_state_size, &options.ssm_state_size);
  Override(FLAGS_ssm_conv_kernel, &options.ssm_conv_kernel);
  Override(FLAGS_ssm_expand, &options.ssm_expand);
  Override(FLAGS_ssm_num_heads, &options.ssm_num_heads);
  Override(FLAGS_ssm_head_dim, &options.ssm_head_dim);
  Override(FLAGS_ssm_n_groups, &options.ssm_n_groups);
  Override(FLAGS_ssm_chunk_size, &options.ssm_chunk_size);
  if (const auto indices = absl::GetFlag(FLAGS_attn_layer_indices)) {
    if (!ParseIndices(*indices, &options.attn_layer_indices)) {
      return Fail(absl::StrCat(
          "--attn_layer_indices: expected comma-separated layer indices, got '",
          *indices, "'"));
    }
  }
  // Sizes that follow from others unless given: Bamba's head_dim, Mamba-2's
  // head count.
  if ((*architecture == TinyArchitecture::kBamba || *architecture == TinyArchitecture::kQwen2) &&
      !Given(FLAGS_head_dim) &&
      options.num_heads > 0 && options.hidden_size % options.num_heads == 0) {
    options.head_dim = options.hidden_size / options.num_heads;
  }
  const int64_t d_inner = options.ssm_expand * options.hidden_size;
  if (!Given(FLAGS_ssm_num_heads) && options.ssm_head_dim > 0 &&
      d_inner % options.ssm_head_dim == 0) {
    options.ssm_num_heads = d_inner / options.ssm_head_dim;
  }
  if (tie_given) {
    options.tie_word_embeddings = absl::GetFlag(FLAGS_tie_word_embeddings);
  }
  options.num_shards = absl::GetFlag(FLAGS_shards);
  absl::StatusOr<hybridserve::engine::DType> dtype =
      hybridserve::engine::ParseFloatDType(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) {
    return Fail(absl::StrCat("--dtype: ", dtype.status().message()));
  }
  options.dtype = *dtype;
  options.progress = [](std::string_view line) {
    std::printf("%.*s\n", static_cast<int>(line.size()), line.data());
    std::fflush(stdout);
  };

  const absl::Status status = tools::WriteTinyModel(options, out);
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
