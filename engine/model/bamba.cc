#include "engine/model/bamba.h"

#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/model/weight_loader.h"
#include "engine/model/workspace_plan.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {

absl::StatusOr<std::unique_ptr<BambaModel>> BambaModel::Load(
    const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
    const ModelLoadOptions& options) {
  if (options.max_num_tokens <= 0 || options.max_logits_rows <= 0) {
    return absl::InvalidArgumentError("max_num_tokens and max_logits_rows must be > 0");
  }
  std::unique_ptr<BambaModel> m(new BambaModel(config, backend));
  const int64_t h = config.hidden_size, inter = config.intermediate_size;
  const int64_t qd = config.num_attention_heads * config.head_dim;
  const int64_t kvd = config.num_kv_heads * config.head_dim;

  WeightLoader loader(&checkpoint, backend, options.weight_precision,
                      options.random_weights_seed);
  loader.Add("model.embed_tokens.weight", {config.vocab_size, h}, &m->embed_);
  m->layers_.resize(config.num_layers);
  int64_t num_attention = 0, num_mamba = 0;
  for (int64_t i = 0; i < config.num_layers; ++i) {
    Layer& l = m->layers_[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    l.is_attention = config.layer_kinds[i] == LayerKind::kAttention;
    l.cache_index = l.is_attention ? num_attention++ : num_mamba++;
    loader.Add(p + "input_layernorm.weight", {h}, &l.input_norm);
    if (l.is_attention) {
      Attention& a = l.attn;
      loader.Add(p + "self_attn.q_proj.weight", {qd, h}, &a.q);
      loader.Add(p + "self_attn.k_proj.weight", {kvd, h}, &a.k);
      loader.Add(p + "self_attn.v_proj.weight", {kvd, h}, &a.v);
      loader.Add(p + "self_attn.o_proj.weight", {h, qd}, &a.o);
      if (config.attention_bias) {
        loader.Add(p + "self_attn.q_proj.bias", {qd}, &a.q_bias);
        loader.Add(p + "self_attn.k_proj.bias", {kvd}, &a.k_bias);
        loader.Add(p + "self_attn.v_proj.bias", {kvd}, &a.v_bias);
        loader.Add(p + "self_attn.o_proj.bias", {h}, &a.o_bias);
      }
    } else {
      l.mamba.AddWeights(loader, p + "mamba.", config.ssm, h);
    }
    loader.Add(p + "pre_ff_layernorm.weight", {h}, &l.pre_ff_norm);
    loader.Add({p + "feed_forward.gate_proj.weight", p + "feed_forward.up_proj.weight"},
               {inter, inter}, {2 * inter, h}, &l.gate_up);
    loader.Add(p + "feed_forward.down_proj.weight", {h, inter}, &l.down);
    if (config.mlp_bias) {
      loader.Add({p + "feed_forward.gate_proj.bias", p + "feed_forward.up_proj.bias"},
                 {inter, inter}, {2 * inter}, &l.gate_up_bias);
      loader.Add(p + "feed_forward.down_proj.bias", {h}, &l.down_bias);
    }
  }
  loader.Add("model.final_layernorm.weight", {h}, &m->final_norm_);
  const bool tied = config.tie_word_embeddings;
  if (!tied) loader.Add("lm_head.weight", {config.vocab_size, h}, &m->lm_head_);
  HS_RETURN_IF_ERROR(loader.Load(options.progress));
  m->weights_ = loader.TakeBuffer();
  if (tied) m->lm_head_ = m->embed_;
  for (Layer& l : m->layers_) {
    if (!l.is_attention) l.mamba.Finish();
  }

  const int64_t t = options.max_num_tokens, r = options.max_logits_rows;
  const int64_t nh = config.num_attention_heads, nkv = config.num_kv_heads;
  const int64_t d = config.head_dim, half = config.rotary_dim() / 2;
  const DType act = backend->act_dtype();
  Workspace& ws = m->ws_;
  WorkspacePlan plan;
  plan.Add(&ws.residual, act, {t, h});
  plan.Add(&ws.x, act, {t, h});
  plan.Add(&ws.proj, act, {t, h});
  if (num_attention > 0) {
    plan.Add(&ws.q, act, {t, nh, d});
    plan.Add(&ws.k, act, {t, nkv, d});
    plan.Add(&ws.v, act, {t, nkv, d});
    plan.Add(&ws.attn, act, {t, nh, d});
    plan.Add(&ws.inv_freq, DType::kF32, {half});
  }
  plan.Add(&ws.gate_up, act, {t, 2 * inter});
  plan.Add(&ws.act, act, {t, inter});
  if (num_mamba > 0) Mamba2Mixer::PlanWorkspace(plan, config.ssm, t, act, &ws.mamba);
  plan.Add(&ws.gathered, act, {r, h});
  HS_ASSIGN_OR_RETURN(m->workspace_, plan.Allocate(backend));
  if (num_attention > 0) {
    const RopeTables tables = ComputeRopeTables(config.rope, config.rotary_dim());
    HS_RETURN_IF_ERROR(backend->CopyToDevice(tables.inv_freq.data(), ws.inv_freq.data,
                                             tables.inv_freq.size() * sizeof(float)));
    m->rope_ = {.inv_freq = ws.inv_freq,
                .rotary_dim = config.rotary_dim(),
                .attention_scaling = tables.attention_scaling};
  }
  m->max_num_tokens_ = t;
  return m;
}

absl::Status BambaModel::AttentionForward(const Layer& l, const ForwardInputs& in,
                                          const KvLayerCache& kv, int64_t t) {
  Backend& b = *backend_;
  const Attention& a = l.attn;
  const float scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  Tensor x = ws_.x.Rows(0, t);
  Tensor q = ws_.q.Rows(0, t), k = ws_.k.Rows(0, t), v = ws_.v.Rows(0, t);
  Tensor attn = ws_.attn.Rows(0, t);
  const int64_t qd = q.row_size(), kvd = k.row_size();
  HS_RETURN_IF_ERROR(b.Gemm(x, a.q, a.q_bias, q.Reshape({t, qd})));
  HS_RETURN_IF_ERROR(b.Gemm(x, a.k, a.k_bias, k.Reshape({t, kvd})));
  HS_RETURN_IF_ERROR(b.Gemm(x, a.v, a.v_bias, v.Reshape({t, kvd})));
  HS_RETURN_IF_ERROR(b.Rope(q, k, in.positions, rope_));
  HS_RETURN_IF_ERROR(b.KvWrite(k, v, in.slot_mapping, kv.k, kv.v));
  HS_RETURN_IF_ERROR(b.PagedAttention(q, kv.k, kv.v, in.attention, scale, attn));
  return b.Gemm(attn.Reshape({t, qd}), a.o, a.o_bias, ws_.proj.Rows(0, t));
}

absl::Status BambaModel::Forward(const ForwardInputs& in, const ModelCaches& caches) {
  const int64_t t = in.token_ids.dim(0);
  if (t <= 0 || t > max_num_tokens_ ||
      static_cast<int64_t>(caches.kv.size()) != config_.num_attention_layers() ||
      static_cast<int64_t>(caches.ssm.size()) != config_.num_ssm_layers()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Bamba forward: ", t, " tokens (max ", max_num_tokens_, "), ", caches.kv.size(),
        " KV layers, ", caches.ssm.size(), " SSM state layers"));
  }
  Backend& b = *backend_;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  Tensor residual = ws_.residual.Rows(0, t), x = ws_.x.Rows(0, t);
  Tensor proj = ws_.proj.Rows(0, t);
  Tensor gate_up = ws_.gate_up.Rows(0, t), act = ws_.act.Rows(0, t);
  HS_RETURN_IF_ERROR(b.Embedding(in.token_ids, embed_, residual));
  HS_RETURN_IF_ERROR(b.RmsNorm(residual, layers_[0].input_norm, eps, x));
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    const Layer& l = layers_[i];
    if (l.is_attention) {
      HS_RETURN_IF_ERROR(AttentionForward(l, in, caches.kv[l.cache_index], t));
    } else {
      HS_RETURN_IF_ERROR(
          l.mamba.Forward(b, ws_.mamba, x, caches.ssm[l.cache_index], in.ssm, proj));
    }
    HS_RETURN_IF_ERROR(b.AddRmsNorm(residual, proj, l.pre_ff_norm, eps, x));
    HS_RETURN_IF_ERROR(b.Gemm(x, l.gate_up, l.gate_up_bias, gate_up));
    HS_RETURN_IF_ERROR(b.SiluMul(gate_up, act));
    HS_RETURN_IF_ERROR(b.Gemm(act, l.down, l.down_bias, proj));
    const Tensor& next_norm =
        i + 1 < config_.num_layers ? layers_[i + 1].input_norm : final_norm_;
    HS_RETURN_IF_ERROR(b.AddRmsNorm(residual, proj, next_norm, eps, x));
  }
  last_num_tokens_ = t;
  return absl::OkStatus();
}

absl::Status BambaModel::ComputeLogits(const Tensor& rows, const Tensor& logits) {
  return LogitsOfRows(*backend_, ws_.x.Rows(0, last_num_tokens_), ws_.gathered, lm_head_,
                      rows, logits);
}

}  // namespace hybridserve::engine
