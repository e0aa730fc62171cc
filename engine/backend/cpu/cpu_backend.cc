#include "engine/backend/cpu/cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/backend/cpu/cpu_gemm.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

constexpr size_t kAlignment = 64;

absl::Status ShapeError(absl::string_view op, absl::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", detail));
}

}  // namespace

absl::Status ExpectTensor(const Tensor& t, DType dtype, int rank,
                          absl::string_view what) {
  if (t.data == nullptr && t.numel() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has no data"));
  }
  if (t.dtype != dtype || t.rank != rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", t.ShapeString(), ", expected ", std::string(DTypeName(dtype)),
        " of rank ", rank));
  }
  return absl::OkStatus();
}

CpuBackend::CpuBackend(const CpuBackendOptions& options) {
  num_threads_ = options.num_threads > 0 ? options.num_threads
                                         : omp_get_num_procs();
  omp_set_num_threads(num_threads_);
  isa_ = BestCpuIsa();
}

absl::StatusOr<DeviceBuffer> CpuBackend::Allocate(size_t num_bytes,
                                                  std::string_view pool) {
  size_t rounded = (std::max<size_t>(num_bytes, 1) + kAlignment - 1) /
                   kAlignment * kAlignment;
  void* data = std::aligned_alloc(kAlignment, rounded);
  if (data == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate ", num_bytes, " bytes of host memory for ", std::string(pool)));
  }
  return DeviceBuffer(this, data, num_bytes);
}

void CpuBackend::Free(void* data, size_t) { std::free(data); }

absl::Status CpuBackend::CopyToDevice(const void* host_src, void* device_dst,
                                      size_t num_bytes) {
  if (num_bytes > 0) std::memcpy(device_dst, host_src, num_bytes);
  return absl::OkStatus();
}

absl::Status CpuBackend::CopyToHost(const void* device_src, void* host_dst,
                                    size_t num_bytes) {
  if (num_bytes > 0) std::memcpy(host_dst, device_src, num_bytes);
  return absl::OkStatus();
}

absl::Status CpuBackend::CopyOnDevice(const void* src, void* dst, size_t num_bytes) {
  if (num_bytes > 0) std::memcpy(dst, src, num_bytes);
  return absl::OkStatus();
}

absl::Status CpuBackend::Zero(const Tensor& t) {
  if (t.numel() > 0) std::memset(t.data, 0, t.num_bytes());
  return absl::OkStatus();
}

absl::Status CpuBackend::FillUniform(const Tensor& t, uint64_t seed, float lo,
                                     float hi) {
  if (!IsFloat(t.dtype)) {
    return ShapeError("FillUniform", absl::StrCat("tensor is ", t.ShapeString(),
                                                  ", expected a float dtype"));
  }
  if (!(lo <= hi)) {
    return ShapeError("FillUniform", absl::StrCat("empty range [", lo, ", ", hi, ")"));
  }
  const int64_t n = t.numel();
  if (n > 0 && t.data == nullptr) return ShapeError("FillUniform", "tensor has no data");
  const float span = hi - lo;
#pragma omp parallel for schedule(static) if (n >= kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    // Separate statements: the product is rounded before the add (no FMA),
    // as the device code does.
    const float scaled = span * FillUniformUnit(seed, static_cast<uint64_t>(i));
    const float v = lo + scaled;
    switch (t.dtype) {
      case DType::kBF16:
        t.as<uint16_t>()[i] = F32ToBF16(v);
        break;
      case DType::kF16:
        t.as<uint16_t>()[i] = F32ToF16(v);
        break;
      default:
        t.as<float>()[i] = v;
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::Gemm(const Tensor& x, const Tensor& w,
                              const Tensor& bias, const Tensor& y) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, DType::kF32, 2, "Gemm x"));
  HS_RETURN_IF_ERROR(ExpectTensor(w, DType::kF32, 2, "Gemm w"));
  HS_RETURN_IF_ERROR(ExpectTensor(y, DType::kF32, 2, "Gemm y"));
  const int64_t t = x.dim(0), k = x.dim(1), n = w.dim(0);
  if (w.dim(1) != k || y.dim(0) != t || y.dim(1) != n) {
    return ShapeError("Gemm", absl::StrCat("x ", x.ShapeString(), " w ",
                                           w.ShapeString(), " y ",
                                           y.ShapeString()));
  }
  if (!bias.empty()) {
    HS_RETURN_IF_ERROR(ExpectTensor(bias, DType::kF32, 1, "Gemm bias"));
    if (bias.dim(0) != n) return ShapeError("Gemm", "bias size != N");
  }
  GemmF32({.x = x.as<float>(),
           .w = w.as<float>(),
           .bias = bias.empty() ? nullptr : bias.as<float>(),
           .y = y.as<float>(),
           .t = t,
           .n = n,
           .k = k},
          isa_);
  return absl::OkStatus();
}

