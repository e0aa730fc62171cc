// LlamaForCausalLM over the Backend op set (transformers' modeling_llama.py,
// eager attention): embedding → per layer [RMSNorm → attention (GQA, rotary,
// optional q/k/v/o biases) → residual → RMSNorm → SwiGLU MLP → residual] →
// RMSNorm → lm_head (tied to the embedding when the config says so).
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_LLAMA_H_
#define HYBRIDSERVE_ENGINE_MODEL_LLAMA_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"
#include "engine/model/model.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class LlamaModel final : public Model {
 public:
  // Loads the weights and allocates the workspace. Errors name the missing or
  // misshapen tensor and its file. `backend` must outlive the model.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(
      const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
      const ModelLoadOptions& options);

  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t num_kv_layers() const override { return config_.num_layers; }
  uint64_t weight_bytes() const override { return weights_.num_bytes(); }
  uint64_t workspace_bytes() const override { return workspace_.num_bytes(); }

  absl::Status Forward(const ForwardInputs& inputs,
                       const ModelCaches& caches) override;
  absl::Status ComputeLogits(const Tensor& rows, const Tensor& logits) override;

 private:
  struct Layer {
    Tensor input_norm;   // [H]
    Tensor q, k, v;      // [nH*D, H], [nKV*D, H], [nKV*D, H]
    Tensor q_bias, k_bias, v_bias;  // [nH*D], [nKV*D], [nKV*D] or empty
    Tensor o;            // [H, nH*D]
    Tensor o_bias;       // [H] or empty
    Tensor post_norm;    // [H]
    Tensor gate_up;      // [2I, H]: gate_proj rows then up_proj rows
    Tensor gate_up_bias; // [2I] or empty
    Tensor down;         // [H, I]
    Tensor down_bias;    // [H] or empty
  };
  // Activations for up to max_num_tokens tokens, act dtype.
  struct Workspace {
    Tensor residual;  // [T, H]
    Tensor x;         // [T, H] normed input of the current sub-layer
    Tensor q;         // [T, nH, D]
    Tensor k;         // [T, nKV, D]
    Tensor v;         // [T, nKV, D]
    Tensor attn;      // [T, nH, D]
    Tensor proj;      // [T, H] output of o_proj / down_proj
    Tensor gate_up;   // [T, 2I]
    Tensor act;       // [T, I]
    Tensor gathered;  // [R, H] rows picked for logits
    Tensor inv_freq;  // [rotary_dim / 2], f32
  };

  LlamaModel(const ModelConfig& config, Backend* backend)
      : config_(config), backend_(backend) {}
  absl::Status AllocateWorkspace(const ModelLoadOptions& options);

  ModelConfig config_;
  Backend* backend_;
  DeviceBuffer weights_;
  DeviceBuffer workspace_;
  Tensor embed_;       // [V, H]
  Tensor final_norm_;  // [H]
  Tensor lm_head_;     // [V, H]; same memory as embed_ when tied
  std::vector<Layer> layers_;
  Workspace ws_;
  RopeParams rope_;
  int64_t max_num_tokens_ = 0;
  int64_t last_num_tokens_ = 0;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_LLAMA_H_
