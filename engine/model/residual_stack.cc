#include "engine/model/residual_stack.h"

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {

absl::Status ResidualStackModel::Init(const Checkpoint& checkpoint,
                                      const ModelLoadOptions& options) {
  if (options.max_num_tokens <= 0 || options.max_logits_rows <= 0) {
    return absl::InvalidArgumentError("max_num_tokens and max_logits_rows must be > 0");
  }
  const int64_t h = config_.hidden_size;
  WeightLoader loader(&checkpoint, backend_, options.weight_precision,
                      options.random_weights_seed);
  loader.Add(names_.embed, {config_.vocab_size, h}, &embed_);
  PlanLayerWeights(loader);
  loader.Add(names_.final_norm, {h}, &final_norm_);
  // Tied checkpoints usually omit lm_head.weight; some keep a copy of it.
  const bool tied = config_.tie_word_embeddings;
  if (!tied) loader.Add("lm_head.weight", {config_.vocab_size, h}, &lm_head_);
  HS_RETURN_IF_ERROR(loader.Load(options.progress));
  weights_ = loader.TakeBuffer();
  if (tied) lm_head_ = embed_;

  const int64_t t = options.max_num_tokens;
  const DType act = backend_->act_dtype();
  WorkspacePlan plan;
  plan.Add(&ws_.residual, act, {t, h});
  plan.Add(&ws_.x, act, {t, h});
  plan.Add(&ws_.proj, act, {t, h});
  plan.Add(&ws_.gathered, act, {options.max_logits_rows, h});
  PlanLayerWorkspace(plan, t, act);
  HS_ASSIGN_OR_RETURN(workspace_, plan.Allocate(backend_));
  max_num_tokens_ = t;
  return FinishLoad();
}

absl::Status ResidualStackModel::Forward(const ForwardInputs& in,
                                         const ModelCaches& caches) {
  const int64_t t = in.token_ids.dim(0);
  if (t <= 0 || t > max_num_tokens_ ||
      static_cast<int64_t>(caches.kv.size()) != num_kv_layers() ||
      static_cast<int64_t>(caches.ssm.size()) != config_.num_ssm_layers()) {
    return absl::InvalidArgumentError(absl::StrCat(
        config_.architecture, " forward: ", t, " tokens (max ", max_num_tokens_, "), ",
        caches.kv.size(), " KV layers and ", caches.ssm.size(), " SSM state layers for ",
        num_kv_layers(), " attention and ", config_.num_ssm_layers(), " SSM layers"));
  }
  Backend& b = *backend_;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const Tensor residual = ws_.residual.Rows(0, t), x = ws_.x.Rows(0, t);
  const Tensor proj = ws_.proj.Rows(0, t);
  const int64_t n = num_sublayers();
  HS_RETURN_IF_ERROR(b.Embedding(in.token_ids, embed_, residual));
  HS_RETURN_IF_ERROR(b.RmsNorm(residual, sublayer_norm(0), eps, x));
  for (int64_t s = 0; s < n; ++s) {
    HS_RETURN_IF_ERROR(RunSublayer(s, in, caches, x, proj));
    const Tensor& next_norm = s + 1 < n ? sublayer_norm(s + 1) : final_norm_;
    HS_RETURN_IF_ERROR(b.AddRmsNorm(residual, proj, next_norm, eps, x));
  }
  last_num_tokens_ = t;
  return absl::OkStatus();
}

absl::Status ResidualStackModel::ComputeLogits(const Tensor& rows, const Tensor& logits) {
  return LogitsOfRows(*backend_, ws_.x.Rows(0, last_num_tokens_), ws_.gathered, lm_head_,
                      rows, logits);
}

}  // namespace hybridserve::engine
