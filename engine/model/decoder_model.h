// The decoder layers of Llama and Bamba (transformers' modeling_llama.py and
// modeling_bamba.py, eager attention): embedding → per layer [RMSNorm → mixer
// → residual → RMSNorm → SwiGLU MLP → residual] → RMSNorm → lm_head, where a
// layer's mixer is attention (AttentionBlock; the config's attention layers,
// every layer of Llama) or a Mamba-2 mixer (Bamba's other layers). Attention
// layers use the paged KV cache, Mamba layers the state slots. LlamaModel and
// BambaModel give the checkpoint names that differ between the two.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_DECODER_MODEL_H_
#define HYBRIDSERVE_ENGINE_MODEL_DECODER_MODEL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/model/attention_block.h"
#include "engine/model/mamba2_mixer.h"
#include "engine/model/mlp_block.h"
#include "engine/model/residual_stack.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class DecoderModel : public ResidualStackModel {
 protected:
  // Names under "model.layers.<i>." besides input_layernorm.weight,
  // self_attn.* (attention layers) and mamba.* (Mamba layers).
  struct LayerWeightNames {
    std::string post_mixer_norm;  // [H], e.g. "post_attention_layernorm.weight"
    std::string mlp;              // prefix of {gate,up,down}_proj, e.g. "mlp."
  };
  // `backend` must outlive the model.
  DecoderModel(const ModelConfig& config, Backend* backend, StackWeightNames stack_names,
               LayerWeightNames layer_names)
      : ResidualStackModel(config, backend, std::move(stack_names)),
        names_(std::move(layer_names)) {}

 private:
  // Two sub-layers: 2i the mixer, 2i + 1 the MLP of layer i.
  struct Layer {
    bool is_attention = false;
    int64_t cache_index = 0;    // into caches.kv or caches.ssm
    Tensor input_norm;          // [H]
    AttentionBlock attention;   // attention layers
    Mamba2Mixer mamba;          // Mamba layers
    Tensor post_mixer_norm;     // [H]
    MlpBlock mlp;
  };

  void PlanLayerWeights(WeightLoader& loader) override;
  void PlanLayerWorkspace(WorkspacePlan& plan, int64_t max_num_tokens, DType act) override;
  absl::Status FinishLoad() override;
  int64_t num_sublayers() const override { return 2 * static_cast<int64_t>(layers_.size()); }
  const Tensor& sublayer_norm(int64_t s) const override;
  absl::Status RunSublayer(int64_t s, const ForwardInputs& inputs, const ModelCaches& caches,
                           const Tensor& x, const Tensor& out) const override;

  LayerWeightNames names_;
  std::vector<Layer> layers_;
  // Planned only when some layer uses them.
  AttentionBlock::Workspace attention_ws_;
  Mamba2Mixer::Workspace mamba_ws_;
  MlpBlock::Workspace mlp_ws_;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_DECODER_MODEL_H_
