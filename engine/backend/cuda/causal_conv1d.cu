#include "engine/backend/cuda/causal_conv1d.h"

namespace hybridserve::engine::cuda {
namespace {

// Tokens per thread per window. At least kMaxConvKernelSize - 1, so the
// inputs before a chunk (other than the first of a window) lie in the window.
constexpr int kChunk = 16;
static_assert(kChunk >= kMaxConvKernelSize - 1, "a chunk must cover the conv window");

__device__ __forceinline__ float Silu(float v) { return v / (1.0f + expf(-v)); }

// Block: kChannels channels x kLanes chunks of one sequence (grid (channel
// blocks, sequences)). Thread (lane, channel) handles tokens
// [w0 + lane * kChunk, + kChunk) of each window of kLanes * kChunk tokens.
// Kernel sizes up to kMaxK: weights and the window are right-aligned in
// arrays of kMaxK (entries before `pad` are unused), so all indices are
// compile-time and the arrays stay in registers.
template <typename T, int kMaxK, int kLanes, int kChannels>
__global__ void __launch_bounds__(kLanes * kChannels)
    CausalConv1dKernel(const CausalConv1dParams p) {
  constexpr int kHist = kMaxK - 1;
  __shared__ float s_carry[kHist][kChannels];  // window handed between windows
  const int cl = threadIdx.x % kChannels;
  const int lane = threadIdx.x / kChannels;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kChannels + cl;
  const int64_t num_c = p.channels;
  const bool active = c < num_c;
  const int64_t seq = blockIdx.y;
  const int q0 = p.query_start[seq];
  const int n = p.query_start[seq + 1] - q0;
  const int k = p.kernel_size;
  const int w = k - 1;
  const int pad = kMaxK - k;
  const T* x = static_cast<const T*>(p.x);
  T* out = static_cast<T*>(p.out);
  float* state = p.conv_state + (static_cast<int64_t>(p.state_slot[seq]) * num_c + c) * w;

  float wt[kMaxK];
  float bias = 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxK; ++j) wt[j] = 0.0f;
  if (active) {
    const T* wc = static_cast<const T*>(p.weight) + c * k;
#pragma unroll
    for (int j = 0; j < kMaxK; ++j) {
      if (j >= pad) wt[j] = ToFloat(wc[j - pad]);
    }
    if (p.bias != nullptr) bias = ToFloat(static_cast<const T*>(p.bias)[c]);
  }
  if (lane == 0) {
    const bool init = p.has_initial_state[seq] != 0;
#pragma unroll
    for (int j = 0; j < kHist; ++j) {
      s_carry[j][cl] = (active && init && j >= pad) ? state[j - pad] : 0.0f;
    }
  }
  __syncthreads();

  for (int w0 = 0; w0 < n; w0 += kLanes * kChunk) {  // uniform over the block
    const int t0 = w0 + lane * kChunk;
    const bool has_tokens = active && t0 < n;
    float hist[kHist];
    float xs[kChunk];
#pragma unroll
    for (int j = 0; j < kHist; ++j) hist[j] = 0.0f;
#pragma unroll
    for (int i = 0; i < kChunk; ++i) xs[i] = 0.0f;
    // Phase 1: read everything this thread needs.
    if (has_tokens) {
      if (lane == 0) {
#pragma unroll
        for (int j = 0; j < kHist; ++j) hist[j] = s_carry[j][cl];
      } else {
#pragma unroll
        for (int j = 0; j < kHist; ++j) {
          // t0 - kHist + j >= w0: rows of this window, not yet overwritten.
          if (j >= pad) hist[j] = ToFloat(x[(static_cast<int64_t>(q0) + t0 - kHist + j) * num_c + c]);
        }
      }
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        if (t0 + i < n) xs[i] = ToFloat(x[(static_cast<int64_t>(q0) + t0 + i) * num_c + c]);
      }
    }
    __syncthreads();
    // Phase 2: write.
    if (has_tokens) {
      const int count = min(kChunk, n - t0);
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        if (i < count) {
          float acc = bias;
#pragma unroll
          for (int j = 0; j < kHist; ++j) {
            if (j >= pad) acc += wt[j] * hist[j];
          }
          acc += wt[kMaxK - 1] * xs[i];
          out[(static_cast<int64_t>(q0) + t0 + i) * num_c + c] = FromFloat<T>(p.silu ? Silu(acc) : acc);
#pragma unroll
          for (int j = 0; j + 1 < kHist; ++j) hist[j] = hist[j + 1];
          if (kHist > 0) hist[kHist - 1] = xs[i];
        }
      }
      // The chunk holding the window's last token hands its window on.
      if (t0 + count == min(w0 + kLanes * kChunk, n)) {
#pragma unroll
        for (int j = 0; j < kHist; ++j) s_carry[j][cl] = hist[j];
      }
    }
    __syncthreads();
  }

  if (lane == 0 && active) {
#pragma unroll
    for (int j = 0; j < kHist; ++j) {
      if (j >= pad) state[j - pad] = s_carry[j][cl];
    }
  }
}

template <typename T, int kMaxK>
cudaError_t LaunchTyped(const CausalConv1dParams& p, cudaStream_t stream) {
  if (p.max_query_len > kChunk) {
    constexpr int kLanes = 8, kChannels = 32;
    const dim3 grid(NumBlocks(p.channels, kChannels), static_cast<unsigned int>(p.num_seqs));
    CausalConv1dKernel<T, kMaxK, kLanes, kChannels><<<grid, kLanes * kChannels, 0, stream>>>(p);
  } else {
    constexpr int kLanes = 1, kChannels = 128;
    const dim3 grid(NumBlocks(p.channels, kChannels), static_cast<unsigned int>(p.num_seqs));
    CausalConv1dKernel<T, kMaxK, kLanes, kChannels><<<grid, kLanes * kChannels, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t LaunchForKernelSize(const CausalConv1dParams& p, cudaStream_t stream) {
  if (p.kernel_size <= 4) return LaunchTyped<T, 4>(p, stream);
  return LaunchTyped<T, kMaxConvKernelSize>(p, stream);
}

}  // namespace

cudaError_t LaunchCausalConv1d(const CausalConv1dParams& p, cudaStream_t stream) {
  if (p.kernel_size < 1 || p.kernel_size > kMaxConvKernelSize || p.num_seqs > 65535 ||
      p.channels <= 0) {
    return cudaErrorInvalidValue;
  }
  if (p.num_seqs == 0) return cudaSuccess;
  switch (p.elem) {
    case ElemType::kBF16:
      return LaunchForKernelSize<__nv_bfloat16>(p, stream);
    case ElemType::kF16:
      return LaunchForKernelSize<__half>(p, stream);
    default:
      return LaunchForKernelSize<float>(p, stream);
  }
}

}  // namespace hybridserve::engine::cuda
