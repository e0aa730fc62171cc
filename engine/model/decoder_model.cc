#include "engine/model/decoder_model.h"

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {

absl::StatusOr<std::unique_ptr<DecoderModel>> DecoderModel::Load(
    const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
    const ModelLoadOptions& options) {
  std::unique_ptr<DecoderModel> m(new DecoderModel(config, backend));
  HS_RETURN_IF_ERROR(m->Init(checkpoint, options));
  return m;
}

DecoderModel::DecoderModel(const ModelConfig& config, Backend* backend)
    : ResidualStackModel(config, backend,
                         {.embed = std::string(config.tensor_names.embed),
                          .final_norm = std::string(config.tensor_names.final_norm)}) {}

void DecoderModel::PlanLayerWeights(WeightLoader& loader) {
  const ModelConfig& c = config();
  const int64_t h = c.hidden_size;
  layers_.resize(c.num_layers);
  int64_t num_attention = 0, num_mamba = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    l.is_attention = c.layer_kinds[i] == LayerKind::kAttention;
    l.cache_index = l.is_attention ? num_attention++ : num_mamba++;
    loader.Add(p + "input_layernorm.weight", {h}, &l.input_norm);
    if (l.is_attention) {
      l.attention.AddWeights(loader, p + "self_attn.", c);
    } else {
      l.mamba.AddWeights(loader, p + "mamba.", c.ssm, h);
    }
    loader.Add(p + std::string(c.tensor_names.post_mixer_norm), {h}, &l.post_mixer_norm);
    l.mlp.AddWeights(loader, p + std::string(c.tensor_names.mlp), c);
  }
}

void DecoderModel::PlanLayerWorkspace(WorkspacePlan& plan, int64_t max_num_tokens, DType act) {
  if (config().num_attention_layers() > 0) {
    AttentionBlock::PlanWorkspace(plan, config(), max_num_tokens, act, &attention_ws_);
  }
  if (config().num_ssm_layers() > 0) {
    Mamba2Mixer::PlanWorkspace(plan, config().ssm, max_num_tokens, act, &mamba_ws_);
  }
  MlpBlock::PlanWorkspace(plan, config(), max_num_tokens, act, &mlp_ws_);
}

absl::Status DecoderModel::FinishLoad() {
  for (Layer& l : layers_) {
    if (!l.is_attention) l.mamba.Finish();
  }
  if (config().num_attention_layers() == 0) return absl::OkStatus();
  return AttentionBlock::InitRope(backend(), config(), &attention_ws_);
}

const Tensor& DecoderModel::sublayer_norm(int64_t s) const {
  const Layer& l = layers_[s / 2];
  return s % 2 == 0 ? l.input_norm : l.post_mixer_norm;
}

absl::Status DecoderModel::RunSublayer(int64_t s, const ForwardInputs& in,
                                       const ModelCaches& caches, const Tensor& x,
                                       const Tensor& out) const {
  const Layer& l = layers_[s / 2];
  if (s % 2 == 1) return l.mlp.Forward(backend(), mlp_ws_, x, out);
  if (l.is_attention) {
    return l.attention.Forward(backend(), attention_ws_, x, in, caches.kv[l.cache_index], out);
  }
  return l.mamba.Forward(backend(), mamba_ws_, x, caches.ssm[l.cache_index], in.ssm, out);
}

}  // namespace hybridserve::engine
