// The frame every architecture here shares, a pre-norm residual stack:
//   residual = embed[token_ids]
//   for each sub-layer s:  residual += block_s(RmsNorm(residual, norm_s))
//   hidden = RmsNorm(residual, final_norm);  logits = lm_head · hidden[rows]
// where each RMSNorm after the first is fused with the residual add before it
// (Backend::AddRmsNorm), and a sub-layer's block is a mixer (attention,
// Mamba-1, Mamba-2) or an MLP. This class owns the embedding, the final norm,
// the head (tied to the embedding when the config says so), the residual
// buffers and the layer loop; a subclass owns its layers' weights and buffers
// and runs their blocks through the hooks below.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_RESIDUAL_STACK_H_
#define HYBRIDSERVE_ENGINE_MODEL_RESIDUAL_STACK_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"
#include "engine/model/model.h"
#include "engine/model/weight_loader.h"
#include "engine/model/workspace_plan.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class ResidualStackModel : public Model {
 public:
  int64_t vocab_size() const final { return config_.vocab_size; }
  int64_t num_kv_layers() const final { return config_.num_attention_layers(); }
  uint64_t weight_bytes() const final { return weights_.num_bytes(); }
  uint64_t workspace_bytes() const final { return workspace_.num_bytes(); }

  // InvalidArgument, running nothing, unless 0 < T <= max_num_tokens and
  // caches hold one entry per attention layer (kv) and per SSM layer (ssm).
  absl::Status Forward(const ForwardInputs& inputs, const ModelCaches& caches) final;
  absl::Status ComputeLogits(const Tensor& rows, const Tensor& logits) final;

 protected:
  // Checkpoint names of the tensors this class loads besides lm_head.weight.
  struct StackWeightNames {
    std::string embed;       // [V, H], e.g. "model.embed_tokens.weight"
    std::string final_norm;  // [H], e.g. "model.norm.weight"
  };
  // `backend` must outlive the model.
  ResidualStackModel(const ModelConfig& config, Backend* backend, StackWeightNames names)
      : config_(config), backend_(backend), names_(std::move(names)) {}

  // Loads every weight (the layers' through PlanLayerWeights), allocates the
  // workspace for the largest step (the layers' buffers through
  // PlanLayerWorkspace), then calls FinishLoad. Errors name the missing or
  // misshapen tensor and its file; InvalidArgument when `options` size no
  // step. Call once; after an error the model must not be used.
  absl::Status Init(const Checkpoint& checkpoint, const ModelLoadOptions& options);

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return *backend_; }

 private:
  // ---- loading, in the order Init calls them
  // Plans the layers' weights.
  virtual void PlanLayerWeights(WeightLoader& loader) = 0;
  // Plans the layers' buffers for up to `max_num_tokens` tokens, act dtype `act`.
  virtual void PlanLayerWorkspace(WorkspacePlan& plan, int64_t max_num_tokens,
                                  DType act) = 0;
  // Runs once weights and workspace are in place (views, tables).
  virtual absl::Status FinishLoad() { return absl::OkStatus(); }

  // ---- the stack
  virtual int64_t num_sublayers() const = 0;
  // The RMSNorm weight [H] that makes sub-layer s's input from the residual.
  virtual const Tensor& sublayer_norm(int64_t s) const = 0;
  // out[T, H] = block_s(x[T, H]), writing / updating the block's caches.
  virtual absl::Status RunSublayer(int64_t s, const ForwardInputs& inputs,
                                   const ModelCaches& caches, const Tensor& x,
                                   const Tensor& out) const = 0;

  // Activations for up to max_num_tokens tokens, act dtype.
  struct Workspace {
    Tensor residual;  // [T, H]
    Tensor x;         // [T, H] normed input of the current sub-layer
    Tensor proj;      // [T, H] output of the current sub-layer's block
    Tensor gathered;  // [R, H] rows picked for logits
  };

  ModelConfig config_;
  Backend* backend_;
  StackWeightNames names_;
  DeviceBuffer weights_;
  DeviceBuffer workspace_;
  Tensor embed_;       // [V, H]
  Tensor final_norm_;  // [H]
  Tensor lm_head_;     // [V, H]; same memory as embed_ when tied
  Workspace ws_;
  int64_t max_num_tokens_ = 0;
  int64_t last_num_tokens_ = 0;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_RESIDUAL_STACK_H_
