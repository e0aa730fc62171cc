#include "engine/backend/cuda/rope_kv_kernels.h"

namespace hybridserve::engine::cuda {
namespace {

constexpr int kThreads = 256;

// One block per token: the cos / sin of its position are computed once into
// shared memory ([2, half] f32), then every (head, pair) of q and k rotated.
template <typename T>
__global__ void RopeKernel(T* q, T* k, const int32_t* __restrict__ positions,
                           const float* __restrict__ inv_freq, int64_t num_heads,
                           int64_t num_kv_heads, int64_t head_dim, int64_t half,
                           float scaling) {
  extern __shared__ float cos_sin[];
  float* cos_tab = cos_sin;
  float* sin_tab = cos_sin + half;
  const int64_t t = blockIdx.x;
  const float pos = static_cast<float>(positions[t]);
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = pos * inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    cos_tab[i] = c * scaling;
    sin_tab[i] = s * scaling;
  }
  __syncthreads();
  const int64_t pairs = (num_heads + num_kv_heads) * half;
  for (int64_t idx = threadIdx.x; idx < pairs; idx += blockDim.x) {
    const int64_t head = idx / half;
    const int64_t i = idx - head * half;
    T* x = head < num_heads ? q + (t * num_heads + head) * head_dim
                            : k + (t * num_kv_heads + (head - num_heads)) * head_dim;
    const float x1 = ToFloat(x[i]);
    const float x2 = ToFloat(x[i + half]);
    x[i] = FromFloat<T>(x1 * cos_tab[i] - x2 * sin_tab[i]);
    x[i + half] = FromFloat<T>(x2 * cos_tab[i] + x1 * sin_tab[i]);
  }
}

// One block per token; k and v rows copied as 32-bit words when the rows
// are 32-bit aligned (always for f32).
__global__ void KvWriteKernel(const uint32_t* __restrict__ k,
                              const uint32_t* __restrict__ v,
                              const int32_t* __restrict__ slot_mapping,
                              uint32_t* __restrict__ k_cache,
                              uint32_t* __restrict__ v_cache, int64_t row_words,
                              int64_t num_slots) {
  const int64_t t = blockIdx.x;
  const int64_t slot = slot_mapping[t];
  if (slot < 0 || slot >= num_slots) return;
  const uint32_t* ks = k + t * row_words;
  const uint32_t* vs = v + t * row_words;
  uint32_t* kd = k_cache + slot * row_words;
  uint32_t* vd = v_cache + slot * row_words;
  for (int64_t j = threadIdx.x; j < row_words; j += blockDim.x) {
    kd[j] = ks[j];
    vd[j] = vs[j];
  }
}

// Fallback for 2-byte elements whose rows are not 32-bit aligned.
__global__ void KvWriteKernel16(const uint16_t* __restrict__ k,
                                const uint16_t* __restrict__ v,
                                const int32_t* __restrict__ slot_mapping,
                                uint16_t* __restrict__ k_cache,
                                uint16_t* __restrict__ v_cache, int64_t row,
                                int64_t num_slots) {
  const int64_t t = blockIdx.x;
  const int64_t slot = slot_mapping[t];
  if (slot < 0 || slot >= num_slots) return;
  for (int64_t j = threadIdx.x; j < row; j += blockDim.x) {
    k_cache[slot * row + j] = k[t * row + j];
    v_cache[slot * row + j] = v[t * row + j];
  }
}

template <typename T>
cudaError_t RopeTyped(const RopeParams& p, cudaStream_t stream) {
  const int64_t half = p.rotary_dim / 2;
  const size_t shared = 2 * static_cast<size_t>(half) * sizeof(float);
  RopeKernel<T><<<static_cast<unsigned int>(p.tokens), kThreads, shared, stream>>>(
      static_cast<T*>(p.q), static_cast<T*>(p.k), p.positions, p.inv_freq,
      p.num_heads, p.num_kv_heads, p.head_dim, half, p.attention_scaling);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchRope(const RopeParams& p, cudaStream_t stream) {
  if (p.tokens == 0 || p.rotary_dim == 0) return cudaSuccess;
  if (p.rotary_dim % 2 != 0 || p.rotary_dim > p.head_dim || p.rotary_dim > 1024) {
    return cudaErrorInvalidValue;
  }
  switch (p.elem) {
    case ElemType::kBF16:
      return RopeTyped<__nv_bfloat16>(p, stream);
    case ElemType::kF16:
      return RopeTyped<__half>(p, stream);
    default:
      return RopeTyped<float>(p, stream);
  }
}

cudaError_t LaunchKvWrite(const KvWriteParams& p, cudaStream_t stream) {
  if (p.tokens == 0 || p.row == 0) return cudaSuccess;
  const int64_t row_bytes = p.row * ElemSize(p.elem);
  const unsigned int grid = static_cast<unsigned int>(p.tokens);
  const auto aligned4 = [](const void* ptr) {
    return reinterpret_cast<uintptr_t>(ptr) % 4 == 0;
  };
  if (row_bytes % 4 == 0 && aligned4(p.k) && aligned4(p.v) && aligned4(p.k_cache) &&
      aligned4(p.v_cache)) {
    KvWriteKernel<<<grid, kThreads, 0, stream>>>(
        static_cast<const uint32_t*>(p.k), static_cast<const uint32_t*>(p.v),
        p.slot_mapping, static_cast<uint32_t*>(p.k_cache),
        static_cast<uint32_t*>(p.v_cache), row_bytes / 4, p.num_slots);
  } else {
    KvWriteKernel16<<<grid, kThreads, 0, stream>>>(
        static_cast<const uint16_t*>(p.k), static_cast<const uint16_t*>(p.v),
        p.slot_mapping, static_cast<uint16_t*>(p.k_cache),
        static_cast<uint16_t*>(p.v_cache), p.row, p.num_slots);
  }
  return cudaGetLastError();
}

}  // namespace hybridserve::engine::cuda
