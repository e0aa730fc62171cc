// The ModelGraph::kDecoder graph (transformers' modeling_llama.py,
// modeling_mistral.py, modeling_qwen2.py, modeling_qwen3.py, modeling_bamba.py;
// eager attention): embedding → per layer [RMSNorm → mixer → residual →
// RMSNorm → SwiGLU MLP → residual] → RMSNorm → lm_head, where a layer's mixer
// is attention (AttentionBlock; every layer of a Transformer) or a Mamba-2
// mixer (a hybrid's other layers). Attention layers use the paged KV cache,
// Mamba layers the state slots. The checkpoint names that differ between
// families come from the config (its registry entry).
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_DECODER_MODEL_H_
#define HYBRIDSERVE_ENGINE_MODEL_DECODER_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/checkpoint.h"
#include "engine/backend/backend.h"
#include "engine/model/attention_block.h"
#include "engine/model/mamba2_mixer.h"
#include "engine/model/mlp_block.h"
#include "engine/model/residual_stack.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class DecoderModel final : public ResidualStackModel {
 public:
  // Loads the weights and allocates the workspace. Errors name the missing or
  // misshapen tensor and its file. `backend` must outlive the model.
  // REQUIRES: config.graph == ModelGraph::kDecoder.
  static absl::StatusOr<std::unique_ptr<DecoderModel>> Load(
      const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
      const ModelLoadOptions& options);

 private:
  DecoderModel(const ModelConfig& config, Backend* backend);

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

  std::vector<Layer> layers_;
  // Planned only when some layer uses them.
  AttentionBlock::Workspace attention_ws_;
  Mamba2Mixer::Workspace mamba_ws_;
  MlpBlock::Workspace mlp_ws_;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_DECODER_MODEL_H_
