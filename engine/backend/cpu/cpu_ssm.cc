// CPU ops of the SSM (Mamba) layers: causal depthwise conv with per-slot conv
// windows, the Mamba-2 selective scan with per-slot states, gated RMSNorm.
// Written for clarity: every (sequence, channel) / (sequence, head) runs its
// tokens in order, so a sequence's result never depends on the rest of the
// batch (DESIGN.md section 7, class (b)).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

constexpr int64_t kMaxConvKernel = 16;
constexpr int64_t kMaxDState = 512;  // Mamba-1 d_state (16 in released models)

absl::Status ShapeError(absl::string_view op, absl::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", detail));
}

inline float Silu(float v) { return v / (1.0f + std::exp(-v)); }

// torch.nn.functional.softplus (beta 1, threshold 20).
inline float Softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }

// Checks the batch against `t` tokens and `num_slots` slots.
absl::Status CheckSsmBatch(const SsmBatch& b, int64_t t, int64_t num_slots,
                           absl::string_view op) {
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
  const int32_t* qs = b.query_start.as<int32_t>();
  const int32_t* slot = b.state_slot.as<int32_t>();
  if (s > 0 && (qs[0] != 0 || qs[s] != t)) {
    return ShapeError(op, absl::StrCat("query_start must run from 0 to ", t));
  }
  for (int64_t i = 0; i < s; ++i) {
    if (qs[i + 1] < qs[i]) return ShapeError(op, "query_start decreases");
    if (slot[i] < 0 || slot[i] >= num_slots) {
      return ShapeError(op, absl::StrCat("state slot ", slot[i], " outside [0, ",
                                         num_slots, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CpuBackend::CausalConv1d(const Tensor& x, const Tensor& weight,
                                      const Tensor& bias,
                                      const Tensor& conv_state,
                                      const SsmBatch& batch, bool silu,
                                      const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, DType::kF32, 2, "CausalConv1d x"));
  HS_RETURN_IF_ERROR(ExpectTensor(weight, DType::kF32, 2, "CausalConv1d weight"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, DType::kF32, 2, "CausalConv1d out"));
  HS_RETURN_IF_ERROR(
      ExpectTensor(conv_state, DType::kF32, 3, "CausalConv1d conv_state"));
  const int64_t t = x.dim(0), c = x.dim(1), k = weight.dim(1);
  if (weight.dim(0) != c || out.dim(0) != t || out.dim(1) != c ||
      conv_state.dim(1) != c || conv_state.dim(2) != k - 1 || k < 1 ||
      k > kMaxConvKernel) {
    return ShapeError("CausalConv1d",
                      absl::StrCat("x ", x.ShapeString(), " weight ", weight.ShapeString(),
                                   " conv_state ", conv_state.ShapeString(), " out ",
                                   out.ShapeString(), " (kernel at most ",
                                   kMaxConvKernel, ")"));
  }
  if (!bias.empty()) {
    HS_RETURN_IF_ERROR(ExpectTensor(bias, DType::kF32, 1, "CausalConv1d bias"));
    if (bias.dim(0) != c) return ShapeError("CausalConv1d", "bias size != channels");
  }
  HS_RETURN_IF_ERROR(CheckSsmBatch(batch, t, conv_state.dim(0), "CausalConv1d"));

  const int64_t s = batch.num_seqs, w = k - 1;
  const int32_t* qs = batch.query_start.as<int32_t>();
  const int32_t* slot = batch.state_slot.as<int32_t>();
  const int32_t* has_init = batch.has_initial_state.as<int32_t>();
  const float* xin = x.as<float>();
  const float* wt = weight.as<float>();
  const float* b = bias.empty() ? nullptr : bias.as<float>();
  float* y = out.as<float>();
#pragma omp parallel for collapse(2) schedule(static) if (t * c * k >= kParallelMinWork)
  for (int64_t q = 0; q < s; ++q) {
    for (int64_t ch = 0; ch < c; ++ch) {
      float* state = conv_state.as<float>() + (slot[q] * c + ch) * w;
      // u: the window then this sequence's inputs, kept as a ring of k values.
      float u[kMaxConvKernel];
      for (int64_t i = 0; i < w; ++i) u[i] = has_init[q] != 0 ? state[i] : 0.0f;
      const float* wc = wt + ch * k;
      for (int64_t i = qs[q]; i < qs[q + 1]; ++i) {
        u[w] = xin[i * c + ch];  // read before out (which may alias x) is written
        float acc = b != nullptr ? b[ch] : 0.0f;
        for (int64_t j = 0; j < k; ++j) acc += wc[j] * u[j];
        y[i * c + ch] = silu ? Silu(acc) : acc;
        for (int64_t j = 0; j < w; ++j) u[j] = u[j + 1];
      }
      for (int64_t i = 0; i < w; ++i) state[i] = u[i];
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::Mamba2Scan(const Tensor& xbc, const Tensor& dt,
                                    const Tensor& a_log, const Tensor& dt_bias,
                                    const Tensor& d, const Tensor& ssm_state,
                                    const SsmBatch& batch,
                                    const Mamba2ScanParams& p, const Tensor& y) {
  HS_RETURN_IF_ERROR(ExpectTensor(xbc, DType::kF32, 2, "Mamba2Scan xbc"));
  HS_RETURN_IF_ERROR(ExpectTensor(dt, DType::kF32, 2, "Mamba2Scan dt"));
  HS_RETURN_IF_ERROR(ExpectTensor(a_log, DType::kF32, 1, "Mamba2Scan a_log"));
  HS_RETURN_IF_ERROR(ExpectTensor(dt_bias, DType::kF32, 1, "Mamba2Scan dt_bias"));
  HS_RETURN_IF_ERROR(ExpectTensor(d, DType::kF32, 1, "Mamba2Scan d"));
  HS_RETURN_IF_ERROR(ExpectTensor(ssm_state, DType::kF32, 4, "Mamba2Scan ssm_state"));
  HS_RETURN_IF_ERROR(ExpectTensor(y, DType::kF32, 2, "Mamba2Scan y"));
  const int64_t t = xbc.dim(0), nh = p.num_heads, hd = p.head_dim;
  const int64_t g = p.n_groups, n = p.d_state, d_inner = nh * hd;
  const int64_t width = d_inner + 2 * g * n;
  if (nh <= 0 || hd <= 0 || g <= 0 || n <= 0 || nh % g != 0 ||
      xbc.dim(1) != width || dt.dim(0) != t || dt.dim(1) != nh ||
      a_log.dim(0) != nh || dt_bias.dim(0) != nh || d.dim(0) != nh ||
      ssm_state.dim(1) != nh || ssm_state.dim(2) != hd || ssm_state.dim(3) != n ||
      y.dim(0) != t || y.dim(1) != d_inner) {
    return ShapeError("Mamba2Scan",
                      absl::StrCat("xbc ", xbc.ShapeString(), " dt ", dt.ShapeString(),
                                   " state ", ssm_state.ShapeString(), " y ",
                                   y.ShapeString(), " for ", nh, " heads x ", hd,
                                   ", ", g, " groups, d_state ", n));
  }
  HS_RETURN_IF_ERROR(CheckSsmBatch(batch, t, ssm_state.dim(0), "Mamba2Scan"));

  const int64_t s = batch.num_seqs, heads_per_group = nh / g;
  const int32_t* qs = batch.query_start.as<int32_t>();
  const int32_t* slot = batch.state_slot.as<int32_t>();
  const int32_t* has_init = batch.has_initial_state.as<int32_t>();
  const float* in = xbc.as<float>();
  const float* dtr = dt.as<float>();
  float* out = y.as<float>();
#pragma omp parallel for collapse(2) schedule(static) if (t * d_inner * n >= kParallelMinWork)
  for (int64_t q = 0; q < s; ++q) {
    for (int64_t h = 0; h < nh; ++h) {
      float* state = ssm_state.as<float>() + (slot[q] * nh + h) * hd * n;  // [hd, n]
      if (has_init[q] == 0) std::fill(state, state + hd * n, 0.0f);
      const float a = -std::exp(a_log.as<float>()[h]);
      const float bias = dt_bias.as<float>()[h];
      const float dskip = d.as<float>()[h];
      const int64_t grp = h / heads_per_group;
      for (int64_t i = qs[q]; i < qs[q + 1]; ++i) {
        const float* row = in + i * width;
        const float* x = row + h * hd;
        const float* bvec = row + d_inner + grp * n;
        const float* cvec = row + d_inner + g * n + grp * n;
        float delta = Softplus(dtr[i * nh + h] + bias);
        delta = std::min(std::max(delta, p.dt_min), p.dt_max);
        const float decay = std::exp(delta * a);
        float* yo = out + i * d_inner + h * hd;
        for (int64_t pi = 0; pi < hd; ++pi) {
          float* sp = state + pi * n;
          const float dx = delta * x[pi];
          float acc = 0.0f;
          for (int64_t j = 0; j < n; ++j) {
            sp[j] = sp[j] * decay + dx * bvec[j];
            acc += sp[j] * cvec[j];
          }
          yo[pi] = acc + dskip * x[pi];
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::Mamba1Scan(const Tensor& x, const Tensor& dt,
                                    const Tensor& bc, const Tensor& z,
                                    const Tensor& a_log, const Tensor& dt_bias,
                                    const Tensor& d, const Tensor& ssm_state,
                                    const SsmBatch& batch, const Tensor& y) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, DType::kF32, 2, "Mamba1Scan x"));
  HS_RETURN_IF_ERROR(ExpectTensor(dt, DType::kF32, 2, "Mamba1Scan dt"));
  HS_RETURN_IF_ERROR(ExpectTensor(bc, DType::kF32, 2, "Mamba1Scan bc"));
  HS_RETURN_IF_ERROR(ExpectTensor(z, DType::kF32, 2, "Mamba1Scan z"));
  HS_RETURN_IF_ERROR(ExpectTensor(a_log, DType::kF32, 2, "Mamba1Scan a_log"));
  HS_RETURN_IF_ERROR(ExpectTensor(dt_bias, DType::kF32, 1, "Mamba1Scan dt_bias"));
  HS_RETURN_IF_ERROR(ExpectTensor(d, DType::kF32, 1, "Mamba1Scan d"));
  HS_RETURN_IF_ERROR(ExpectTensor(ssm_state, DType::kF32, 3, "Mamba1Scan ssm_state"));
  HS_RETURN_IF_ERROR(ExpectTensor(y, DType::kF32, 2, "Mamba1Scan y"));
  const int64_t t = x.dim(0), ch = x.dim(1), n = a_log.dim(1);
  if (dt.dim(0) != t || dt.dim(1) != ch || z.dim(0) != t || z.dim(1) != ch ||
      bc.dim(0) != t || bc.dim(1) != 2 * n || a_log.dim(0) != ch || dt_bias.dim(0) != ch ||
      d.dim(0) != ch || ssm_state.dim(1) != ch || ssm_state.dim(2) != n ||
      y.dim(0) != t || y.dim(1) != ch) {
    return ShapeError("Mamba1Scan",
                      absl::StrCat("x ", x.ShapeString(), " dt ", dt.ShapeString(), " bc ",
                                   bc.ShapeString(), " a_log ", a_log.ShapeString(),
                                   " state ", ssm_state.ShapeString(), " y ",
                                   y.ShapeString()));
  }
  if (n > kMaxDState) return ShapeError("Mamba1Scan", "d_state above 512");
  HS_RETURN_IF_ERROR(CheckSsmBatch(batch, t, ssm_state.dim(0), "Mamba1Scan"));
  const int64_t s = batch.num_seqs;
  const int32_t* qs = batch.query_start.as<int32_t>();
  const int32_t* slot = batch.state_slot.as<int32_t>();
  const int32_t* has_init = batch.has_initial_state.as<int32_t>();
#pragma omp parallel for collapse(2) schedule(static) if (t * ch * n >= kParallelMinWork)
  for (int64_t q = 0; q < s; ++q) {
    for (int64_t c = 0; c < ch; ++c) {
      float* state = ssm_state.as<float>() + (slot[q] * ch + c) * n;  // [n]
      if (has_init[q] == 0) std::fill(state, state + n, 0.0f);
      float a[kMaxDState];
      for (int64_t j = 0; j < n; ++j) a[j] = -std::exp(a_log.as<float>()[c * n + j]);
      const float bias = dt_bias.as<float>()[c];
      const float dskip = d.as<float>()[c];
      for (int64_t i = qs[q]; i < qs[q + 1]; ++i) {
        const float xv = x.as<float>()[i * ch + c];
        const float delta = Softplus(dt.as<float>()[i * ch + c] + bias);
        const float* bvec = bc.as<float>() + i * 2 * n;
        const float* cvec = bvec + n;
        const float dx = delta * xv;
        float acc = 0.0f;
        for (int64_t j = 0; j < n; ++j) {
          state[j] = std::exp(delta * a[j]) * state[j] + dx * bvec[j];
          acc += state[j] * cvec[j];
        }
        y.as<float>()[i * ch + c] = (acc + dskip * xv) * Silu(z.as<float>()[i * ch + c]);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::GatedRmsNorm(const Tensor& x, const Tensor& z,
                                      const Tensor& w, int64_t group_size,
                                      float eps, const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, DType::kF32, 2, "GatedRmsNorm x"));
  HS_RETURN_IF_ERROR(ExpectTensor(z, DType::kF32, 2, "GatedRmsNorm z"));
  HS_RETURN_IF_ERROR(ExpectTensor(w, DType::kF32, 1, "GatedRmsNorm w"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, DType::kF32, 2, "GatedRmsNorm out"));
  const int64_t t = x.dim(0), dim = x.dim(1);
  if (z.dim(0) != t || z.dim(1) != dim || w.dim(0) != dim || out.dim(0) != t ||
      out.dim(1) != dim || group_size <= 0 || dim % group_size != 0) {
    return ShapeError("GatedRmsNorm",
                      absl::StrCat("x ", x.ShapeString(), " z ", z.ShapeString(), " w ",
                                   w.ShapeString(), " out ", out.ShapeString(),
                                   " group_size ", group_size));
  }
#pragma omp parallel for schedule(static) if (t * dim >= kParallelMinWork)
  for (int64_t r = 0; r < t; ++r) {
    const float* xr = x.as<float>() + r * dim;
    const float* zr = z.as<float>() + r * dim;
    float* o = out.as<float>() + r * dim;
    for (int64_t g0 = 0; g0 < dim; g0 += group_size) {
      double sum_sq = 0.0;
      for (int64_t j = g0; j < g0 + group_size; ++j) {
        const float h = xr[j] * Silu(zr[j]);
        o[j] = h;
        sum_sq += static_cast<double>(h) * h;
      }
      const float inv = 1.0f / std::sqrt(static_cast<float>(sum_sq / group_size) + eps);
      for (int64_t j = g0; j < g0 + group_size; ++j) o[j] = w.as<float>()[j] * (o[j] * inv);
    }
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine
