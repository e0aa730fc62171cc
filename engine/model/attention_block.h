// The self-attention sub-layer of the decoder graph (transformers'
// LlamaAttention, MistralAttention, Qwen2Attention, Qwen3Attention,
// BambaAttention; eager): q, k, v projections (GQA, optional biases) →
// optional per-head RMSNorm of q and k (Qwen3) → rotary on the first
// rotary_dim dims of q and k →
// the new K/V written into the layer's paged cache → causal paged attention
// scaled by 1/sqrt(head_dim) → o_proj (optional bias).
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_ATTENTION_BLOCK_H_
#define HYBRIDSERVE_ENGINE_MODEL_ATTENTION_BLOCK_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "engine/model/weight_loader.h"
#include "engine/model/workspace_plan.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class AttentionBlock {
 public:
  // Plans the weights under `prefix` (e.g. "model.layers.0.self_attn."):
  // {q,k,v,o}_proj.weight; {q,k,v}_proj.bias when config.attention_bias,
  // o_proj.bias when config.attention_out_bias; {q,k}_norm.weight when
  // config.qk_norm.
  void AddWeights(WeightLoader& loader, const std::string& prefix,
                  const ModelConfig& config);

  // The step buffers and the rotary table, shared by every attention block of
  // a model (one layer runs at a time).
  struct Workspace {
    Tensor q;         // [T, nH, D]
    Tensor k;         // [T, nKV, D]
    Tensor v;         // [T, nKV, D]
    Tensor attn;      // [T, nH, D]
    Tensor inv_freq;  // [rotary_dim / 2], f32
    RopeParams rope;  // reads inv_freq; filled by InitRope
  };
  static void PlanWorkspace(WorkspacePlan& plan, const ModelConfig& config,
                            int64_t max_num_tokens, DType act, Workspace* ws);
  // Uploads the config's rotary table into ws->inv_freq and fills ws->rope.
  // REQUIRES: the plan that placed *ws is allocated.
  static absl::Status InitRope(Backend& b, const ModelConfig& config, Workspace* ws);

  // out[T, H] = attention(x[T, H]) for the batch's tokens, writing their K/V
  // into `kv` at inputs.slot_mapping first.
  absl::Status Forward(Backend& b, const Workspace& ws, const Tensor& x,
                       const ForwardInputs& inputs, const KvLayerCache& kv,
                       const Tensor& out) const;

 private:
  Tensor q_, k_, v_;                 // [nH*D, H], [nKV*D, H], [nKV*D, H]
  Tensor q_bias_, k_bias_, v_bias_;  // [nH*D], [nKV*D], [nKV*D] or empty
  Tensor o_;                         // [H, nH*D]
  Tensor o_bias_;                    // [H] or empty
  Tensor q_norm_, k_norm_;           // [D], [D] or empty
  float norm_eps_ = 0.0f;            // rms_norm_eps of q_norm / k_norm
  float scale_ = 0.0f;               // 1 / sqrt(head_dim)
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_ATTENTION_BLOCK_H_
