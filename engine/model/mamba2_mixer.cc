#include "engine/model/mamba2_mixer.h"

#include "engine/status_macros.h"

namespace hybridserve::engine {

void Mamba2Mixer::AddWeights(WeightLoader& loader, const std::string& prefix,
                             const SsmConfig& ssm, int64_t hidden_size) {
  ssm_ = ssm;
  const int64_t conv = ssm.conv_channels(LayerKind::kMamba2);
  const int64_t proj = ssm.d_inner + conv + ssm.num_heads;
  loader.Add(prefix + "in_proj.weight", {proj, hidden_size}, &in_proj_);
  if (ssm.proj_bias) loader.Add(prefix + "in_proj.bias", {proj}, &in_proj_bias_);
  loader.Add(prefix + "conv1d.weight", {conv, 1, ssm.d_conv}, &conv_weight_);
  if (ssm.conv_bias) loader.Add(prefix + "conv1d.bias", {conv}, &conv_bias_);
  loader.Add(prefix + "dt_bias", {ssm.num_heads}, &dt_bias_);
  loader.Add(prefix + "A_log", {ssm.num_heads}, &a_log_);
  loader.Add(prefix + "D", {ssm.num_heads}, &d_);
  loader.Add(prefix + "norm.weight", {ssm.d_inner}, &norm_);
  loader.Add(prefix + "out_proj.weight", {hidden_size, ssm.d_inner}, &out_);
  if (ssm.proj_bias) loader.Add(prefix + "out_proj.bias", {hidden_size}, &out_bias_);
}

void Mamba2Mixer::Finish() {
  const int64_t conv = ssm_.conv_channels(LayerKind::kMamba2);
  in_z_ = in_proj_.Rows(0, ssm_.d_inner);
  in_xbc_ = in_proj_.Rows(ssm_.d_inner, conv);
  in_dt_ = in_proj_.Rows(ssm_.d_inner + conv, ssm_.num_heads);
  in_z_bias_ = RowsOrEmpty(in_proj_bias_, 0, ssm_.d_inner);
  in_xbc_bias_ = RowsOrEmpty(in_proj_bias_, ssm_.d_inner, conv);
  in_dt_bias_ = RowsOrEmpty(in_proj_bias_, ssm_.d_inner + conv, ssm_.num_heads);
  conv_w_ = conv_weight_.Reshape({conv, ssm_.d_conv});
}

void Mamba2Mixer::PlanWorkspace(WorkspacePlan& plan, const SsmConfig& ssm,
                                int64_t t, DType act, Workspace* ws) {
  plan.Add(&ws->z, act, {t, ssm.d_inner});
  plan.Add(&ws->xbc, act, {t, ssm.conv_channels(LayerKind::kMamba2)});
  plan.Add(&ws->dt, act, {t, ssm.num_heads});
  plan.Add(&ws->y, act, {t, ssm.d_inner});
}

absl::Status Mamba2Mixer::Forward(Backend& b, const Workspace& ws,
                                  const Tensor& x, const SsmLayerState& state,
                                  const SsmBatch& batch, const Tensor& out) const {
  const int64_t t = x.dim(0);
  const Tensor z = ws.z.Rows(0, t), xbc = ws.xbc.Rows(0, t);
  const Tensor dt = ws.dt.Rows(0, t), y = ws.y.Rows(0, t);
  // Three GEMMs over row ranges of in_proj, so each part is a dense tensor.
  HS_RETURN_IF_ERROR(b.Gemm(x, in_z_, in_z_bias_, z));
  HS_RETURN_IF_ERROR(b.Gemm(x, in_xbc_, in_xbc_bias_, xbc));
  HS_RETURN_IF_ERROR(b.Gemm(x, in_dt_, in_dt_bias_, dt));
  HS_RETURN_IF_ERROR(
      b.CausalConv1d(xbc, conv_w_, conv_bias_, state.conv, batch, /*silu=*/true, xbc));
  const Mamba2ScanParams params{.num_heads = ssm_.num_heads,
                                .head_dim = ssm_.head_dim,
                                .n_groups = ssm_.n_groups,
                                .d_state = ssm_.d_state,
                                .dt_min = static_cast<float>(ssm_.dt_min),
                                .dt_max = static_cast<float>(ssm_.dt_max)};
  HS_RETURN_IF_ERROR(
      b.Mamba2Scan(xbc, dt, a_log_, dt_bias_, d_, state.ssm, batch, params, y));
  HS_RETURN_IF_ERROR(b.GatedRmsNorm(y, z, norm_, ssm_.d_inner / ssm_.n_groups,
                                    static_cast<float>(ssm_.norm_eps), y));
  return b.Gemm(y, out_, out_bias_, out);
}

}  // namespace hybridserve::engine
