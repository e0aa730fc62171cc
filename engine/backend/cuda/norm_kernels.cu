#include "engine/backend/cuda/norm_kernels.h"

namespace hybridserve::engine::cuda {
namespace {

// Threads per block for rows of `n` elements: about four elements per thread,
// a multiple of 32, at most 1024.
int RowThreads(int64_t n) {
  int64_t threads = (n + 3) / 4;
  threads = (threads + 31) / 32 * 32;
  if (threads < 32) threads = 32;
  if (threads > 1024) threads = 1024;
  return static_cast<int>(threads);
}

__device__ __forceinline__ float Silu(float v) { return v / (1.0f + expf(-v)); }

// One block per row. Phase 1 reads the row (and adds it into the residual),
// phase 2 writes the output; each element is read and written by the same
// thread, so out may alias x.
template <typename T>
__global__ void RmsNormKernel(const T* x, T* residual,
                              const T* __restrict__ w, T* out, int64_t h,
                              float eps) {
  __shared__ float partial[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * h;
  const T* xr = x + base;
  T* rr = residual != nullptr ? residual + base : nullptr;
  T* outr = out + base;
  float sum_sq = 0.0f;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    float v = ToFloat(xr[j]);
    if (rr != nullptr) {
      const T stored = FromFloat<T>(ToFloat(rr[j]) + v);
      rr[j] = stored;
      v = ToFloat(stored);
    }
    sum_sq += v * v;
  }
  sum_sq = BlockSum(sum_sq, partial);
  const float inv = 1.0f / sqrtf(sum_sq / static_cast<float>(h) + eps);
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    const float v = rr != nullptr ? ToFloat(rr[j]) : ToFloat(xr[j]);
    outr[j] = FromFloat<T>(ToFloat(w[j]) * (v * inv));
  }
}

// Grid (rows, groups); one block per group of one row.
template <typename T>
__global__ void GatedRmsNormKernel(const T* x, const T* __restrict__ z,
                                   const T* __restrict__ w, T* out, int64_t d,
                                   int64_t group_size, float eps) {
  __shared__ float partial[32];
  const int64_t w_base = static_cast<int64_t>(blockIdx.y) * group_size;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * d + w_base;
  float sum_sq = 0.0f;
  for (int64_t j = threadIdx.x; j < group_size; j += blockDim.x) {
    const float g = ToFloat(x[base + j]) * Silu(ToFloat(z[base + j]));
    sum_sq += g * g;
  }
  sum_sq = BlockSum(sum_sq, partial);
  const float inv = 1.0f / sqrtf(sum_sq / static_cast<float>(group_size) + eps);
  for (int64_t j = threadIdx.x; j < group_size; j += blockDim.x) {
    const float g = ToFloat(x[base + j]) * Silu(ToFloat(z[base + j]));
    out[base + j] = FromFloat<T>(ToFloat(w[w_base + j]) * (g * inv));
  }
}

template <typename T>
cudaError_t RmsNormTyped(const RmsNormParams& p, cudaStream_t stream) {
  RmsNormKernel<T><<<static_cast<unsigned int>(p.rows), RowThreads(p.h), 0, stream>>>(
      static_cast<const T*>(p.x), static_cast<T*>(p.residual),
      static_cast<const T*>(p.w), static_cast<T*>(p.out), p.h, p.eps);
  return cudaGetLastError();
}

template <typename T>
cudaError_t GatedRmsNormTyped(const GatedRmsNormParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned int>(p.rows),
                  static_cast<unsigned int>(p.d / p.group_size));
  GatedRmsNormKernel<T><<<grid, RowThreads(p.group_size), 0, stream>>>(
      static_cast<const T*>(p.x), static_cast<const T*>(p.z),
      static_cast<const T*>(p.w), static_cast<T*>(p.out), p.d, p.group_size,
      p.eps);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchRmsNorm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.h == 0) return cudaSuccess;
  switch (p.elem) {
    case ElemType::kBF16:
      return RmsNormTyped<__nv_bfloat16>(p, stream);
    case ElemType::kF16:
      return RmsNormTyped<__half>(p, stream);
    default:
      return RmsNormTyped<float>(p, stream);
  }
}

cudaError_t LaunchGatedRmsNorm(const GatedRmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.d == 0) return cudaSuccess;
  if (p.group_size <= 0 || p.d % p.group_size != 0 ||
      p.d / p.group_size > 65535) {
    return cudaErrorInvalidValue;
  }
  switch (p.elem) {
    case ElemType::kBF16:
      return GatedRmsNormTyped<__nv_bfloat16>(p, stream);
    case ElemType::kF16:
      return GatedRmsNormTyped<__half>(p, stream);
    default:
      return GatedRmsNormTyped<float>(p, stream);
  }
}

}  // namespace hybridserve::engine::cuda
