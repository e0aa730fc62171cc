// Mamba2ForCausalLM over the Backend op set (transformers' modeling_mamba2.py,
// torch_forward): embedding → per layer [RMSNorm → Mamba-2 mixer → residual]
// → RMSNorm (norm_f) → lm_head (tied to the embedding when the config says so).
// Every layer is an SSM layer with one state per sequence; no KV cache.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MAMBA2_H_
#define HYBRIDSERVE_ENGINE_MODEL_MAMBA2_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"
#include "engine/model/mamba2_mixer.h"
#include "engine/model/model.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class Mamba2Model final : public Model {
 public:
  // Loads the weights and allocates the workspace. Errors name the missing or
  // misshapen tensor and its file. `backend` must outlive the model.
  static absl::StatusOr<std::unique_ptr<Mamba2Model>> Load(
      const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
      const ModelLoadOptions& options);

  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t num_kv_layers() const override { return 0; }
  uint64_t weight_bytes() const override { return weights_.num_bytes(); }
  uint64_t workspace_bytes() const override { return workspace_.num_bytes(); }

  absl::Status Forward(const ForwardInputs& inputs,
                       const ModelCaches& caches) override;
  absl::Status ComputeLogits(const Tensor& rows, const Tensor& logits) override;

 private:
  struct Layer {
    Tensor norm;  // [H]
    Mamba2Mixer mixer;
  };
  struct Workspace {
    Tensor residual;  // [T, H]
    Tensor x;         // [T, H] normed input of the current mixer
    Tensor proj;      // [T, H] mixer output
    Mamba2Mixer::Workspace mixer;
    Tensor gathered;  // [R, H] rows picked for logits
  };

  Mamba2Model(const ModelConfig& config, Backend* backend)
      : config_(config), backend_(backend) {}

  ModelConfig config_;
  Backend* backend_;
  DeviceBuffer weights_;
  DeviceBuffer workspace_;
  Tensor embed_;       // [V, H]
  Tensor final_norm_;  // [H]
  Tensor lm_head_;     // [V, H]; same memory as embed_ when tied
  std::vector<Layer> layers_;
  Workspace ws_;
  int64_t max_num_tokens_ = 0;
  int64_t last_num_tokens_ = 0;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_MAMBA2_H_