absl::Status CpuBackend::Embedding(const Tensor& ids, const Tensor& table,
                                   const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(ids, DType::kI32, 1, "Embedding ids"));
  HS_RETURN_IF_ERROR(ExpectTensor(table, DType::kF32, 2, "Embedding table"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, DType::kF32, 2, "Embedding out"));
  const int64_t t = ids.dim(0), h = table.dim(1), vocab = table.dim(0);
  if (out.dim(0) != t || out.dim(1) != h) {
    return ShapeError("Embedding", "out shape does not match ids x hidden");
  }
  const int32_t* id = ids.as<int32_t>();
  for (int64_t i = 0; i < t; ++i) {
    if (id[i] < 0 || id[i] >= vocab) {
      return ShapeError("Embedding", absl::StrCat("token id ", id[i],
                                                  " outside [0, ", vocab, ")"));
    }
  }
  for (int64_t i = 0; i < t; ++i) {
    std::memcpy(out.as<float>() + i * h, table.as<float>() + id[i] * h,
                h * sizeof(float));
  }
  return absl::OkStatus();
}

namespace {

// out = x / sqrt(mean(x^2) + eps) * w over one row of `h` floats.
inline void RmsNormRow(const float* x, const float* w, float eps, int64_t h,
                       float* out) {
  double sum_sq = 0.0;
  for (int64_t j = 0; j < h; ++j) sum_sq += static_cast<double>(x[j]) * x[j];
  const float inv = 1.0f / std::sqrt(static_cast<float>(sum_sq / h) + eps);
  for (int64_t j = 0; j < h; ++j) out[j] = w[j] * (x[j] * inv);
}

absl::Status CheckNormShapes(const Tensor& x, const Tensor& w,
                             const Tensor& out, absl::string_view op) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, DType::kF32, 2, absl::StrCat(op, " x")));
  HS_RETURN_IF_ERROR(ExpectTensor(w, DType::kF32, 1, absl::StrCat(op, " w")));
  HS_RETURN_IF_ERROR(
      ExpectTensor(out, DType::kF32, 2, absl::StrCat(op, " out")));
  if (w.dim(0) != x.dim(1) || out.dim(0) != x.dim(0) ||
      out.dim(1) != x.dim(1)) {
    return ShapeError(op, absl::StrCat("x ", x.ShapeString(), " w ",
                                       w.ShapeString(), " out ",
                                       out.ShapeString()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CpuBackend::RmsNorm(const Tensor& x, const Tensor& w, float eps,
                                 const Tensor& out) {
  HS_RETURN_IF_ERROR(CheckNormShapes(x, w, out, "RmsNorm"));
  const int64_t t = x.dim(0), h = x.dim(1);
#pragma omp parallel for schedule(static) if (t * h >= kParallelMinWork)
  for (int64_t r = 0; r < t; ++r) {
    RmsNormRow(x.as<float>() + r * h, w.as<float>(), eps, h,
               out.as<float>() + r * h);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::AddRmsNorm(const Tensor& residual, const Tensor& x,
                                    const Tensor& w, float eps,
                                    const Tensor& out) {
  HS_RETURN_IF_ERROR(CheckNormShapes(x, w, out, "AddRmsNorm"));
  HS_RETURN_IF_ERROR(
      ExpectTensor(residual, DType::kF32, 2, "AddRmsNorm residual"));
  if (residual.dim(0) != x.dim(0) || residual.dim(1) != x.dim(1)) {
    return ShapeError("AddRmsNorm", "residual shape != x shape");
  }
  const int64_t t = x.dim(0), h = x.dim(1);
#pragma omp parallel for schedule(static) if (t * h >= kParallelMinWork)
  for (int64_t r = 0; r < t; ++r) {
    float* res = residual.as<float>() + r * h;
    const float* in = x.as<float>() + r * h;
    for (int64_t j = 0; j < h; ++j) res[j] += in[j];
    RmsNormRow(res, w.as<float>(), eps, h, out.as<float>() + r * h);
  }
  return absl::OkStatus();
}

namespace {

// As torch computes them in f32 (silu; gelu with approximate="tanh", ATen's
// kBeta · (x + kKappa · x³); relu then square).
inline float Activate(float x, Activation act) {
  switch (act) {
    case Activation::kGeluTanh: {
      constexpr float kBeta = 0.7978845608028654f;  // sqrt(2 / pi)
      constexpr float kKappa = 0.044715f;
      const float cube = x * x * x;
      const float inner = kBeta * (x + kKappa * cube);
      return 0.5f * x * (1.0f + std::tanh(inner));
    }
    case Activation::kRelu2: {
      const float r = x > 0.0f ? x : 0.0f;
      return r * r;
    }
    case Activation::kSilu:
      break;
  }
  return x / (1.0f + std::exp(-x));
}

}  // namespace

absl::Status CpuBackend::GatedAct(const Tensor& gate_up, Activation act, const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(gate_up, DType::kF32, 2, "GatedAct gate_up"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, DType::kF32, 2, "GatedAct out"));
  const int64_t t = out.dim(0), inter = out.dim(1);
  if (gate_up.dim(0) != t || gate_up.dim(1) != 2 * inter) {
    return ShapeError("GatedAct", absl::StrCat("gate_up ", gate_up.ShapeString(),
                                               " out ", out.ShapeString()));
  }
#pragma omp parallel for schedule(static) if (t * inter >= kParallelMinWork)
  for (int64_t r = 0; r < t; ++r) {
    const float* g = gate_up.as<float>() + r * 2 * inter;
    const float* u = g + inter;
    float* o = out.as<float>() + r * inter;
    for (int64_t j = 0; j < inter; ++j) o[j] = Activate(g[j], act) * u[j];
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::GatherRows(const Tensor& x, const Tensor& rows,
                                    const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, DType::kF32, 2, "GatherRows x"));
  HS_RETURN_IF_ERROR(ExpectTensor(rows, DType::kI32, 1, "GatherRows rows"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, DType::kF32, 2, "GatherRows out"));
  const int64_t r = rows.dim(0), h = x.dim(1);
  if (out.dim(0) != r || out.dim(1) != h) {
    return ShapeError("GatherRows", "out shape != [rows, hidden]");
  }
  const int32_t* idx = rows.as<int32_t>();
  for (int64_t i = 0; i < r; ++i) {
    if (idx[i] < 0 || idx[i] >= x.dim(0)) {
      return ShapeError("GatherRows", absl::StrCat("row ", idx[i], " outside [0, ",
                                                   x.dim(0), ")"));
    }
  }
  for (int64_t i = 0; i < r; ++i) {
    std::memcpy(out.as<float>() + i * h, x.as<float>() + idx[i] * h,
                h * sizeof(float));
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine
