// The gated MLP sub-layer of the decoder graph (transformers' LlamaMLP /
// BambaMLP / Qwen*MLP / MistralMLP): down_proj(act(gate_proj(x)) * up_proj(x)),
// act the config's hidden_act (silu, gelu_pytorch_tanh or relu2), each
// projection with an optional bias. gate_proj and up_proj run as one GEMM over
// their stacked rows.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MLP_BLOCK_H_
#define HYBRIDSERVE_ENGINE_MODEL_MLP_BLOCK_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/model/weight_loader.h"
#include "engine/model/workspace_plan.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

class MlpBlock {
 public:
  // Plans the weights under `prefix` (e.g. "model.layers.0.mlp."):
  // {gate,up,down}_proj.weight, and their biases when config.mlp_bias.
  void AddWeights(WeightLoader& loader, const std::string& prefix,
                  const ModelConfig& config);

  // The step buffers, shared by every MLP of a model (one layer runs at a
  // time).
  struct Workspace {
    Tensor gate_up;  // [T, 2I]
    Tensor act;      // [T, I]
  };
  static void PlanWorkspace(WorkspacePlan& plan, const ModelConfig& config,
                            int64_t max_num_tokens, DType act, Workspace* ws);

  // out[T, H] = mlp(x[T, H]).
  absl::Status Forward(Backend& b, const Workspace& ws, const Tensor& x,
                       const Tensor& out) const;

 private:
  Activation act_ = Activation::kSilu;  // of the gate (config hidden_act)
  Tensor gate_up_;       // [2I, H]: gate_proj rows then up_proj rows
  Tensor gate_up_bias_;  // [2I] or empty
  Tensor down_;          // [H, I]
  Tensor down_bias_;     // [H] or empty
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_MLP_BLOCK_H_
