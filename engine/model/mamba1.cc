#include "engine/model/mamba1.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/model/weight_loader.h"
#include "engine/model/workspace_plan.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

Tensor RowsOrEmpty(const Tensor& t, int64_t first, int64_t count) {
  return t.empty() ? Tensor() : t.Rows(first, count);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Mamba1Model>> Mamba1Model::Load(
    const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
    const ModelLoadOptions& options) {
  if (options.max_num_tokens <= 0 || options.max_logits_rows <= 0) {
    return absl::InvalidArgumentError("max_num_tokens and max_logits_rows must be > 0");
  }
  std::unique_ptr<Mamba1Model> m(new Mamba1Model(config, backend));
  const SsmConfig& s = config.ssm;
  const int64_t h = config.hidden_size, di = s.d_inner, n = s.d_state, r = s.dt_rank;
  WeightLoader loader(&checkpoint, backend, options.weight_precision,
                      options.random_weights_seed);
  const std::string embed_name = checkpoint.Find("backbone.embeddings.weight") == nullptr &&
                                         checkpoint.Find("backbone.embedding.weight") != nullptr
                                     ? "backbone.embedding.weight"
                                     : "backbone.embeddings.weight";
  loader.Add(embed_name, {config.vocab_size, h}, &m->embed_);
  m->layers_.resize(config.num_layers);
  for (int64_t i = 0; i < config.num_layers; ++i) {
    Layer& l = m->layers_[i];
    const std::string p = absl::StrCat("backbone.layers.", i, ".");
    const std::string q = p + "mixer.";
    loader.Add(p + "norm.weight", {h}, &l.norm);
    loader.Add(q + "in_proj.weight", {2 * di, h}, &l.in_proj);
    if (s.proj_bias) loader.Add(q + "in_proj.bias", {2 * di}, &l.in_proj_bias);
    loader.Add(q + "conv1d.weight", {di, 1, s.d_conv}, &l.conv_weight);
    if (s.conv_bias) loader.Add(q + "conv1d.bias", {di}, &l.conv_bias);
    loader.Add(q + "x_proj.weight", {r + 2 * n, di}, &l.x_proj);
    loader.Add(q + "dt_proj.weight", {di, r}, &l.dt_proj);
    loader.Add(q + "dt_proj.bias", {di}, &l.dt_proj_bias);
    loader.Add(q + "A_log", {di, n}, &l.a_log);
    loader.Add(q + "D", {di}, &l.d);
    loader.Add(q + "out_proj.weight", {h, di}, &l.out);
    if (s.proj_bias) loader.Add(q + "out_proj.bias", {h}, &l.out_bias);
  }
  loader.Add("backbone.norm_f.weight", {h}, &m->final_norm_);
  const bool tied = config.tie_word_embeddings;
  if (!tied) loader.Add("lm_head.weight", {config.vocab_size, h}, &m->lm_head_);
  HS_RETURN_IF_ERROR(loader.Load(options.progress));
  m->weights_ = loader.TakeBuffer();
  if (tied) m->lm_head_ = m->embed_;
  for (Layer& l : m->layers_) {
    l.in_x = l.in_proj.Rows(0, di);
    l.in_z = l.in_proj.Rows(di, di);
    l.in_x_bias = RowsOrEmpty(l.in_proj_bias, 0, di);
    l.in_z_bias = RowsOrEmpty(l.in_proj_bias, di, di);
    l.conv_w = l.conv_weight.Reshape({di, s.d_conv});
    l.x_proj_dt = l.x_proj.Rows(0, r);
    l.x_proj_bc = l.x_proj.Rows(r, 2 * n);
  }

  const int64_t t = options.max_num_tokens, rows = options.max_logits_rows;
  const DType act = backend->act_dtype();
  Workspace& ws = m->ws_;
  WorkspacePlan plan;
  plan.Add(&ws.residual, act, {t, h});
  plan.Add(&ws.x, act, {t, h});
  plan.Add(&ws.proj, act, {t, h});
  plan.Add(&ws.xs, act, {t, di});
  plan.Add(&ws.z, act, {t, di});
  plan.Add(&ws.dt_low, act, {t, r});
  plan.Add(&ws.bc, act, {t, 2 * n});
  plan.Add(&ws.dt, act, {t, di});
  plan.Add(&ws.y, act, {t, di});
  plan.Add(&ws.gathered, act, {rows, h});
  HS_ASSIGN_OR_RETURN(m->workspace_, plan.Allocate(backend));
  m->max_num_tokens_ = t;
  return m;
}

absl::Status Mamba1Model::Forward(const ForwardInputs& in, const ModelCaches& caches) {
  const int64_t t = in.token_ids.dim(0);
  if (t <= 0 || t > max_num_tokens_ ||
      static_cast<int64_t>(caches.ssm.size()) != config_.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Mamba forward: ", t, " tokens (max ", max_num_tokens_, "), ", caches.ssm.size(),
        " SSM state layers for ", config_.num_layers, " layers"));
  }
  Backend& b = *backend_;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  Tensor residual = ws_.residual.Rows(0, t), x = ws_.x.Rows(0, t), proj = ws_.proj.Rows(0, t);
  Tensor xs = ws_.xs.Rows(0, t), z = ws_.z.Rows(0, t), dt_low = ws_.dt_low.Rows(0, t);
  Tensor bc = ws_.bc.Rows(0, t), dt = ws_.dt.Rows(0, t), y = ws_.y.Rows(0, t);
  HS_RETURN_IF_ERROR(b.Embedding(in.token_ids, embed_, residual));
  HS_RETURN_IF_ERROR(b.RmsNorm(residual, layers_[0].norm, eps, x));
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    const Layer& l = layers_[i];
    const SsmLayerState& state = caches.ssm[i];
    HS_RETURN_IF_ERROR(b.Gemm(x, l.in_x, l.in_x_bias, xs));
    HS_RETURN_IF_ERROR(b.Gemm(x, l.in_z, l.in_z_bias, z));
    HS_RETURN_IF_ERROR(b.CausalConv1d(xs, l.conv_w, l.conv_bias, state.conv, in.ssm, true, xs));
    HS_RETURN_IF_ERROR(b.Gemm(xs, l.x_proj_dt, Tensor(), dt_low));
    HS_RETURN_IF_ERROR(b.Gemm(xs, l.x_proj_bc, Tensor(), bc));
    HS_RETURN_IF_ERROR(b.Gemm(dt_low, l.dt_proj, Tensor(), dt));
    HS_RETURN_IF_ERROR(
        b.Mamba1Scan(xs, dt, bc, z, l.a_log, l.dt_proj_bias, l.d, state.ssm, in.ssm, y));
    HS_RETURN_IF_ERROR(b.Gemm(y, l.out, l.out_bias, proj));
    const Tensor& next_norm = i + 1 < config_.num_layers ? layers_[i + 1].norm : final_norm_;
    HS_RETURN_IF_ERROR(b.AddRmsNorm(residual, proj, next_norm, eps, x));
  }
  last_num_tokens_ = t;
  return absl::OkStatus();
}

absl::Status Mamba1Model::ComputeLogits(const Tensor& rows, const Tensor& logits) {
  return LogitsOfRows(*backend_, ws_.x.Rows(0, last_num_tokens_), ws_.gathered, lm_head_,
                      rows, logits);
}

}  // namespace hybridserve::engine
