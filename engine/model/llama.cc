#include "engine/model/llama.h"

#include "engine/status_macros.h"

namespace hybridserve::engine {

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(
    const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
    const ModelLoadOptions& options) {
  std::unique_ptr<LlamaModel> m(new LlamaModel(config, backend));
  HS_RETURN_IF_ERROR(m->Init(checkpoint, options));
  return m;
}

LlamaModel::LlamaModel(const ModelConfig& config, Backend* backend)
    : DecoderModel(config, backend,
                   {.embed = "model.embed_tokens.weight", .final_norm = "model.norm.weight"},
                   {.post_mixer_norm = "post_attention_layernorm.weight", .mlp = "mlp."}) {}

}  // namespace hybridserve::engine
