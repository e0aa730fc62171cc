// Small definitions shared by the CUDA backend's .cc and .cu files. No Abseil
// here: .cu files include this header (DESIGN.md section 3), so launchers
// return cudaError_t and the .cc side converts it (CudaBackend::CudaCheck).
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CUDA_CUDA_COMMON_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CUDA_CUDA_COMMON_H_

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace hybridserve::engine::cuda {

// Element type of activations, weights and the KV cache on the device (the
// backend's act dtype). SSM state pools are always f32; index tensors i32.
enum class ElemType : int { kF32 = 0, kBF16 = 1, kF16 = 2 };

inline int ElemSize(ElemType t) { return t == ElemType::kF32 ? 4 : 2; }

// Returns the error from the enclosing function when `expr` (a cudaError_t)
// is not cudaSuccess. For launchers in .cu files.
#define HS_CUDA_RETURN_IF_ERROR(expr)               \
  do {                                              \
    const cudaError_t hs_cuda_err_ = (expr);        \
    if (hs_cuda_err_ != cudaSuccess) return hs_cuda_err_; \
  } while (0)

// Blocks of `threads` threads covering `n` items.
inline unsigned int NumBlocks(int64_t n, int threads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

#ifdef __CUDACC__

// Element i of `p` (of type `t`) as f32.
__device__ __forceinline__ float LoadAsFloat(const void* p, int64_t i,
                                             ElemType t) {
  switch (t) {
    case ElemType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case ElemType::kF16:
      return __half2float(static_cast<const __half*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

// Stores `v` rounded to nearest even into element i of `p` (of type `t`).
__device__ __forceinline__ void StoreFromFloat(void* p, int64_t i, ElemType t,
                                               float v) {
  switch (t) {
    case ElemType::kBF16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
      break;
    case ElemType::kF16:
      static_cast<__half*>(p)[i] = __float2half_rn(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
      break;
  }
}

// Typed conversions for kernels templated on the element type.
__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) {
  return __float2half_rn(v);
}

// Sum of `v` over a warp (all 32 lanes active), result in every lane.
__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

// Sum of `v` over the block (blockDim.x a multiple of 32, <= 1024), result in
// every thread. `shared` holds 32 floats. Ends with a __syncthreads, so it can
// be called again on the same `shared`.
__device__ __forceinline__ float BlockSum(float v, float* shared) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int num_warps = (blockDim.x + 31) >> 5;
  v = WarpSum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = lane < num_warps ? shared[lane] : 0.0f;
  total = WarpSum(total);
  __syncthreads();
  return total;
}

#endif  // __CUDACC__

}  // namespace hybridserve::engine::cuda

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CUDA_CUDA_COMMON_H_
