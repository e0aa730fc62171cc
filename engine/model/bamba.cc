#include "engine/model/bamba.h"

#include "engine/status_macros.h"

namespace hybridserve::engine {

absl::StatusOr<std::unique_ptr<BambaModel>> BambaModel::Load(
    const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
    const ModelLoadOptions& options) {
  std::unique_ptr<BambaModel> m(new BambaModel(config, backend));
  HS_RETURN_IF_ERROR(m->Init(checkpoint, options));
  return m;
}

BambaModel::BambaModel(const ModelConfig& config, Backend* backend)
    : DecoderModel(config, backend,
                   {.embed = "model.embed_tokens.weight",
                    .final_norm = "model.final_layernorm.weight"},
                   {.post_mixer_norm = "pre_ff_layernorm.weight", .mlp = "feed_forward."}) {}

}  // namespace hybridserve::engine
