#include "engine/backend/cuda/mamba1_scan.h"

#include <algorithm>

namespace hybridserve::engine::cuda {
namespace {

constexpr int kThreads = 64;  // small blocks spread one long sequence over more SMs
constexpr int kMaxSmemFloats = 8192;  // 32 KiB of token tiles
constexpr int kMaxTileTokens = 32;

__device__ __forceinline__ float Silu(float v) { return v / (1.0f + expf(-v)); }
// torch.nn.functional.softplus (beta 1, threshold 20), as the CPU twin.
__device__ __forceinline__ float Softplus(float v) {
  return v > 20.0f ? v : log1pf(expf(v));
}

// Block: kThreads / kLanes channels of one sequence (grid (channel blocks,
// sequences)); lane g of a channel's group holds state entries g + j * kLanes,
// j < kPerLane.
// Per tile of up to `tile` tokens the block stages B, C (all of d_state) and
// the channels' x, dt, z in shared memory, then every group runs the tile's
// tokens in order and reduces S·C over its lanes.
template <typename T, int kLanes, int kPerLane>
__global__ void __launch_bounds__(kThreads, 1) Mamba1ScanKernel(const Mamba1ScanParams p, int tile) {
  constexpr int kChannels = kThreads / kLanes;
  extern __shared__ float smem[];
  const int n_state = static_cast<int>(p.d_state);
  float* s_bc = smem;                               // [tile][2 * d_state]
  float* s_x = s_bc + tile * 2 * n_state;           // [tile][kChannels]
  float* s_dt = s_x + tile * kChannels;             // [tile][kChannels]
  float* s_z = s_dt + tile * kChannels;             // [tile][kChannels]

  const int g = threadIdx.x % kLanes;
  const int cl = threadIdx.x / kLanes;
  const int64_t num_c = p.channels;
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * kChannels;
  const int64_t c = c0 + cl;
  const bool active = c < num_c;
  const int64_t seq = blockIdx.y;
  const int q0 = p.query_start[seq];
  const int n = p.query_start[seq + 1] - q0;
  const bool init = p.has_initial_state[seq] != 0;
  float* state = p.ssm_state + (static_cast<int64_t>(p.state_slot[seq]) * num_c + c) * n_state;

  const T* a_log = static_cast<const T*>(p.a_log);
  float a[kPerLane], s[kPerLane];
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int idx = g + j * kLanes;
    const bool ok = active && idx < n_state;
    a[j] = ok ? -expf(ToFloat(a_log[c * n_state + idx])) : 0.0f;
    s[j] = ok && init ? state[idx] : 0.0f;
  }
  const float bias = active ? ToFloat(static_cast<const T*>(p.dt_bias)[c]) : 0.0f;
  const float dskip = active ? ToFloat(static_cast<const T*>(p.d)[c]) : 0.0f;

  const T* bc = static_cast<const T*>(p.bc);
  const T* x = static_cast<const T*>(p.x);
  const T* dt = static_cast<const T*>(p.dt);
  const T* z = static_cast<const T*>(p.z);
  T* y = static_cast<T*>(p.y);
  for (int tt0 = 0; tt0 < n; tt0 += tile) {  // uniform over the block
    const int count = min(tile, n - tt0);
    const int64_t row0 = static_cast<int64_t>(q0) + tt0;
    __syncthreads();  // the previous tile is consumed
    for (int i = threadIdx.x; i < count * 2 * n_state; i += kThreads) {
      s_bc[i] = ToFloat(bc[row0 * 2 * n_state + i]);
    }
    for (int i = threadIdx.x; i < count * kChannels; i += kThreads) {
      const int64_t ch = c0 + i % kChannels;
      const int64_t off = (row0 + i / kChannels) * num_c + ch;
      const bool ok = ch < num_c;
      s_x[i] = ok ? ToFloat(x[off]) : 0.0f;
      s_dt[i] = ok ? ToFloat(dt[off]) : 0.0f;
      s_z[i] = ok ? ToFloat(z[off]) : 0.0f;
    }
    __syncthreads();
    for (int i = 0; i < count; ++i) {
      const float xv = s_x[i * kChannels + cl];
      const float delta = Softplus(s_dt[i * kChannels + cl] + bias);
      const float dx = delta * xv;
      const float* bv = s_bc + i * 2 * n_state;
      const float* cv = bv + n_state;
      float partial = 0.0f;
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        const int idx = g + j * kLanes;
        if (idx < n_state) {
          s[j] = expf(delta * a[j]) * s[j] + dx * bv[idx];
          partial += s[j] * cv[idx];
        }
      }
#pragma unroll
      for (int off = kLanes / 2; off > 0; off /= 2) {
        partial += __shfl_xor_sync(0xffffffffu, partial, off);
      }
      if (g == 0 && active) {
        y[(row0 + i) * num_c + c] = FromFloat<T>((partial + dskip * xv) * Silu(s_z[i * kChannels + cl]));
      }
    }
  }

#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int idx = g + j * kLanes;
    if (active && idx < n_state) state[idx] = s[j];
  }
}

template <typename T, int kLanes, int kPerLane>
cudaError_t LaunchTyped(const Mamba1ScanParams& p, cudaStream_t stream) {
  constexpr int kChannels = kThreads / kLanes;
  const int64_t per_token = 2 * p.d_state + 3 * kChannels;
  const int tile = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(kMaxTileTokens, kMaxSmemFloats / per_token)));
  const size_t smem = static_cast<size_t>(tile) * per_token * sizeof(float);
  const dim3 grid(NumBlocks(p.channels, kChannels), static_cast<unsigned int>(p.num_seqs));
  Mamba1ScanKernel<T, kLanes, kPerLane><<<grid, kThreads, smem, stream>>>(p, tile);
  return cudaGetLastError();
}

// Four state entries per lane up to d_state 128 (more lanes in flight for
// the usual d_state 16), sixteen beyond.
template <typename T>
cudaError_t LaunchForDState(const Mamba1ScanParams& p, cudaStream_t stream) {
  if (p.d_state <= 4) return LaunchTyped<T, 1, 4>(p, stream);
  if (p.d_state <= 8) return LaunchTyped<T, 2, 4>(p, stream);
  if (p.d_state <= 16) return LaunchTyped<T, 4, 4>(p, stream);
  if (p.d_state <= 32) return LaunchTyped<T, 8, 4>(p, stream);
  if (p.d_state <= 64) return LaunchTyped<T, 16, 4>(p, stream);
  if (p.d_state <= 128) return LaunchTyped<T, 32, 4>(p, stream);
  if (p.d_state <= 256) return LaunchTyped<T, 16, 16>(p, stream);
  return LaunchTyped<T, 32, 16>(p, stream);
}

}  // namespace

cudaError_t LaunchMamba1Scan(const Mamba1ScanParams& p, cudaStream_t stream) {
  static_assert(16 * 32 >= kMamba1MaxDState, "32 lanes of 16 must hold d_state");
  if (p.d_state < 1 || p.d_state > kMamba1MaxDState || p.channels <= 0 ||
      p.num_seqs > 65535) {
    return cudaErrorInvalidValue;
  }
  if (p.num_seqs == 0) return cudaSuccess;
  switch (p.elem) {
    case ElemType::kBF16:
      return LaunchForDState<__nv_bfloat16>(p, stream);
    case ElemType::kF16:
      return LaunchForDState<__half>(p, stream);
    default:
      return LaunchForDState<float>(p, stream);
  }
}

}  // namespace hybridserve::engine::cuda
