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
#include "engine/activation.h"

namespace hybridserve::engine {

enum class LayerKind : uint8_t { kAttention, kMamba1, kMamba2 };

// The three families DESIGN.md section 6 labels metrics with.
enum class ArchitectureFamily : uint8_t { kTransformer, kSsm, kHybrid };
std::string_view FamilyName(ArchitectureFamily family);  // "transformer", ...

enum class RopeType : uint8_t { kDefault, kLinear, kLlama3, kYarn };

// How the engine builds an architecture's graph (engine/model/model_factory.h):
// which generic model class, never which architecture.
enum class ModelGraph : uint8_t {
  // embedding → per layer [RMSNorm → mixer (attention or Mamba-2 per layer
  // kind) → residual → RMSNorm → gated MLP → residual] → RMSNorm → lm_head.
  kDecoder,
  // embedding → per layer [RMSNorm → Mamba mixer → residual] → RMSNorm →
  // lm_head, tensors under "backbone." (Mamba-1 or Mamba-2 by layer kind).
  kMambaBackbone,
};

// Checkpoint tensor names of a kDecoder graph that differ between families.
// Layers are under "model.layers.<i>."; their mixers under "self_attn." or
// "mamba.", their first norm is "input_layernorm.weight".
struct DecoderTensorNames {
  std::string_view embed;            // [V, H], e.g. "model.embed_tokens.weight"
  std::string_view final_norm;       // [H], e.g. "model.norm.weight"
  std::string_view post_mixer_norm;  // [H], e.g. "post_attention_layernorm.weight"
  std::string_view mlp;              // prefix of {gate,up,down}_proj, e.g. "mlp."
};

// What the registry (model_config.cc) knows about one architecture.
struct ArchitectureInfo {
  std::string_view name;        // config `architectures[0]`, e.g. "Qwen3ForCausalLM"
  std::string_view model_type;  // the matching config `model_type`, e.g. "qwen3"
  ModelGraph graph = ModelGraph::kDecoder;
  DecoderTensorNames names;     // kDecoder only
};
// Every registered architecture, in registry order.
std::vector<ArchitectureInfo> RegisteredArchitectures();

// Rotary embedding parameters, from transformers v4 keys (`rope_theta`,
// `rope_scaling`) or the v5 `rope_parameters` object. Unsupported rope types
// (dynamic, longrope, ...) are rejected by name when parsing.
struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;  // linear, llama3 and yarn
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;  // llama3 and yarn
  // yarn only (transformers' _compute_yarn_parameters): the cos/sin scale
  // (attention_factor; when absent, from factor and mscale / mscale_all_dim),
  // the ramp's rotation bounds and whether its ends are rounded outwards.
  double attention_factor = 1.0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  bool truncate = true;
  // Fraction of head_dim that is rotated (1.0: all of it).
  double partial_rotary_factor = 1.0;
};

// The Mamba mixer's dimensions (Mamba-2 and Mamba-1 layers); all zero for
// models without SSM layers.
struct SsmConfig {
  int64_t d_inner = 0;     // expand * hidden_size (Mamba-2: num_heads * head_dim)
  int64_t d_state = 0;     // state_size (N)
  int64_t d_conv = 0;      // conv_kernel: causal conv taps; the state keeps d_conv - 1
  // Mamba-2 only.
  int64_t num_heads = 0;   // heads of head_dim channels; d_inner = num_heads * head_dim
  int64_t head_dim = 0;
  int64_t n_groups = 0;    // B/C groups; head h reads group h / (num_heads / n_groups)
  // The reference's SSD chunk length. The result does not depend on it (the
  // chunked scan is the same recurrence), so it is recorded, not used.
  int64_t chunk_size = 0;
  // Mamba-1 only.
  int64_t dt_rank = 0;     // time_step_rank
  bool conv_bias = true;   // conv1d carries a bias
  bool proj_bias = false;  // in_proj / out_proj carry biases
  // dt = softplus(raw + dt_bias) clamped to [dt_min, dt_max] (time_step_limit;
  // Mamba-2 only, dt_max may be +infinity).
  double dt_min = 0.0;
  double dt_max = 0.0;
  double norm_eps = 1e-5;  // the gated RMSNorm's epsilon (Mamba-2)

  // Channels of the causal conv: Mamba-2 convolves x, B and C together
  // (d_inner + 2 * n_groups * d_state), Mamba-1 only x (d_inner).
  int64_t conv_channels(LayerKind kind) const;
  // fp32 bytes of one sequence's state in one layer of `kind`: the conv window
  // [conv_channels, d_conv - 1] plus the SSM state ([num_heads, head_dim,
  // d_state] for Mamba-2, [d_inner, d_state] for Mamba-1).
  uint64_t conv_state_bytes(LayerKind kind) const;
  uint64_t ssm_state_bytes(LayerKind kind) const;
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
  int64_t max_position_embeddings = 0;  // 0: none given (pure SSM models)
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  Activation hidden_act = Activation::kSilu;  // the gated MLP's (and Mamba's) activation
  bool attention_bias = false;      // q/k/v projections carry biases
  bool attention_out_bias = false;  // o_proj carries a bias
  // Per-head RMSNorm of q and k (weights [head_dim]) before the rotary
  // embedding (Qwen3's q_norm / k_norm).
  bool qk_norm = false;
  // Sliding-window attention: a token attends to the last `sliding_window`
  // positions; 0 = full causal attention. The engine refuses a
  // --max-model-len above it (the window is not implemented).
  int64_t sliding_window = 0;
  bool mlp_bias = false;        // gate/up/down projections carry biases
  RopeConfig rope;
  SsmConfig ssm;                       // SSM layers' dimensions, if any
  std::vector<LayerKind> layer_kinds;  // one per layer
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config may give an int or a list
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype;  // "float32", "bfloat16", "float16" or "" if absent
  // From the architecture's registry entry.
  ModelGraph graph = ModelGraph::kDecoder;
  DecoderTensorNames tensor_names;

  ArchitectureFamily family() const;
  int64_t num_attention_layers() const;
  int64_t num_ssm_layers() const;
  // fp32 bytes of one sequence's state over all SSM layers (DESIGN.md 2.1).
  uint64_t state_bytes_per_seq() const;
  // Number of leading head dims that are rotated (even).
  int64_t rotary_dim() const;
};

// Parses config.json text. `source` names the file in errors. Supported: the
// architectures of RegisteredArchitectures(). Rejects, naming the key: unknown
// architectures, missing required keys, non-positive sizes, heads not dividing
// evenly, unsupported rope types, hidden_act other than silu, quantized
// checkpoints, and SSM options the graph does not implement (e.g.
// norm_before_gate, rmsnorm false).
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text,
                                             std::string_view source);
// Reads `<model_dir>/config.json`.
absl::StatusOr<ModelConfig> LoadModelConfig(
    const std::filesystem::path& model_dir);

// Rotary inverse frequencies, one per rotated pair ([rotary_dim / 2], f32), as
// transformers computes them (including linear, llama3 and yarn scaling), and
// the attention scaling factor cos/sin are multiplied by (yarn's
// attention_factor; 1.0 for the other types).
struct RopeTables {
  std::vector<float> inv_freq;
  float attention_scaling = 1.0f;
};
RopeTables ComputeRopeTables(const RopeConfig& rope, int64_t rotary_dim);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_CONFIG_H_
