// BambaForCausalLM over the Backend op set (transformers' modeling_bamba.py,
// eager attention): DecoderModel with attention (GQA, partial rotary:
// rotary_dim of head_dim, optional biases) at the config's attn_layer_indices
// and a Mamba-2 mixer elsewhere, and Bamba's tensor names; lm_head tied to the
// embedding when the config says so.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_BAMBA_H_
#define HYBRIDSERVE_ENGINE_MODEL_BAMBA_H_

#include <memory>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"
#include "engine/model/decoder_model.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class BambaModel final : public DecoderModel {
 public:
  // Loads the weights and allocates the workspace. Errors name the missing or
  // misshapen tensor and its file. `backend` must outlive the model.
  static absl::StatusOr<std::unique_ptr<BambaModel>> Load(
      const ModelConfig& config, const Checkpoint& checkpoint, Backend* backend,
      const ModelLoadOptions& options);

 private:
  BambaModel(const ModelConfig& config, Backend* backend);
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_BAMBA_H_
