// The Mamba-1 mixer (transformers' MambaMixer.slow_forward, mamba_ssm's
// Mamba): in_proj → (x, z); causal depthwise conv over x (bias) → SiLU;
// x_proj → (dt_rank part, B, C); dt = dt_proj(dt_rank part), with dt_proj's
// bias applied inside the scan's softplus; selective scan from the sequence's
// state slot; D skip; gate silu(z); out_proj.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MAMBA1_MIXER_H_
#define HYBRIDSERVE_ENGINE_MODEL_MAMBA1_MIXER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "engine/model/weight_loader.h"
#include "engine/model/workspace_plan.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class Mamba1Mixer {
 public:
  // Plans the weights under `prefix` (e.g. "backbone.layers.0.mixer."):
  // in_proj.{weight,bias}, conv1d.{weight,bias}, x_proj.weight,
  // dt_proj.{weight,bias}, A_log, D, out_proj.{weight,bias} (biases as the
  // config says). Call Finish() after loader.Load().
  void AddWeights(WeightLoader& loader, const std::string& prefix,
                  const SsmConfig& ssm, int64_t hidden_size);
  void Finish();

  // The step buffers, shared by every mixer of a model (one layer runs at a
  // time). D = d_inner, R = dt_rank, N = d_state.
  struct Workspace {
    Tensor xs;      // [T, D] in_proj's x part, then the conv output
    Tensor z;       // [T, D]
    Tensor dt_low;  // [T, R]
    Tensor bc;      // [T, 2N]
    Tensor dt;      // [T, D]
    Tensor y;       // [T, D]
  };
  static void PlanWorkspace(WorkspacePlan& plan, const SsmConfig& ssm,
                            int64_t max_num_tokens, DType act, Workspace* ws);

  // out[T, H] = mixer(x[T, H]), updating `state` at the batch's slots.
  absl::Status Forward(Backend& b, const Workspace& ws, const Tensor& x,
                       const SsmLayerState& state, const SsmBatch& batch,
                       const Tensor& out) const;

 private:
  SsmConfig ssm_;
  Tensor in_proj_, in_proj_bias_;       // [2D, H], [2D] or empty: x rows then z rows
  Tensor in_x_, in_z_;                  // row views of in_proj_
  Tensor in_x_bias_, in_z_bias_;        // views of in_proj_bias_ or empty
  Tensor conv_weight_;                  // [D, 1, d_conv] as stored
  Tensor conv_w_;                       // the same memory as [D, d_conv]
  Tensor conv_bias_;                    // [D] or empty
  Tensor x_proj_;                       // [R + 2N, D]: dt_rank rows, then B, C
  Tensor x_proj_dt_, x_proj_bc_;        // views [R, D], [2N, D]
  Tensor dt_proj_, dt_proj_bias_;       // [D, R], [D]
  Tensor a_log_;                        // [D, N]
  Tensor d_;                            // [D]
  Tensor out_, out_bias_;               // [H, D], [H] or empty
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_MAMBA1_MIXER_H_
