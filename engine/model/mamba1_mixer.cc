#include "engine/model/mamba1_mixer.h"

#include "engine/status_macros.h"

namespace hybridserve::engine {

void Mamba1Mixer::AddWeights(WeightLoader& loader, const std::string& prefix,
                             const SsmConfig& ssm, int64_t hidden_size) {
  ssm_ = ssm;
  const int64_t h = hidden_size, di = ssm.d_inner, n = ssm.d_state, r = ssm.dt_rank;
  loader.Add(prefix + "in_proj.weight", {2 * di, h}, &in_proj_);
  if (ssm.proj_bias) loader.Add(prefix + "in_proj.bias", {2 * di}, &in_proj_bias_);
  loader.Add(prefix + "conv1d.weight", {di, 1, ssm.d_conv}, &conv_weight_);
  if (ssm.conv_bias) loader.Add(prefix + "conv1d.bias", {di}, &conv_bias_);
  loader.Add(prefix + "x_proj.weight", {r + 2 * n, di}, &x_proj_);
  loader.Add(prefix + "dt_proj.weight", {di, r}, &dt_proj_);
  loader.Add(prefix + "dt_proj.bias", {di}, &dt_proj_bias_);
  loader.Add(prefix + "A_log", {di, n}, &a_log_);
  loader.Add(prefix + "D", {di}, &d_);
  loader.Add(prefix + "out_proj.weight", {h, di}, &out_);
  if (ssm.proj_bias) loader.Add(prefix + "out_proj.bias", {h}, &out_bias_);
}

void Mamba1Mixer::Finish() {
  const int64_t di = ssm_.d_inner, n = ssm_.d_state, r = ssm_.dt_rank;
  in_x_ = in_proj_.Rows(0, di);
  in_z_ = in_proj_.Rows(di, di);
  in_x_bias_ = RowsOrEmpty(in_proj_bias_, 0, di);
  in_z_bias_ = RowsOrEmpty(in_proj_bias_, di, di);
  conv_w_ = conv_weight_.Reshape({di, ssm_.d_conv});
  x_proj_dt_ = x_proj_.Rows(0, r);
  x_proj_bc_ = x_proj_.Rows(r, 2 * n);
}

void Mamba1Mixer::PlanWorkspace(WorkspacePlan& plan, const SsmConfig& ssm, int64_t t,
                                DType act, Workspace* ws) {
  plan.Add(&ws->xs, act, {t, ssm.d_inner});
  plan.Add(&ws->z, act, {t, ssm.d_inner});
  plan.Add(&ws->dt_low, act, {t, ssm.dt_rank});
  plan.Add(&ws->bc, act, {t, 2 * ssm.d_state});
  plan.Add(&ws->dt, act, {t, ssm.d_inner});
  plan.Add(&ws->y, act, {t, ssm.d_inner});
}

absl::Status Mamba1Mixer::Forward(Backend& b, const Workspace& ws, const Tensor& x,
                                  const SsmLayerState& state, const SsmBatch& batch,
                                  const Tensor& out) const {
  const int64_t t = x.dim(0);
  const Tensor xs = ws.xs.Rows(0, t), z = ws.z.Rows(0, t), dt_low = ws.dt_low.Rows(0, t);
  const Tensor bc = ws.bc.Rows(0, t), dt = ws.dt.Rows(0, t), y = ws.y.Rows(0, t);
  HS_RETURN_IF_ERROR(b.Gemm(x, in_x_, in_x_bias_, xs));
  HS_RETURN_IF_ERROR(b.Gemm(x, in_z_, in_z_bias_, z));
  HS_RETURN_IF_ERROR(
      b.CausalConv1d(xs, conv_w_, conv_bias_, state.conv, batch, /*silu=*/true, xs));
  HS_RETURN_IF_ERROR(b.Gemm(xs, x_proj_dt_, Tensor(), dt_low));
  HS_RETURN_IF_ERROR(b.Gemm(xs, x_proj_bc_, Tensor(), bc));
  HS_RETURN_IF_ERROR(b.Gemm(dt_low, dt_proj_, Tensor(), dt));
  HS_RETURN_IF_ERROR(
      b.Mamba1Scan(xs, dt, bc, z, a_log_, dt_proj_bias_, d_, state.ssm, batch, y));
  return b.Gemm(y, out_, out_bias_, out);
}

}  // namespace hybridserve::engine
