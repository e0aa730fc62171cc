#include "engine/model/mamba2.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/model/weight_loader.h"
#include "engine/model/workspace_plan.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {

absl::StatusOr<std::unique_ptr<Mamba2Model>> Mamba2Model::Load(
    const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
    const ModelLoadOptions& options) {
  if (options.max_num_tokens <= 0 || options.max_logits_rows <= 0) {
    return absl::InvalidArgumentError("max_num_tokens and max_logits_rows must be > 0");
  }
  std::unique_ptr<Mamba2Model> m(new Mamba2Model(config, backend));
  const int64_t h = config.hidden_size;
  WeightLoader loader(&checkpoint, backend, options.weight_precision,
                      options.random_weights_seed);
  // mamba_ssm-converted checkpoints name it "embedding" (transformers renames
  // it on load).
  const std::string embed_name = checkpoint.Find("backbone.embeddings.weight") == nullptr &&
                                         checkpoint.Find("backbone.embedding.weight") != nullptr
                                     ? "backbone.embedding.weight"
                                     : "backbone.embeddings.weight";
  loader.Add(embed_name, {config.vocab_size, h}, &m->embed_);
  m->layers_.resize(config.num_layers);
  for (int64_t i = 0; i < config.num_layers; ++i) {
    Layer& l = m->layers_[i];
    const std::string p = absl::StrCat("backbone.layers.", i, ".");
    loader.Add(p + "norm.weight", {h}, &l.norm);
    l.mixer.AddWeights(loader, p + "mixer.", config.ssm, h);
  }
  loader.Add("backbone.norm_f.weight", {h}, &m->final_norm_);
  const bool tied = config.tie_word_embeddings;
  if (!tied) loader.Add("lm_head.weight", {config.vocab_size, h}, &m->lm_head_);
  HS_RETURN_IF_ERROR(loader.Load(options.progress));
  m->weights_ = loader.TakeBuffer();
  if (tied) m->lm_head_ = m->embed_;
  for (Layer& l : m->layers_) l.mixer.Finish();

  const int64_t t = options.max_num_tokens, r = options.max_logits_rows;
  const DType act = backend->act_dtype();
  WorkspacePlan plan;
  plan.Add(&m->ws_.residual, act, {t, h});
  plan.Add(&m->ws_.x, act, {t, h});
  plan.Add(&m->ws_.proj, act, {t, h});
  Mamba2Mixer::PlanWorkspace(plan, config.ssm, t, act, &m->ws_.mixer);
  plan.Add(&m->ws_.gathered, act, {r, h});
  HS_ASSIGN_OR_RETURN(m->workspace_, plan.Allocate(backend));
  m->max_num_tokens_ = t;
  return m;
}

absl::Status Mamba2Model::Forward(const ForwardInputs& in, const ModelCaches& caches) {
  const int64_t t = in.token_ids.dim(0);
  if (t <= 0 || t > max_num_tokens_ ||
      static_cast<int64_t>(caches.ssm.size()) != config_.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Mamba2 forward: ", t, " tokens (max ", max_num_tokens_, "), ",
        caches.ssm.size(), " SSM state layers for ", config_.num_layers, " layers"));
  }
  Backend& b = *backend_;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  Tensor residual = ws_.residual.Rows(0, t), x = ws_.x.Rows(0, t);
  Tensor proj = ws_.proj.Rows(0, t);
  HS_RETURN_IF_ERROR(b.Embedding(in.token_ids, embed_, residual));
  HS_RETURN_IF_ERROR(b.RmsNorm(residual, layers_[0].norm, eps, x));
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    HS_RETURN_IF_ERROR(
        layers_[i].mixer.Forward(b, ws_.mixer, x, caches.ssm[i], in.ssm, proj));
    const Tensor& next_norm =
        i + 1 < config_.num_layers ? layers_[i + 1].norm : final_norm_;
    HS_RETURN_IF_ERROR(b.AddRmsNorm(residual, proj, next_norm, eps, x));
  }
  last_num_tokens_ = t;
  return absl::OkStatus();
}

absl::Status Mamba2Model::ComputeLogits(const Tensor& rows, const Tensor& logits) {
  return LogitsOfRows(*backend_, ws_.x.Rows(0, last_num_tokens_), ws_.gathered, lm_head_,
                      rows, logits);
}

}  // namespace hybridserve::engine
