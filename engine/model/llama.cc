#include "engine/model/llama.h"

#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/model/weight_loader.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(
    const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
    const ModelLoadOptions& options) {
  if (options.max_num_tokens <= 0 || options.max_logits_rows <= 0) {
    return absl::InvalidArgumentError("max_num_tokens and max_logits_rows must be > 0");
  }
  std::unique_ptr<LlamaModel> m(new LlamaModel(config, backend));
  const int64_t h = config.hidden_size, inter = config.intermediate_size;
  const int64_t qd = config.num_attention_heads * config.head_dim;
  const int64_t kvd = config.num_kv_heads * config.head_dim;

  WeightLoader loader(&checkpoint, backend, options.weight_precision,
                      options.random_weights_seed);
  loader.Add("model.embed_tokens.weight", {config.vocab_size, h}, &m->embed_);
  m->layers_.resize(config.num_layers);
  for (int64_t i = 0; i < config.num_layers; ++i) {
    Layer& l = m->layers_[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    loader.Add(p + "input_layernorm.weight", {h}, &l.input_norm);
    loader.Add(p + "self_attn.q_proj.weight", {qd, h}, &l.q);
    loader.Add(p + "self_attn.k_proj.weight", {kvd, h}, &l.k);
    loader.Add(p + "self_attn.v_proj.weight", {kvd, h}, &l.v);
    loader.Add(p + "self_attn.o_proj.weight", {h, qd}, &l.o);
    if (config.attention_bias) {
      loader.Add(p + "self_attn.q_proj.bias", {qd}, &l.q_bias);
      loader.Add(p + "self_attn.k_proj.bias", {kvd}, &l.k_bias);
      loader.Add(p + "self_attn.v_proj.bias", {kvd}, &l.v_bias);
      loader.Add(p + "self_attn.o_proj.bias", {h}, &l.o_bias);
    }
    loader.Add(p + "post_attention_layernorm.weight", {h}, &l.post_norm);
    loader.Add({p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"},
               {inter, inter}, {2 * inter, h}, &l.gate_up);
    loader.Add(p + "mlp.down_proj.weight", {h, inter}, &l.down);
    if (config.mlp_bias) {
      loader.Add({p + "mlp.gate_proj.bias", p + "mlp.up_proj.bias"},
                 {inter, inter}, {2 * inter}, &l.gate_up_bias);
      loader.Add(p + "mlp.down_proj.bias", {h}, &l.down_bias);
    }
  }
  loader.Add("model.norm.weight", {h}, &m->final_norm_);
  // Tied checkpoints usually omit lm_head.weight; some keep a copy of it.
  const bool tied = config.tie_word_embeddings;
  if (!tied) loader.Add("lm_head.weight", {config.vocab_size, h}, &m->lm_head_);
  HS_RETURN_IF_ERROR(loader.Load(options.progress));
  m->weights_ = loader.TakeBuffer();
  if (tied) m->lm_head_ = m->embed_;
  HS_RETURN_IF_ERROR(m->AllocateWorkspace(options));
  return m;
}

absl::Status LlamaModel::AllocateWorkspace(const ModelLoadOptions& options) {
  const ModelConfig& c = config_;
  const int64_t t = options.max_num_tokens, r = options.max_logits_rows;
  const int64_t h = c.hidden_size, inter = c.intermediate_size, d = c.head_dim;
  const int64_t nh = c.num_attention_heads, nkv = c.num_kv_heads;
  const int64_t half = c.rotary_dim() / 2;
  const DType act = backend_->act_dtype();
  struct Item {
    Tensor* t;
    DType dtype;
    std::initializer_list<int64_t> shape;
  };
  const Item items[] = {
      {&ws_.residual, act, {t, h}},      {&ws_.x, act, {t, h}},
      {&ws_.q, act, {t, nh, d}},         {&ws_.k, act, {t, nkv, d}},
      {&ws_.v, act, {t, nkv, d}},        {&ws_.attn, act, {t, nh, d}},
      {&ws_.proj, act, {t, h}},          {&ws_.gate_up, act, {t, 2 * inter}},
      {&ws_.act, act, {t, inter}},       {&ws_.gathered, act, {r, h}},
      {&ws_.inv_freq, DType::kF32, {half}},
  };
  constexpr size_t kAlign = 256;
  size_t total = 0;
  for (const Item& it : items) {
    Tensor probe(nullptr, it.dtype, it.shape);
    total += (probe.num_bytes() + kAlign - 1) / kAlign * kAlign;
  }
  HS_ASSIGN_OR_RETURN(workspace_, backend_->Allocate(total, "workspace"));
  size_t offset = 0;
  for (const Item& it : items) {
    *it.t = Tensor(static_cast<char*>(workspace_.data()) + offset, it.dtype, it.shape);
    offset += (it.t->num_bytes() + kAlign - 1) / kAlign * kAlign;
  }
  const RopeTables tables = ComputeRopeTables(c.rope, c.rotary_dim());
  HS_RETURN_IF_ERROR(backend_->CopyToDevice(
      tables.inv_freq.data(), ws_.inv_freq.data, tables.inv_freq.size() * sizeof(float)));
  rope_.inv_freq = ws_.inv_freq;
  rope_.rotary_dim = c.rotary_dim();
  rope_.attention_scaling = tables.attention_scaling;
  max_num_tokens_ = t;
  return absl::OkStatus();
}

absl::Status LlamaModel::Forward(const ForwardInputs& in,
                                 const ModelCaches& caches) {
  const std::vector<KvLayerCache>& kv = caches.kv;
  const int64_t t = in.token_ids.dim(0);
  if (t <= 0 || t > max_num_tokens_ ||
      static_cast<int64_t>(kv.size()) != config_.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Llama forward: ", t, " tokens (max ", max_num_tokens_, "), ", kv.size(),
        " KV layers"));
  }
  Backend& b = *backend_;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  Tensor residual = ws_.residual.Rows(0, t), x = ws_.x.Rows(0, t);
  Tensor q = ws_.q.Rows(0, t), k = ws_.k.Rows(0, t), v = ws_.v.Rows(0, t);
  Tensor attn = ws_.attn.Rows(0, t), proj = ws_.proj.Rows(0, t);
  Tensor gate_up = ws_.gate_up.Rows(0, t), act = ws_.act.Rows(0, t);
  const int64_t qd = q.row_size(), kvd = k.row_size();

  HS_RETURN_IF_ERROR(b.Embedding(in.token_ids, embed_, residual));
  HS_RETURN_IF_ERROR(b.RmsNorm(residual, layers_[0].input_norm, eps, x));
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    const Layer& l = layers_[i];
    HS_RETURN_IF_ERROR(b.Gemm(x, l.q, l.q_bias, q.Reshape({t, qd})));
    HS_RETURN_IF_ERROR(b.Gemm(x, l.k, l.k_bias, k.Reshape({t, kvd})));
    HS_RETURN_IF_ERROR(b.Gemm(x, l.v, l.v_bias, v.Reshape({t, kvd})));
    HS_RETURN_IF_ERROR(b.Rope(q, k, in.positions, rope_));
    HS_RETURN_IF_ERROR(b.KvWrite(k, v, in.slot_mapping, kv[i].k, kv[i].v));
    HS_RETURN_IF_ERROR(b.PagedAttention(q, kv[i].k, kv[i].v, in.attention, scale, attn));
    HS_RETURN_IF_ERROR(b.Gemm(attn.Reshape({t, qd}), l.o, l.o_bias, proj));
    HS_RETURN_IF_ERROR(b.AddRmsNorm(residual, proj, l.post_norm, eps, x));
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

absl::Status LlamaModel::ComputeLogits(const Tensor& rows, const Tensor& logits) {
  return LogitsOfRows(*backend_, ws_.x.Rows(0, last_num_tokens_), ws_.gathered, lm_head_,
                      rows, logits);
}

}  // namespace hybridserve::engine
