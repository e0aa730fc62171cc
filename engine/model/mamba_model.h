// The Mamba backbone (transformers' MambaForCausalLM, modeling_mamba.py
// slow_forward, and Mamba2ForCausalLM, modeling_mamba2.py torch_forward):
// embedding → per layer [RMSNorm → mixer → residual] → RMSNorm (norm_f) →
// lm_head (tied to the embedding when the config says so). Every layer is an
// SSM layer with one state per sequence; no KV cache. `Mixer` is Mamba1Mixer
// or Mamba2Mixer (explicitly instantiated for those two), which provide
//   void AddWeights(WeightLoader&, const std::string& prefix, const SsmConfig&,
//                   int64_t hidden_size);  void Finish();
//   struct Workspace;  static void PlanWorkspace(WorkspacePlan&, const SsmConfig&,
//                                                int64_t max_num_tokens, DType, Workspace*);
//   absl::Status Forward(Backend&, const Workspace&, const Tensor& x,
//                        const SsmLayerState&, const SsmBatch&, const Tensor& out) const;
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MAMBA_MODEL_H_
#define HYBRIDSERVE_ENGINE_MODEL_MAMBA_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"
#include "engine/model/mamba1_mixer.h"
#include "engine/model/mamba2_mixer.h"
#include "engine/model/residual_stack.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

template <typename Mixer>
class MambaModel final : public ResidualStackModel {
 public:
  // Loads the weights and allocates the workspace. Errors name the missing or
  // misshapen tensor and its file. `backend` must outlive the model.
  static absl::StatusOr<std::unique_ptr<MambaModel>> Load(
      const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
      const ModelLoadOptions& options);

 private:
  // One sub-layer per layer.
  struct Layer {
    Tensor norm;  // [H]
    Mixer mixer;
  };

  MambaModel(const ModelConfig& config, Backend* backend, std::string embed_name);

  void PlanLayerWeights(WeightLoader& loader) override;
  void PlanLayerWorkspace(WorkspacePlan& plan, int64_t max_num_tokens, DType act) override;
  absl::Status FinishLoad() override;
  int64_t num_sublayers() const override { return static_cast<int64_t>(layers_.size()); }
  const Tensor& sublayer_norm(int64_t s) const override { return layers_[s].norm; }
  absl::Status RunSublayer(int64_t s, const ForwardInputs& inputs, const ModelCaches& caches,
                           const Tensor& x, const Tensor& out) const override;

  std::vector<Layer> layers_;
  typename Mixer::Workspace mixer_ws_;
};

// Instantiated in mamba_model.cc.
extern template class MambaModel<Mamba1Mixer>;
extern template class MambaModel<Mamba2Mixer>;

using Mamba1Model = MambaModel<Mamba1Mixer>;  // MambaForCausalLM
using Mamba2Model = MambaModel<Mamba2Mixer>;  // Mamba2ForCausalLM

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_MAMBA_MODEL_H_
