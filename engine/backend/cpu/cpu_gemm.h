// The CPU backend's matrix products, written so that every output element is
// summed in one order fixed by K alone (equality class (b), DESIGN.md section 7):
//
//   lane l of 16 accumulates x[k] * w[k] for k = l, l + 16, l + 32, ... in
//   increasing k, each step one fused multiply-add (the last partial group of
//   16 reads zeros beyond K); then the 16 lanes are added as a fixed tree:
//   a[i] = l[i] + l[i + 8], b[i] = a[i] + a[i + 4], c[i] = b[i] + b[i + 2],
//   sum = c[0] + c[1]; the bias, if any, is added last.
//
// Nothing else enters an element's value: not the number of rows in the call,
// the row's place in its tile, the split of columns among threads, nor the
// instruction set. The AVX-512, AVX2 and portable paths give bitwise identical
// results (tests check it); the fastest the CPU supports is used.
//
// Thread-compatible: the functions keep no state; GemmF32 runs its own OpenMP
// loop over column blocks when the call is large enough.
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CPU_CPU_GEMM_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CPU_CPU_GEMM_H_

#include <cstdint>
#include <string_view>

namespace hybridserve::engine {

enum class CpuIsa { kPortable, kAvx2, kAvx512 };

// The fastest path this CPU supports (AVX-512F, else AVX2 + FMA, else portable).
CpuIsa BestCpuIsa();
// Whether this CPU can run `isa`'s path.
bool CpuIsaSupported(CpuIsa isa);
std::string_view CpuIsaName(CpuIsa isa);

struct GemmF32Args {
  const float* x = nullptr;     // [t, k], row stride k
  const float* w = nullptr;     // [n, k], row stride k
  const float* bias = nullptr;  // [n] or null
  float* y = nullptr;           // [t, n], row stride n; must not alias x or w
  int64_t t = 0, n = 0, k = 0;
};

// y = x · wᵀ (+ bias), each element summed as the header describes.
// REQUIRES: CpuIsaSupported(isa); t, n, k >= 0.
void GemmF32(const GemmF32Args& args, CpuIsa isa);

// Σ a[i] * b[i] over i < k, in the same order as one element of GemmF32.
// REQUIRES: CpuIsaSupported(isa).
float DotF32(const float* a, const float* b, int64_t k, CpuIsa isa);

// out[c] = DotF32(a, b + c * b_stride, k) for c < count, several at a time
// (attention scores against keys `b_stride` floats apart).
// REQUIRES: CpuIsaSupported(isa).
void DotsF32(const float* a, const float* b, int64_t b_stride, int64_t count, int64_t k,
             float* out, CpuIsa isa);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CPU_CPU_GEMM_H_
