#include "engine/model/attention_block.h"

#include <cmath>

#include "engine/status_macros.h"

namespace hybridserve::engine {

void AttentionBlock::AddWeights(WeightLoader& loader, const std::string& prefix,
                                const ModelConfig& config) {
  const int64_t h = config.hidden_size;
  const int64_t qd = config.num_attention_heads * config.head_dim;
  const int64_t kvd = config.num_kv_heads * config.head_dim;
  loader.Add(prefix + "q_proj.weight", {qd, h}, &q_);
  loader.Add(prefix + "k_proj.weight", {kvd, h}, &k_);
  loader.Add(prefix + "v_proj.weight", {kvd, h}, &v_);
  loader.Add(prefix + "o_proj.weight", {h, qd}, &o_);
  if (config.attention_bias) {
    loader.Add(prefix + "q_proj.bias", {qd}, &q_bias_);
    loader.Add(prefix + "k_proj.bias", {kvd}, &k_bias_);
    loader.Add(prefix + "v_proj.bias", {kvd}, &v_bias_);
  }
  if (config.attention_out_bias) loader.Add(prefix + "o_proj.bias", {h}, &o_bias_);
  if (config.qk_norm) {
    loader.Add(prefix + "q_norm.weight", {config.head_dim}, &q_norm_);
    loader.Add(prefix + "k_norm.weight", {config.head_dim}, &k_norm_);
    norm_eps_ = static_cast<float>(config.rms_norm_eps);
  }
  scale_ = 1.0f / std::sqrt(static_cast<float>(config.head_dim));
}

void AttentionBlock::PlanWorkspace(WorkspacePlan& plan, const ModelConfig& config,
                                   int64_t t, DType act, Workspace* ws) {
  const int64_t nh = config.num_attention_heads, nkv = config.num_kv_heads;
  const int64_t d = config.head_dim;
  plan.Add(&ws->q, act, {t, nh, d});
  plan.Add(&ws->k, act, {t, nkv, d});
  plan.Add(&ws->v, act, {t, nkv, d});
  plan.Add(&ws->attn, act, {t, nh, d});
  plan.Add(&ws->inv_freq, DType::kF32, {config.rotary_dim() / 2});
}

absl::Status AttentionBlock::InitRope(Backend& b, const ModelConfig& config,
                                      Workspace* ws) {
  const RopeTables tables = ComputeRopeTables(config.rope, config.rotary_dim());
  HS_RETURN_IF_ERROR(b.CopyToDevice(tables.inv_freq.data(), ws->inv_freq.data,
                                    tables.inv_freq.size() * sizeof(float)));
  ws->rope = {.inv_freq = ws->inv_freq,
              .rotary_dim = config.rotary_dim(),
              .attention_scaling = tables.attention_scaling};
  return absl::OkStatus();
}

absl::Status AttentionBlock::Forward(Backend& b, const Workspace& ws, const Tensor& x,
                                     const ForwardInputs& in, const KvLayerCache& kv,
                                     const Tensor& out) const {
  const int64_t t = x.dim(0);
  const Tensor q = ws.q.Rows(0, t), k = ws.k.Rows(0, t), v = ws.v.Rows(0, t);
  const Tensor attn = ws.attn.Rows(0, t);
  const int64_t qd = q.row_size(), kvd = k.row_size();
  HS_RETURN_IF_ERROR(b.Gemm(x, q_, q_bias_, q.Reshape({t, qd})));
  HS_RETURN_IF_ERROR(b.Gemm(x, k_, k_bias_, k.Reshape({t, kvd})));
  HS_RETURN_IF_ERROR(b.Gemm(x, v_, v_bias_, v.Reshape({t, kvd})));
  if (!q_norm_.empty()) {
    // Each head's row of head_dim on its own, in place.
    const int64_t d = q.dim(2);
    const Tensor q_rows = q.Reshape({t * q.dim(1), d}), k_rows = k.Reshape({t * k.dim(1), d});
    HS_RETURN_IF_ERROR(b.RmsNorm(q_rows, q_norm_, norm_eps_, q_rows));
    HS_RETURN_IF_ERROR(b.RmsNorm(k_rows, k_norm_, norm_eps_, k_rows));
  }
  HS_RETURN_IF_ERROR(b.Rope(q, k, in.positions, ws.rope));
  HS_RETURN_IF_ERROR(b.KvWrite(k, v, in.slot_mapping, kv.k, kv.v));
  HS_RETURN_IF_ERROR(b.PagedAttention(q, kv.k, kv.v, in.attention, scale_, attn));
  return b.Gemm(attn.Reshape({t, qd}), o_, o_bias_, out);
}

}  // namespace hybridserve::engine
