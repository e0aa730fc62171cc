// Start-up self-checks: before the server reports ready it runs the chosen
// backend's GEMM (the op nearly all the compute goes through) on seeded random
// inputs at a few shapes, odd ones included, and compares every element with a
// plain triple loop on the host. Some BLAS builds pick a kernel the CPU
// miscomputes with; a driver or device fault shows the same way on a GPU. A
// wrong result would otherwise only show as wrong tokens.
//
// Tolerance, per element y[t, n] with reference r (computed in double from the
// inputs as the backend sees them, i.e. already rounded to its act dtype):
//   |y - r| <= kAbsTol + rel * sum_k |x[t, k] * w[n, k]| (+ |bias[n]|)
// with rel = 1e-4 for f32 activations and 1.6e-2 for bf16 / f16 (the output's
// own rounding is 2^-8 / 2^-11 relative). A bound on the sum of magnitudes
// holds for any summation order, so a correct backend never trips it, while a
// single wrong product or a skipped block of K is far above it.
// Thread-compatible: call from the thread that owns the backend.
#ifndef HYBRIDSERVE_ENGINE_RUNTIME_SELF_CHECK_H_
#define HYBRIDSERVE_ENGINE_RUNTIME_SELF_CHECK_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/backend/backend.h"

namespace hybridserve::engine {

struct GemmCheckShape {
  int64_t t = 0;  // rows of x and y
  int64_t n = 0;  // rows of w, columns of y
  int64_t k = 0;  // the reduced dimension
  bool bias = false;
};

struct SelfCheckOptions {
  uint64_t seed = 0x5e1fc4ec;
  // Default: a few shapes, odd ones and ones past the CPU backend's padding
  // threshold (DefaultGemmCheckShapes()).
  std::vector<GemmCheckShape> shapes;
};

// The shapes RunSelfChecks uses when none are given.
std::vector<GemmCheckShape> DefaultGemmCheckShapes();

// Runs the checks on `backend`. OK when every element is within tolerance;
// otherwise INTERNAL with a message naming the backend, the shape, the first
// element that differs, both values and the tolerance. The backend's buffers
// used by the check are freed before it returns (on error too).
// REQUIRES: backend != nullptr.
absl::Status RunSelfChecks(Backend* backend, const SelfCheckOptions& options = {});

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_RUNTIME_SELF_CHECK_H_
