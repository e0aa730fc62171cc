// The Mamba-2 mixer (transformers' Mamba2Mixer / BambaMixer, mamba_ssm's
// Mamba2), shared by Mamba2ForCausalLM and the Mamba layers of Bamba:
//   in_proj → [z | xBC | dt]; xBC → causal depthwise conv (bias) → SiLU;
//   selective scan over x with B, C (n_groups groups), dt, A, D, continuing from
//   the sequence's state slot; y → gated RMSNorm w · rmsnorm_per_group(y ·
//   silu(z)) over groups of d_inner / n_groups channels; out_proj.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MAMBA2_MIXER_H_
#define HYBRIDSERVE_ENGINE_MODEL_MAMBA2_MIXER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "engine/model/weight_loader.h"
#include "engine/model/workspace_plan.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class Mamba2Mixer {
 public:
  // Plans the weights under `prefix` (e.g. "backbone.layers.0.mixer."):
  // in_proj.{weight,bias}, conv1d.{weight,bias}, dt_bias, A_log, D,
  // norm.weight, out_proj.{weight,bias}. Call Finish() after loader.Load().
  void AddWeights(WeightLoader& loader, const std::string& prefix,
                  const SsmConfig& ssm, int64_t hidden_size);
  void Finish();

  // The step buffers, shared by every mixer of a model (one layer runs at a
  // time).
  struct Workspace {
    Tensor z;    // [T, d_inner]
    Tensor xbc;  // [T, conv_channels] in_proj's xBC part, then the conv output
    Tensor dt;   // [T, num_heads]
    Tensor y;    // [T, d_inner]
  };
  static void PlanWorkspace(WorkspacePlan& plan, const SsmConfig& ssm,
                            int64_t max_num_tokens, DType act, Workspace* ws);

  // out[T, H] = mixer(x[T, H]), updating `state` at the batch's slots.
  absl::Status Forward(Backend& b, const Workspace& ws, const Tensor& x,
                       const SsmLayerState& state, const SsmBatch& batch,
                       const Tensor& out) const;

 private:
  SsmConfig ssm_;
  Tensor in_proj_;       // [d_inner + conv_channels + heads, H]: z, xBC, dt rows
  Tensor in_proj_bias_;  // [same] or empty
  Tensor in_z_, in_xbc_, in_dt_;  // row views of in_proj_
  Tensor in_z_bias_, in_xbc_bias_, in_dt_bias_;  // views of in_proj_bias_ or empty
  Tensor conv_weight_;   // [conv_channels, 1, d_conv] as stored
  Tensor conv_w_;        // the same memory as [conv_channels, d_conv]
  Tensor conv_bias_;     // [conv_channels] or empty
  Tensor dt_bias_;       // [heads]
  Tensor a_log_;         // [heads]
  Tensor d_;             // [heads]
  Tensor norm_;          // [d_inner]
  Tensor out_;           // [H, d_inner]
  Tensor out_bias_;      // [H] or empty
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_MAMBA2_MIXER_H_
