// MambaForCausalLM (Mamba-1) over the Backend op set (transformers'
// modeling_mamba.py, slow_forward): embedding → per layer [RMSNorm → mixer →
// residual] → RMSNorm (norm_f) → lm_head. The mixer: in_proj → (x, z); causal
// depthwise conv over x (bias) → SiLU; x_proj → (dt_rank, B, C); dt =
// dt_proj(dt_rank part) with dt_proj's bias inside the softplus; selective
// scan from the sequence's state slot; D skip; gate silu(z); out_proj.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MAMBA1_H_
#define HYBRIDSERVE_ENGINE_MODEL_MAMBA1_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"
#include "engine/model/model.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class Mamba1Model final : public Model {
 public:
  static absl::StatusOr<std::unique_ptr<Mamba1Model>> Load(
      const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
      const ModelLoadOptions& options);

  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t num_kv_layers() const override { return 0; }
  uint64_t weight_bytes() const override { return weights_.num_bytes(); }
  uint64_t workspace_bytes() const override { return workspace_.num_bytes(); }

  absl::Status Forward(const ForwardInputs& inputs,
                       const ModelCaches& caches) override;
  absl::Status ComputeLogits(const Tensor& rows, const Tensor& logits) override;

 private:
  struct Layer {
    Tensor norm;                    // [H]
    Tensor in_proj, in_proj_bias;   // [2D, H], [2D] or empty: x rows then z rows
    Tensor in_x, in_z, in_x_bias, in_z_bias;  // views
    Tensor conv_weight;             // [D, 1, K] as stored
    Tensor conv_w;                  // [D, K] view
    Tensor conv_bias;               // [D] or empty
    Tensor x_proj;                  // [R + 2N, H... D]: dt_rank rows, then B, C
    Tensor x_proj_dt, x_proj_bc;    // views [R, D], [2N, D]
    Tensor dt_proj, dt_proj_bias;   // [D, R], [D]
    Tensor a_log;                   // [D, N]
    Tensor d;                       // [D]
    Tensor out, out_bias;           // [H, D], [H] or empty
  };
  struct Workspace {
    Tensor residual;  // [T, H]
    Tensor x;         // [T, H]
    Tensor proj;      // [T, H]
    Tensor xs;        // [T, D] in_proj x part, then conv output
    Tensor z;         // [T, D]
    Tensor dt_low;    // [T, R]
    Tensor bc;        // [T, 2N]
    Tensor dt;        // [T, D]
    Tensor y;         // [T, D]
    Tensor gathered;  // [R, H]
  };

  Mamba1Model(const ModelConfig& config, Backend* backend)
      : config_(config), backend_(backend) {}

  ModelConfig config_;
  Backend* backend_;
  DeviceBuffer weights_;
  DeviceBuffer workspace_;
  Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  Workspace ws_;
  int64_t max_num_tokens_ = 0;
  int64_t last_num_tokens_ = 0;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_MAMBA1_H_
