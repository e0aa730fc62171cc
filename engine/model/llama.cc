#include "engine/model/llama.h"

#include <string>

#include "absl/strings/str_cat.h"
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
    : ResidualStackModel(config, backend,
                         {.embed = "model.embed_tokens.weight",
                          .final_norm = "model.norm.weight"}) {}

void LlamaModel::PlanLayerWeights(WeightLoader& loader) {
  const int64_t h = config().hidden_size;
  layers_.resize(config().num_layers);
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    loader.Add(p + "input_layernorm.weight", {h}, &l.input_norm);
    l.attention.AddWeights(loader, p + "self_attn.", config());
    loader.Add(p + "post_attention_layernorm.weight", {h}, &l.post_norm);
    l.mlp.AddWeights(loader, p + "mlp.", config());
  }
}

void LlamaModel::PlanLayerWorkspace(WorkspacePlan& plan, int64_t max_num_tokens, DType act) {
  AttentionBlock::PlanWorkspace(plan, config(), max_num_tokens, act, &attention_ws_);
  MlpBlock::PlanWorkspace(plan, config(), max_num_tokens, act, &mlp_ws_);
}

absl::Status LlamaModel::FinishLoad() {
  return AttentionBlock::InitRope(backend(), config(), &attention_ws_);
}

const Tensor& LlamaModel::sublayer_norm(int64_t s) const {
  const Layer& l = layers_[s / 2];
  return s % 2 == 0 ? l.input_norm : l.post_norm;
}

absl::Status LlamaModel::RunSublayer(int64_t s, const ForwardInputs& in,
                                     const ModelCaches& caches, const Tensor& x,
                                     const Tensor& out) const {
  const Layer& l = layers_[s / 2];
  if (s % 2 == 1) return l.mlp.Forward(backend(), mlp_ws_, x, out);
  return l.attention.Forward(backend(), attention_ws_, x, in, caches.kv[s / 2], out);
}

}  // namespace hybridserve::engine
