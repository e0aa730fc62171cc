// BambaForCausalLM over the Backend op set (transformers' modeling_bamba.py,
// eager attention): embedding → per layer [RMSNorm → mixer → residual →
// RMSNorm → SwiGLU MLP → residual] → RMSNorm → lm_head, where the mixer is
// attention (GQA, partial rotary: rotary_dim of head_dim, optional biases) at
// the config's attn_layer_indices and a Mamba-2 mixer elsewhere. Attention
// layers use the paged KV cache, Mamba layers the state slots.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_BAMBA_H_
#define HYBRIDSERVE_ENGINE_MODEL_BAMBA_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"
#include "engine/model/mamba2_mixer.h"
#include "engine/model/model.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class BambaModel final : public Model {
 public:
  // Loads the weights and allocates the workspace. Errors name the missing or
  // misshapen tensor and its file. `backend` must outlive the model.
  static absl::StatusOr<std::unique_ptr<BambaModel>> Load(
      const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
      const ModelLoadOptions& options);

  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t num_kv_layers() const override { return config_.num_attention_layers(); }
  uint64_t weight_bytes() const override { return weights_.num_bytes(); }
  uint64_t workspace_bytes() const override { return workspace_.num_bytes(); }

  absl::Status Forward(const ForwardInputs& inputs,
                       const ModelCaches& caches) override;
  absl::Status ComputeLogits(const Tensor& rows, const Tensor& logits) override;

 private:
  struct Attention {
    Tensor q, k, v;                 // [nH*D, H], [nKV*D, H], [nKV*D, H]
    Tensor q_bias, k_bias, v_bias;  // or empty
    Tensor o;                       // [H, nH*D]
    Tensor o_bias;                  // [H] or empty
  };
  struct Layer {
    bool is_attention = false;
    int64_t cache_index = 0;  // into caches.kv or caches.ssm
    Tensor input_norm;        // [H]
    Attention attn;           // attention layers
    Mamba2Mixer mamba;        // Mamba layers
    Tensor pre_ff_norm;       // [H]
    Tensor gate_up;           // [2I, H]: gate_proj rows then up_proj rows
    Tensor gate_up_bias;      // [2I] or empty
    Tensor down;              // [H, I]
    Tensor down_bias;         // [H] or empty
  };
  struct Workspace {
    Tensor residual;  // [T, H]
    Tensor x;         // [T, H] normed input of the current sub-layer
    Tensor proj;      // [T, H] mixer / MLP output
    Tensor q;         // [T, nH, D]
    Tensor k;         // [T, nKV, D]
    Tensor v;         // [T, nKV, D]
    Tensor attn;      // [T, nH, D]
    Tensor gate_up;   // [T, 2I]
    Tensor act;       // [T, I]
    Mamba2Mixer::Workspace mamba;
    Tensor gathered;  // [R, H]
    Tensor inv_freq;  // [rotary_dim / 2], f32
  };

  BambaModel(const ModelConfig& config, Backend* backend)
      : config_(config), backend_(backend) {}
  absl::Status AttentionForward(const Layer& l, const ForwardInputs& in,
                                const KvLayerCache& kv, int64_t t);

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

#endif  // HYBRIDSERVE_ENGINE_MODEL_BAMBA_H_
