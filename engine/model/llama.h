// LlamaForCausalLM over the Backend op set (transformers' modeling_llama.py,
// eager attention): embedding → per layer [RMSNorm → attention (GQA, rotary,
// optional q/k/v/o biases) → residual → RMSNorm → SwiGLU MLP → residual] →
// RMSNorm → lm_head (tied to the embedding when the config says so).
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_LLAMA_H_
#define HYBRIDSERVE_ENGINE_MODEL_LLAMA_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"
#include "engine/model/attention_block.h"
#include "engine/model/mlp_block.h"
#include "engine/model/residual_stack.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class LlamaModel final : public ResidualStackModel {
 public:
  // Loads the weights and allocates the workspace. Errors name the missing or
  // misshapen tensor and its file. `backend` must outlive the model.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(
      const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
      const ModelLoadOptions& options);

 private:
  // Two sub-layers: 2i the attention, 2i + 1 the MLP of layer i.
  struct Layer {
    Tensor input_norm;  // [H]
    AttentionBlock attention;
    Tensor post_norm;   // [H] post_attention_layernorm
    MlpBlock mlp;
  };

  LlamaModel(const ModelConfig& config, Backend* backend);

  void PlanLayerWeights(WeightLoader& loader) override;
  void PlanLayerWorkspace(WorkspacePlan& plan, int64_t max_num_tokens, DType act) override;
  absl::Status FinishLoad() override;
  int64_t num_sublayers() const override { return 2 * static_cast<int64_t>(layers_.size()); }
  const Tensor& sublayer_norm(int64_t s) const override;
  absl::Status RunSublayer(int64_t s, const ForwardInputs& inputs, const ModelCaches& caches,
                           const Tensor& x, const Tensor& out) const override;

  std::vector<Layer> layers_;
  AttentionBlock::Workspace attention_ws_;
  MlpBlock::Workspace mlp_ws_;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_LLAMA_H_
