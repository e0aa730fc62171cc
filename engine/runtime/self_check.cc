#include "engine/runtime/self_check.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/dtype.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

constexpr double kAbsTol = 1e-6;

double RelTol(DType act) { return act == DType::kF32 ? 1e-4 : 1.6e-2; }

// Seeded values in [-1, 1], rounded to `dtype` (what the backend will see).
std::vector<float> RandomValues(std::mt19937_64& gen, int64_t count, DType dtype) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = RoundTo(dtype, dist(gen));
  return v;
}

// A host f32 array placed on the backend in its act dtype.
absl::StatusOr<DeviceBuffer> Upload(Backend* backend, const std::vector<float>& host, DType dtype) {
  const size_t bytes = host.size() * DTypeSize(dtype);
  HS_ASSIGN_OR_RETURN(DeviceBuffer buf, backend->Allocate(bytes, "self_check"));
  std::vector<char> staged(bytes);
  ConvertFloats(host.data(), DType::kF32, staged.data(), dtype, host.size());
  HS_RETURN_IF_ERROR(backend->CopyToDevice(staged.data(), buf.data(), bytes));
  return buf;
}

absl::Status CheckGemmShape(Backend* backend, const GemmCheckShape& s, std::mt19937_64& gen) {
  const DType dtype = backend->act_dtype();
  const std::string where = absl::StrFormat("Gemm on backend '%s' (%s) at T=%d N=%d K=%d%s",
                                            backend->name(), DTypeName(dtype), s.t, s.n, s.k,
                                            s.bias ? " with bias" : "");
  const std::vector<float> x = RandomValues(gen, s.t * s.k, dtype);  // [T, K]
  const std::vector<float> w = RandomValues(gen, s.n * s.k, dtype);  // [N, K]
  const std::vector<float> b = RandomValues(gen, s.bias ? s.n : 0, dtype);  // [N]

  HS_ASSIGN_OR_RETURN(DeviceBuffer x_dev, Upload(backend, x, dtype));
  HS_ASSIGN_OR_RETURN(DeviceBuffer w_dev, Upload(backend, w, dtype));
  DeviceBuffer b_dev;
  if (s.bias) {
    HS_ASSIGN_OR_RETURN(b_dev, Upload(backend, b, dtype));
  }
  const size_t y_bytes = static_cast<size_t>(s.t * s.n) * DTypeSize(dtype);
  HS_ASSIGN_OR_RETURN(DeviceBuffer y_dev, backend->Allocate(y_bytes, "self_check"));

  const Tensor xt(x_dev.data(), dtype, {s.t, s.k});
  const Tensor wt(w_dev.data(), dtype, {s.n, s.k});
  const Tensor bt = s.bias ? Tensor(b_dev.data(), dtype, {s.n}) : Tensor();
  const Tensor yt(y_dev.data(), dtype, {s.t, s.n});
  if (absl::Status st = backend->Gemm(xt, wt, bt, yt); !st.ok()) {
    return absl::InternalError(absl::StrCat("start-up self-check: ", where, " failed: ", st.message()));
  }
  HS_RETURN_IF_ERROR(backend->Synchronize());
  std::vector<char> y_raw(y_bytes);
  HS_RETURN_IF_ERROR(backend->CopyToHost(y_dev.data(), y_raw.data(), y_bytes));
  std::vector<float> y(static_cast<size_t>(s.t * s.n));  // [T, N]
  ConvertFloats(y_raw.data(), dtype, y.data(), DType::kF32, y.size());

  const double rel = RelTol(dtype);
  for (int64_t r = 0; r < s.t; ++r) {
    for (int64_t c = 0; c < s.n; ++c) {
      double ref = 0.0, mag = 0.0;
      for (int64_t i = 0; i < s.k; ++i) {
        const double p = static_cast<double>(x[r * s.k + i]) * w[c * s.k + i];
        ref += p;
        mag += std::fabs(p);
      }
      if (s.bias) {
        ref += b[c];
        mag += std::fabs(b[c]);
      }
      const double got = y[r * s.n + c];
      const double tol = kAbsTol + rel * mag;
      if (!(std::fabs(got - ref) <= tol)) {  // NaN fails too
        return absl::InternalError(absl::StrFormat(
            "start-up self-check failed: %s: y[%d, %d] = %.9g but a plain loop on the host gives "
            "%.9g (|difference| %.3g > tolerance %.3g = %g + %g * sum|x*w|). The backend "
            "miscomputes on this machine (a BLAS kernel or device fault); refusing to serve.",
            where, r, c, got, ref, std::fabs(got - ref), tol, kAbsTol, rel));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<GemmCheckShape> DefaultGemmCheckShapes() {
  return {
      {1, 7, 5, false},        // one row (a decode step), tiny odd sizes
      {3, 33, 65, true},       // few rows, odd sizes, bias
      {17, 128, 96, false},    // odd rows, aligned columns
      {130, 257, 300, true},   // past the CPU backend's padding threshold
      {37, 515, 257, false},   // odd everything, wider
  };
}

absl::Status RunSelfChecks(Backend* backend, const SelfCheckOptions& options) {
  const std::vector<GemmCheckShape> shapes =
      options.shapes.empty() ? DefaultGemmCheckShapes() : options.shapes;
  std::mt19937_64 gen(options.seed);
  for (const GemmCheckShape& s : shapes) {
    HS_RETURN_IF_ERROR(CheckGemmShape(backend, s, gen));
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine
