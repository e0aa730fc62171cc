// CudaBackend's SSM ops (CausalConv1d, Mamba2Scan, Mamba1Scan): the shape and
// dtype checks of the CPU twins (backend/cpu/cpu_ssm.cc), on tensor shapes
// and the batch's host-side fields only (the index tensors live on the
// device), then the launches of causal_conv1d.cu, mamba2_ssd.cu and
// mamba1_scan.cu. State pools are f32 whatever the act dtype is.
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cuda/causal_conv1d.h"
#include "engine/backend/cuda/cuda_backend_impl.h"
#include "engine/backend/cuda/mamba1_scan.h"
#include "engine/backend/cuda/mamba2_ssd.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

absl::Status ShapeError(absl::string_view op, absl::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", detail));
}

// The batch's tensors against `t` tokens, and its host-side max_query_len
// (the kernels choose their paths from it, so it must be possible:
// max_query_len <= t <= num_seqs * max_query_len).
absl::Status CheckSsmBatch(const SsmBatch& b, int64_t t, absl::string_view op) {
  HS_RETURN_IF_ERROR(ExpectTensor(b.query_start, DType::kI32, 1,
                                  absl::StrCat(op, " query_start")));
  HS_RETURN_IF_ERROR(ExpectTensor(b.state_slot, DType::kI32, 1,
                                  absl::StrCat(op, " state_slot")));
  HS_RETURN_IF_ERROR(ExpectTensor(b.has_initial_state, DType::kI32, 1,
                                  absl::StrCat(op, " has_initial_state")));
  const int64_t s = b.num_seqs;
  if (b.query_start.dim(0) != s + 1 || b.state_slot.dim(0) != s ||
      b.has_initial_state.dim(0) != s) {
    return ShapeError(op, absl::StrCat("batch tensors do not match ", s, " sequences"));
  }
  if (b.max_query_len < 0 || b.max_query_len > t || t > s * b.max_query_len) {
    return ShapeError(op, absl::StrCat("max_query_len ", b.max_query_len, " impossible for ",
                                       t, " tokens in ", s, " sequences"));
  }
  return absl::OkStatus();
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The batch's device pointers and sequence count, the same fields in each
// kernel's params.
template <typename Params>
void SetBatch(const SsmBatch& b, Params* p) {
  p->query_start = b.query_start.as<int32_t>();
  p->state_slot = b.state_slot.as<int32_t>();
  p->has_initial_state = b.has_initial_state.as<int32_t>();
  p->num_seqs = b.num_seqs;
}

}  // namespace

absl::Status CudaBackend::CausalConv1d(const Tensor& x, const Tensor& weight,
                                       const Tensor& bias, const Tensor& conv_state,
                                       const SsmBatch& batch, bool silu,
                                       const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, act_dtype_, 2, "CausalConv1d x"));
  HS_RETURN_IF_ERROR(ExpectTensor(weight, act_dtype_, 2, "CausalConv1d weight"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, act_dtype_, 2, "CausalConv1d out"));
  HS_RETURN_IF_ERROR(ExpectTensor(conv_state, DType::kF32, 3, "CausalConv1d conv_state"));
  const int64_t t = x.dim(0), c = x.dim(1), k = weight.dim(1);
  if (weight.dim(0) != c || out.dim(0) != t || out.dim(1) != c || conv_state.dim(1) != c ||
      conv_state.dim(2) != k - 1 || k < 1 || k > cuda::kMaxConvKernelSize) {
    return ShapeError("CausalConv1d",
                      absl::StrCat("x ", x.ShapeString(), " weight ", weight.ShapeString(),
                                   " conv_state ", conv_state.ShapeString(), " out ",
                                   out.ShapeString(), " (kernel at most ",
                                   cuda::kMaxConvKernelSize, ")"));
  }
  if (!bias.empty()) {
    HS_RETURN_IF_ERROR(ExpectTensor(bias, act_dtype_, 1, "CausalConv1d bias"));
    if (bias.dim(0) != c) return ShapeError("CausalConv1d", "bias size != channels");
  }
  HS_RETURN_IF_ERROR(CheckSsmBatch(batch, t, "CausalConv1d"));
  if (batch.num_seqs == 0 || c == 0) return absl::OkStatus();

  cuda::CausalConv1dParams p;
  p.x = x.data;
  p.weight = weight.data;
  p.bias = bias.empty() ? nullptr : bias.data;
  p.conv_state = conv_state.as<float>();
  SetBatch(batch, &p);
  p.out = out.data;
  p.num_tokens = t;
  p.channels = c;
  p.max_query_len = batch.max_query_len;
  p.kernel_size = static_cast<int>(k);
  p.silu = silu;
  p.elem = elem_type();
  return CudaCheck(cuda::LaunchCausalConv1d(p, stream()), "CausalConv1d");
}

absl::Status CudaBackend::Mamba2Scan(const Tensor& xbc, const Tensor& dt,
                                     const Tensor& a_log, const Tensor& dt_bias,
                                     const Tensor& d, const Tensor& ssm_state,
                                     const SsmBatch& batch,
                                     const Mamba2ScanParams& params, const Tensor& y) {
  HS_RETURN_IF_ERROR(ExpectTensor(xbc, act_dtype_, 2, "Mamba2Scan xbc"));
  HS_RETURN_IF_ERROR(ExpectTensor(dt, act_dtype_, 2, "Mamba2Scan dt"));
  HS_RETURN_IF_ERROR(ExpectTensor(a_log, act_dtype_, 1, "Mamba2Scan a_log"));
  HS_RETURN_IF_ERROR(ExpectTensor(dt_bias, act_dtype_, 1, "Mamba2Scan dt_bias"));
  HS_RETURN_IF_ERROR(ExpectTensor(d, act_dtype_, 1, "Mamba2Scan d"));
  HS_RETURN_IF_ERROR(ExpectTensor(ssm_state, DType::kF32, 4, "Mamba2Scan ssm_state"));
  HS_RETURN_IF_ERROR(ExpectTensor(y, act_dtype_, 2, "Mamba2Scan y"));
  const int64_t t = xbc.dim(0), nh = params.num_heads, hd = params.head_dim;
  const int64_t g = params.n_groups, n = params.d_state, d_inner = nh * hd;
  const int64_t width = d_inner + 2 * g * n;
  if (nh <= 0 || hd <= 0 || g <= 0 || n <= 0 || nh % g != 0 || xbc.dim(1) != width ||
      dt.dim(0) != t || dt.dim(1) != nh || a_log.dim(0) != nh || dt_bias.dim(0) != nh ||
      d.dim(0) != nh || ssm_state.dim(1) != nh || ssm_state.dim(2) != hd ||
      ssm_state.dim(3) != n || y.dim(0) != t || y.dim(1) != d_inner) {
    return ShapeError("Mamba2Scan",
                      absl::StrCat("xbc ", xbc.ShapeString(), " dt ", dt.ShapeString(),
                                   " state ", ssm_state.ShapeString(), " y ",
                                   y.ShapeString(), " for ", nh, " heads x ", hd, ", ", g,
                                   " groups, d_state ", n));
  }
  if (nh > 65535 || !Aligned16(ssm_state.data)) {
    return ShapeError("Mamba2Scan", "more than 65535 heads or a state pool not 16-byte aligned");
  }
  HS_RETURN_IF_ERROR(CheckSsmBatch(batch, t, "Mamba2Scan"));
  if (batch.num_seqs == 0) return absl::OkStatus();

  cuda::Mamba2SsdParams p;
  p.xbc = xbc.data;
  p.dt = dt.data;
  p.a_log = a_log.data;
  p.dt_bias = dt_bias.data;
  p.d = d.data;
  p.ssm_state = ssm_state.as<float>();
  SetBatch(batch, &p);
  p.y = y.data;
  p.num_tokens = t;
  p.max_query_len = batch.max_query_len;
  p.num_heads = static_cast<int>(nh);
  p.head_dim = static_cast<int>(hd);
  p.n_groups = static_cast<int>(g);
  p.d_state = static_cast<int>(n);
  p.dt_min = params.dt_min;
  p.dt_max = params.dt_max;
  p.num_sms = num_sms();
  p.elem = elem_type();
  return CudaCheck(cuda::LaunchMamba2Ssd(p, stream()), "Mamba2Scan");
}

absl::Status CudaBackend::Mamba1Scan(const Tensor& x, const Tensor& dt, const Tensor& bc,
                                     const Tensor& z, const Tensor& a_log,
                                     const Tensor& dt_bias, const Tensor& d,
                                     const Tensor& ssm_state, const SsmBatch& batch,
                                     const Tensor& y) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, act_dtype_, 2, "Mamba1Scan x"));
  HS_RETURN_IF_ERROR(ExpectTensor(dt, act_dtype_, 2, "Mamba1Scan dt"));
  HS_RETURN_IF_ERROR(ExpectTensor(bc, act_dtype_, 2, "Mamba1Scan bc"));
  HS_RETURN_IF_ERROR(ExpectTensor(z, act_dtype_, 2, "Mamba1Scan z"));
  HS_RETURN_IF_ERROR(ExpectTensor(a_log, act_dtype_, 2, "Mamba1Scan a_log"));
  HS_RETURN_IF_ERROR(ExpectTensor(dt_bias, act_dtype_, 1, "Mamba1Scan dt_bias"));
  HS_RETURN_IF_ERROR(ExpectTensor(d, act_dtype_, 1, "Mamba1Scan d"));
  HS_RETURN_IF_ERROR(ExpectTensor(ssm_state, DType::kF32, 3, "Mamba1Scan ssm_state"));
  HS_RETURN_IF_ERROR(ExpectTensor(y, act_dtype_, 2, "Mamba1Scan y"));
  const int64_t t = x.dim(0), ch = x.dim(1), n = a_log.dim(1);
  if (dt.dim(0) != t || dt.dim(1) != ch || z.dim(0) != t || z.dim(1) != ch ||
      bc.dim(0) != t || bc.dim(1) != 2 * n || a_log.dim(0) != ch || dt_bias.dim(0) != ch ||
      d.dim(0) != ch || ssm_state.dim(1) != ch || ssm_state.dim(2) != n || y.dim(0) != t ||
      y.dim(1) != ch) {
    return ShapeError("Mamba1Scan",
                      absl::StrCat("x ", x.ShapeString(), " dt ", dt.ShapeString(), " bc ",
                                   bc.ShapeString(), " a_log ", a_log.ShapeString(),
                                   " state ", ssm_state.ShapeString(), " y ",
                                   y.ShapeString()));
  }
  if (n > cuda::kMamba1MaxDState) return ShapeError("Mamba1Scan", "d_state above 512");
  HS_RETURN_IF_ERROR(CheckSsmBatch(batch, t, "Mamba1Scan"));
  if (batch.num_seqs == 0 || ch == 0 || n == 0) return absl::OkStatus();

  cuda::Mamba1ScanParams p;
  p.x = x.data;
  p.dt = dt.data;
  p.bc = bc.data;
  p.z = z.data;
  p.a_log = a_log.data;
  p.dt_bias = dt_bias.data;
  p.d = d.data;
  p.ssm_state = ssm_state.as<float>();
  SetBatch(batch, &p);
  p.y = y.data;
  p.num_tokens = t;
  p.channels = ch;
  p.d_state = n;
  p.elem = elem_type();
  return CudaCheck(cuda::LaunchMamba1Scan(p, stream()), "Mamba1Scan");
}

}  // namespace hybridserve::engine
