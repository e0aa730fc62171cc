#include "engine/model/mamba_model.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

// mamba_ssm-converted checkpoints name the embedding "embedding" (transformers
// renames it on load).
std::string EmbeddingName(const Checkpoint& checkpoint) {
  return checkpoint.Find("backbone.embeddings.weight") == nullptr &&
                 checkpoint.Find("backbone.embedding.weight") != nullptr
             ? "backbone.embedding.weight"
             : "backbone.embeddings.weight";
}

}  // namespace

template <typename Mixer>
absl::StatusOr<std::unique_ptr<MambaModel<Mixer>>> MambaModel<Mixer>::Load(
    const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
    const ModelLoadOptions& options) {
  std::unique_ptr<MambaModel> m(new MambaModel(config, backend, EmbeddingName(checkpoint)));
  HS_RETURN_IF_ERROR(m->Init(checkpoint, options));
  return m;
}

template <typename Mixer>
MambaModel<Mixer>::MambaModel(const ModelConfig& config, Backend* backend,
                              std::string embed_name)
    : ResidualStackModel(config, backend,
                         {.embed = std::move(embed_name),
                          .final_norm = "backbone.norm_f.weight"}) {}

template <typename Mixer>
void MambaModel<Mixer>::PlanLayerWeights(WeightLoader& loader) {
  const int64_t h = config().hidden_size;
  layers_.resize(config().num_layers);
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    const std::string p = absl::StrCat("backbone.layers.", i, ".");
    loader.Add(p + "norm.weight", {h}, &l.norm);
    l.mixer.AddWeights(loader, p + "mixer.", config().ssm, h);
  }
}

template <typename Mixer>
void MambaModel<Mixer>::PlanLayerWorkspace(WorkspacePlan& plan, int64_t max_num_tokens,
                                           DType act) {
  Mixer::PlanWorkspace(plan, config().ssm, max_num_tokens, act, &mixer_ws_);
}

template <typename Mixer>
absl::Status MambaModel<Mixer>::FinishLoad() {
  for (Layer& l : layers_) l.mixer.Finish();
  return absl::OkStatus();
}

template <typename Mixer>
absl::Status MambaModel<Mixer>::RunSublayer(int64_t s, const ForwardInputs& in,
                                            const ModelCaches& caches, const Tensor& x,
                                            const Tensor& out) const {
  return layers_[s].mixer.Forward(backend(), mixer_ws_, x, caches.ssm[s], in.ssm, out);
}

template class MambaModel<Mamba1Mixer>;
template class MambaModel<Mamba2Mixer>;

}  // namespace hybridserve::engine
