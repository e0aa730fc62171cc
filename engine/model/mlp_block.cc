#include "engine/model/mlp_block.h"

#include "engine/status_macros.h"

namespace hybridserve::engine {

void MlpBlock::AddWeights(WeightLoader& loader, const std::string& prefix,
                          const ModelConfig& config) {
  const int64_t h = config.hidden_size, inter = config.intermediate_size;
  loader.Add({prefix + "gate_proj.weight", prefix + "up_proj.weight"}, {inter, inter},
             {2 * inter, h}, &gate_up_);
  loader.Add(prefix + "down_proj.weight", {h, inter}, &down_);
  act_ = config.hidden_act;
  if (config.mlp_bias) {
    loader.Add({prefix + "gate_proj.bias", prefix + "up_proj.bias"}, {inter, inter},
               {2 * inter}, &gate_up_bias_);
    loader.Add(prefix + "down_proj.bias", {h}, &down_bias_);
  }
}

void MlpBlock::PlanWorkspace(WorkspacePlan& plan, const ModelConfig& config, int64_t t,
                             DType act, Workspace* ws) {
  plan.Add(&ws->gate_up, act, {t, 2 * config.intermediate_size});
  plan.Add(&ws->act, act, {t, config.intermediate_size});
}

absl::Status MlpBlock::Forward(Backend& b, const Workspace& ws, const Tensor& x,
                               const Tensor& out) const {
  const int64_t t = x.dim(0);
  const Tensor gate_up = ws.gate_up.Rows(0, t), act = ws.act.Rows(0, t);
  HS_RETURN_IF_ERROR(b.Gemm(x, gate_up_, gate_up_bias_, gate_up));
  HS_RETURN_IF_ERROR(b.GatedAct(gate_up, act_, act));
  return b.Gemm(act, down_, down_bias_, out);
}

}  // namespace hybridserve::engine
