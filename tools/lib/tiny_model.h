// Writes small randomly initialised checkpoints in Hugging Face format, for
// tests, demos and benchmarks, without torch: LlamaForCausalLM,
// Mamba2ForCausalLM, BambaForCausalLM (attention at chosen layers, Mamba-2
// mixers elsewhere) and MambaForCausalLM. A folder holds config.json (the keys
// and values transformers 5.24.0's save_pretrained writes for that class),
// model.safetensors or HF-named shards with model.safetensors.index.json,
// generation_config.json, and the same byte-level BPE tokenizer.json and
// tokenizer_config.json for every architecture.
#ifndef HYBRIDSERVE_TOOLS_LIB_TINY_MODEL_H_
#define HYBRIDSERVE_TOOLS_LIB_TINY_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/dtype.h"

namespace hybridserve::tools {

// The byte-level tokenizer's layout: ids 0..255 are the bytes (GPT-2
// byte→unicode symbols, in byte order), then the two special tokens, then one
// token per merge. Ids from kTinyLlamaMinVocabSize up to vocab_size - 1 are
// embedding rows no token uses (none when vocab_size == kTinyLlamaMinVocabSize).
inline constexpr int64_t kTinyLlamaBosId = 256;  // "<|begin_of_text|>"
inline constexpr int64_t kTinyLlamaEosId = 257;  // "<|end_of_text|>"
inline constexpr int64_t kTinyLlamaNumMerges = 8;
inline constexpr int64_t kTinyLlamaMinVocabSize = 258 + kTinyLlamaNumMerges;

enum class TinyArchitecture : uint8_t { kLlama, kMamba2, kBamba, kMamba, kQwen3, kQwen2, kMistral };

// Dense Transformers (every layer attention + SwiGLU MLP): Llama, Qwen3
// (per-head q/k RMSNorm), Qwen2 (q/k/v biases), Mistral (no sliding window).
bool IsDenseTransformer(TinyArchitecture architecture);

// "llama", "mamba2", "bamba", "mamba", "qwen3", "qwen2", "mistral" (the
// --architecture values).
std::string_view TinyArchitectureName(TinyArchitecture architecture);
// The transformers class written to config.json, e.g. "BambaForCausalLM".
std::string_view TinyArchitectureClass(TinyArchitecture architecture);
// Parses a --architecture value; the error lists the known ones.
absl::StatusOr<TinyArchitecture> ParseTinyArchitecture(std::string_view name);
std::vector<TinyArchitecture> AllTinyArchitectures();

// Which fields apply is by architecture (the others are ignored):
//   all:    seed, vocab_size, hidden_size, num_layers, tie_word_embeddings,
//           dtype, num_shards
//   llama, qwen3, qwen2, mistral: intermediate_size, num_heads, num_kv_heads,
//           head_dim, max_position_embeddings, rope_theta
//   bamba:  as llama (head_dim must be hidden_size / num_heads, as
//           BambaConfig derives it; intermediate_size is every layer's
//           SwiGLU), attn_layer_indices, and the ssm_* fields
//   mamba2: ssm_* fields
//   mamba:  ssm_state_size, ssm_conv_kernel, ssm_expand
struct TinyModelOptions {
  TinyArchitecture architecture = TinyArchitecture::kLlama;
  uint64_t seed = 0;
  int64_t vocab_size = 512;
  int64_t hidden_size = 64;
  int64_t intermediate_size = 128;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t head_dim = 16;
  int64_t max_position_embeddings = 2048;
  double rope_theta = 10000.0;
  // Bamba: the layers that are attention (the others are Mamba-2 mixers);
  // strictly increasing, each in [0, num_layers).
  std::vector<int64_t> attn_layer_indices;
  // SSM mixers. Mamba-2 / Bamba: num_heads * head_dim == expand *
  // hidden_size, n_groups divides num_heads. chunk_size is only recorded
  // (the SSD chunk length of the reference; it does not change results).
  int64_t ssm_state_size = 16;   // state_size / mamba_d_state (N)
  int64_t ssm_conv_kernel = 4;   // conv_kernel / mamba_d_conv
  int64_t ssm_expand = 2;        // d_inner = expand * hidden_size
  int64_t ssm_num_heads = 8;     // num_heads / mamba_n_heads
  int64_t ssm_head_dim = 16;     // head_dim / mamba_d_head
  int64_t ssm_n_groups = 1;      // n_groups / mamba_n_groups
  int64_t ssm_chunk_size = 256;  // chunk_size / mamba_chunk_size
  bool tie_word_embeddings = false;
  engine::DType dtype = engine::DType::kF32;  // kF32, kBF16 or kF16
  int num_shards = 1;
  // Called with one human-readable line per file written; may be empty.
  std::function<void(std::string_view)> progress;
};

// Presets by architecture:
//   llama:  "tiny" (hidden 64, 2 layers, vocab 512; ~0.2M parameters), "demo"
//           (hidden 256, 4 layers, vocab 4096; ~5M), "100m" (hidden 768, 12
//           layers, intermediate 2048, 12 heads, 4 kv heads, vocab 32000,
//           tied embeddings; ~100M)
//   mamba2: "tiny" (hidden 64, 2 layers, 8 heads x 16, state 16, vocab 512),
//           "demo" (hidden 256, 8 layers, 8 heads x 64, state 64, vocab 266)
//   bamba:  "tiny" (hidden 64, 4 layers, attention at layer 1, vocab 512),
//           "demo" (hidden 256, 8 layers, attention at 3 and 7 — one layer
//           in four —, 8 Mamba-2 heads x 64, state 64, vocab 266: every id is
//           a token; ~6M)
//   mamba:  "tiny" (hidden 64, 2 layers, state 16, vocab 512), "demo"
//           (hidden 256, 8 layers, state 16, vocab 266)
// The error names an unknown preset and lists the architecture's presets.
absl::StatusOr<TinyModelOptions> TinyModelPreset(TinyArchitecture architecture,
                                                 std::string_view name);
std::vector<std::string> TinyModelPresetNames(TinyArchitecture architecture);

// Checks sizes for the architecture (positive; heads divisible by kv heads;
// Mamba-2 heads x head_dim == expand x hidden; groups dividing heads; Bamba
// attention indices in range and increasing; vocab at least
// kTinyLlamaMinVocabSize; shards between 1 and the number of tensors; a float
// dtype). The error names the offending option.
absl::Status ValidateTinyModelOptions(const TinyModelOptions& options);

// How a tensor's values are drawn (z: standard normal, u: uniform [0, 1)).
enum class TensorInit : uint8_t {
  kNormal,  // 0.02 z: projections, embeddings, conv1d biases
  kNorm,    // 1 + 0.1 z: RMSNorm weights (incl. the gated norm)
  kConv,    // z / sqrt(3 d_conv): depthwise conv1d weight [channels, 1,
            // d_conv] (the variance of PyTorch's default Conv1d init)
  kALog,    // log(1 + j) for j along the last dim (transformers' A init:
            // Mamba-2 [heads] → log(1..heads), Mamba-1 [d_inner, N] →
            // log(1..N) per row)
  kOnes,    // 1: the D skip
  kDtBias,  // softplus⁻¹(dt), dt = exp(log 1e-3 + u (log 0.1 − log 1e-3))
            // clamped to ≥ 1e-4 (transformers' dt_bias / dt_proj.bias init)
  kDtProj,  // (2u − 1) / sqrt(dt_rank): Mamba-1 dt_proj.weight [d_inner, dt_rank]
};

// One tensor of the model, in the order they are written.
struct TinyTensor {
  std::string name;            // HF name, e.g. "model.layers.0.mlp.up_proj.weight"
  std::vector<int64_t> shape;  // e.g. [intermediate_size, hidden_size]
  TensorInit init = TensorInit::kNormal;
};
std::vector<TinyTensor> TinyModelTensors(const TinyModelOptions& options);
int64_t TinyModelNumParameters(const TinyModelOptions& options);

// The f32 values of one tensor: a function of (seed, name, shape, init) only,
// so a tensor's values do not depend on sharding, dtype or the other tensors.
// Deterministic across platforms up to the last bit of libm's
// log/exp/cos/sin (splitmix64 → Box-Muller in double, rounded once to f32).
std::vector<float> TinyTensorValues(uint64_t seed, const TinyTensor& tensor);

// Writes the complete model folder to `out_dir` (created if needed). Weight
// files of an earlier run there (model.safetensors, model-*-of-*.safetensors,
// model.safetensors.index.json) are removed first so the folder holds one
// consistent checkpoint. Same options → byte-identical files. On error the
// folder may hold some of the files.
absl::Status WriteTinyModel(const TinyModelOptions& options,
                            const std::filesystem::path& out_dir);

// The Llama-only names this library had first; they write Llama folders
// unless `architecture` says otherwise.
using TinyLlamaOptions = TinyModelOptions;
inline absl::StatusOr<TinyModelOptions> TinyLlamaPreset(std::string_view name) {
  return TinyModelPreset(TinyArchitecture::kLlama, name);
}
inline std::vector<std::string> TinyLlamaPresetNames() {
  return TinyModelPresetNames(TinyArchitecture::kLlama);
}
inline absl::Status WriteTinyLlama(const TinyModelOptions& options,
                                   const std::filesystem::path& out_dir) {
  return WriteTinyModel(options, out_dir);
}

}  // namespace hybridserve::tools

#endif  // HYBRIDSERVE_TOOLS_LIB_TINY_MODEL_H_
