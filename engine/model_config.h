// config.json → the model's architecture: per-layer kind and dimensions.
#ifndef HYBRIDSERVE_ENGINE_MODEL_CONFIG_H_
#define HYBRIDSERVE_ENGINE_MODEL_CONFIG_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace hybridserve::engine {

enum class LayerKind : uint8_t { kAttention, kMamba1, kMamba2 };

// The three families DESIGN.md section 6 labels metrics with.
enum class ArchitectureFamily : uint8_t { kTransformer, kSsm, kHybrid };
std::string_view FamilyName(ArchitectureFamily family);  // "transformer", ...

enum class RopeType : uint8_t { kDefault, kLinear, kLlama3 };

// Rotary embedding parameters, from transformers v4 keys (`rope_theta`,
// `rope_scaling`) or the v5 `rope_parameters` object. Unsupported rope types
// (yarn, dynamic, longrope, ...) are rejected by name when parsing.
struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;  // linear and llama3
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
  // Fraction of head_dim that is rotated (1.0: all of it).
  double partial_rotary_factor = 1.0;
};

struct ModelConfig {
  std::string architecture;  // config `architectures[0]`, e.g. "LlamaForCausalLM"
  std::string model_type;    // e.g. "llama"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_kv_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;      // defaults to hidden_size / num_attention_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v/o projections carry biases
  bool mlp_bias = false;        // gate/up/down projections carry biases
  RopeConfig rope;
  std::vector<LayerKind> layer_kinds;  // one per layer
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config may give an int or a list
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype;  // "float32", "bfloat16", "float16" or "" if absent

  ArchitectureFamily family() const;
  int64_t num_attention_layers() const;
  // Number of leading head dims that are rotated (even).
  int64_t rotary_dim() const;
};

// Parses config.json text. `source` names the file in errors. Rejects, naming
// the key: unknown architectures, missing required keys, non-positive sizes,
// heads not dividing evenly, unsupported rope types, hidden_act other than silu.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text,
                                             std::string_view source);
// Reads `<model_dir>/config.json`.
absl::StatusOr<ModelConfig> LoadModelConfig(
    const std::filesystem::path& model_dir);

// Rotary inverse frequencies, one per rotated pair ([rotary_dim / 2], f32), as
// transformers computes them (including llama3 / linear scaling), and the
// attention scaling factor cos/sin are multiplied by (1.0 for the supported
// types).
struct RopeTables {
  std::vector<float> inv_freq;
  float attention_scaling = 1.0f;
};
RopeTables ComputeRopeTables(const RopeConfig& rope, int64_t rotary_dim);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_CONFIG_H_
