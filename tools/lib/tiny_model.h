// Writes small randomly initialised Llama checkpoints in Hugging Face format,
// for tests, demos and benchmarks, without torch: config.json (as transformers
// v5 writes it), model.safetensors or HF-named shards with
// model.safetensors.index.json, generation_config.json, a byte-level BPE
// tokenizer.json and tokenizer_config.json.
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
// embedding rows no token uses.
inline constexpr int64_t kTinyLlamaBosId = 256;  // "<|begin_of_text|>"
inline constexpr int64_t kTinyLlamaEosId = 257;  // "<|end_of_text|>"
inline constexpr int64_t kTinyLlamaNumMerges = 8;
inline constexpr int64_t kTinyLlamaMinVocabSize = 258 + kTinyLlamaNumMerges;

struct TinyLlamaOptions {
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
  bool tie_word_embeddings = false;
  engine::DType dtype = engine::DType::kF32;  // kF32, kBF16 or kF16
  int num_shards = 1;
  // Called with one human-readable line per file written; may be empty.
  std::function<void(std::string_view)> progress;
};

// "tiny" (hidden 64, 2 layers, vocab 512; ~0.2M parameters), "demo" (hidden
// 256, 4 layers, vocab 4096; ~5M) or "100m" (hidden 768, 12 layers,
// intermediate 2048, 12 heads, 4 kv heads, vocab 32000, tied embeddings;
// ~100M). Error names an unknown preset and lists the known ones.
absl::StatusOr<TinyLlamaOptions> TinyLlamaPreset(std::string_view name);
std::vector<std::string> TinyLlamaPresetNames();

// Checks sizes (positive; heads divisible by kv heads; vocab at least
// kTinyLlamaMinVocabSize; shards between 1 and the number of tensors; a float
// dtype). The error names the offending option.
absl::Status ValidateTinyLlamaOptions(const TinyLlamaOptions& options);

// One tensor of the model, in the order they are written.
struct TinyLlamaTensor {
  std::string name;            // HF name, e.g. "model.layers.0.mlp.up_proj.weight"
  std::vector<int64_t> shape;  // e.g. [intermediate_size, hidden_size]
  bool is_norm = false;        // 1 + N(0, 0.1) instead of N(0, 0.02)
};
std::vector<TinyLlamaTensor> TinyLlamaTensors(const TinyLlamaOptions& options);
int64_t TinyLlamaNumParameters(const TinyLlamaOptions& options);

// The f32 values of one tensor: a function of (seed, tensor name) only, so a
// tensor's values do not depend on sharding, dtype or the other tensors.
// Deterministic across platforms up to the last bit of libm's log/cos/sin
// (splitmix64 → Box-Muller in double, rounded once to f32).
std::vector<float> TinyLlamaTensorValues(uint64_t seed,
                                         const TinyLlamaTensor& tensor);

// Writes the complete model folder to `out_dir` (created if needed). Weight
// files of an earlier run there (model.safetensors, model-*-of-*.safetensors,
// model.safetensors.index.json) are removed first so the folder holds one
// consistent checkpoint. Same options → byte-identical files. On error the
// folder may hold some of the files.
absl::Status WriteTinyLlama(const TinyLlamaOptions& options,
                            const std::filesystem::path& out_dir);

}  // namespace hybridserve::tools

#endif  // HYBRIDSERVE_TOOLS_LIB_TINY_MODEL_H_
