#include "engine/model/model_factory.h"

#include "absl/strings/str_cat.h"
#include "engine/model/decoder_model.h"
#include "engine/model/mamba_model.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

template <typename M>
absl::StatusOr<std::unique_ptr<Model>> Upcast(absl::StatusOr<std::unique_ptr<M>> m) {
  if (!m.ok()) return m.status();
  return std::unique_ptr<Model>(*std::move(m));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const ModelConfig& config,
                                                 const Checkpoint& checkpoint, Backend* backend,
                                                 const ModelLoadOptions& options) {
  switch (config.graph) {
    case ModelGraph::kDecoder:
      return Upcast(DecoderModel::Load(config, checkpoint, backend, options));
    case ModelGraph::kMambaBackbone:
      if (!config.layer_kinds.empty() && config.layer_kinds[0] == LayerKind::kMamba1) {
        return Upcast(Mamba1Model::Load(config, checkpoint, backend, options));
      }
      return Upcast(Mamba2Model::Load(config, checkpoint, backend, options));
  }
  return absl::UnimplementedError(
      absl::StrCat("architecture ", config.architecture, " has no model graph"));
}

}  // namespace hybridserve::engine
