#include "engine/backend/cuda/mamba2_ssd.h"

#include <algorithm>

namespace hybridserve::engine::cuda {
namespace {

constexpr int kStepThreads = 128;
constexpr int kChunkThreads = 256;
constexpr int kChunkWarps = kChunkThreads / 32;
constexpr int kMaxChunk = 64;  // the cumsum runs in one warp, two tokens per lane

// torch.nn.functional.softplus (beta 1, threshold 20), as the CPU twin.
__device__ __forceinline__ float Softplus(float v) {
  return v > 20.0f ? v : log1pf(expf(v));
}

__device__ __forceinline__ float Delta(float raw, float bias, float lo, float hi) {
  return fminf(fmaxf(Softplus(raw + bias), lo), hi);
}

__host__ __device__ inline int RoundUp4(int v) { return (v + 3) / 4 * 4; }

// ---------------------------------------------------------------------------
// Single-step update. Grid (heads, sequences); sequences with more than one
// new token are left to the chunked kernel. B, C and x of the token are
// staged in shared memory ([2 * d_state + head_dim] floats); warp w updates
// state rows w, w + 4, ..., its lanes covering d_state (4 entries per lane
// per step when kVec4), and reduces S·C over the warp.
template <typename T, bool kVec4>
__global__ void __launch_bounds__(kStepThreads) Mamba2StepKernel(const Mamba2SsdParams p) {
  extern __shared__ __align__(16) float smem[];
  const int h = blockIdx.x;
  const int64_t seq = blockIdx.y;
  const int q0 = p.query_start[seq];
  const int n = p.query_start[seq + 1] - q0;
  if (n > 1) return;
  const int num_n = p.d_state, num_p = p.head_dim, num_h = p.num_heads;
  const bool init = p.has_initial_state[seq] != 0;
  float* state = p.ssm_state + (static_cast<int64_t>(p.state_slot[seq]) * num_h + h) * num_p * num_n;
  if (n == 0) {  // nothing to run; a fresh sequence still starts from zeros
    if (!init) {
      for (int i = threadIdx.x; i < num_p * num_n; i += kStepThreads) state[i] = 0.0f;
    }
    return;
  }
  const int g = h / (num_h / p.n_groups);
  const int64_t d_inner = static_cast<int64_t>(num_h) * num_p;
  const int64_t width = d_inner + 2 * static_cast<int64_t>(p.n_groups) * num_n;
  const T* row = static_cast<const T*>(p.xbc) + static_cast<int64_t>(q0) * width;
  float* s_b = smem;               // [d_state]
  float* s_c = s_b + num_n;        // [d_state]
  float* s_x = s_c + num_n;        // [head_dim]
  for (int i = threadIdx.x; i < num_n; i += kStepThreads) {
    s_b[i] = ToFloat(row[d_inner + static_cast<int64_t>(g) * num_n + i]);
    s_c[i] = ToFloat(row[d_inner + static_cast<int64_t>(p.n_groups + g) * num_n + i]);
  }
  for (int i = threadIdx.x; i < num_p; i += kStepThreads) {
    s_x[i] = ToFloat(row[static_cast<int64_t>(h) * num_p + i]);
  }
  const float delta = Delta(ToFloat(static_cast<const T*>(p.dt)[static_cast<int64_t>(q0) * num_h + h]),
                            ToFloat(static_cast<const T*>(p.dt_bias)[h]), p.dt_min, p.dt_max);
  const float decay = expf(delta * -expf(ToFloat(static_cast<const T*>(p.a_log)[h])));
  const float dskip = ToFloat(static_cast<const T*>(p.d)[h]);
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  T* y = static_cast<T*>(p.y) + static_cast<int64_t>(q0) * d_inner + static_cast<int64_t>(h) * num_p;
  for (int pi = warp; pi < num_p; pi += kStepThreads / 32) {
    float* sp = state + static_cast<int64_t>(pi) * num_n;
    const float dx = delta * s_x[pi];
    float acc = 0.0f;
    if constexpr (kVec4) {
      for (int j = lane * 4; j < num_n; j += 128) {
        float4 v = init ? *reinterpret_cast<const float4*>(sp + j) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        // s_b and s_c start 16-byte aligned (d_state % 4 == 0 here).
        const float4 b4 = *reinterpret_cast<const float4*>(s_b + j);
        const float4 c4 = *reinterpret_cast<const float4*>(s_c + j);
        v.x = v.x * decay + dx * b4.x;
        v.y = v.y * decay + dx * b4.y;
        v.z = v.z * decay + dx * b4.z;
        v.w = v.w * decay + dx * b4.w;
        acc += v.x * c4.x + v.y * c4.y + v.z * c4.z + v.w * c4.w;
        *reinterpret_cast<float4*>(sp + j) = v;
      }
    } else {
      for (int j = lane; j < num_n; j += 32) {
        const float v = (init ? sp[j] : 0.0f) * decay + dx * s_b[j];
        acc += v * s_c[j];
        sp[j] = v;
      }
    }
    acc = WarpSum(acc);
    if (lane == 0) y[pi] = FromFloat<T>(acc + dskip * s_x[pi]);
  }
}

// ---------------------------------------------------------------------------
// Chunked SSD. Grid (head_dim blocks, heads, z_count): block (pb_idx, h, zi)
// takes the head_dim rows [pb_idx * pb, + pb) of head h for the sequences
// with more than one new token whose rank among those is zi modulo z_count.
// Shared memory (floats; np = d_state rounded up to 4, ld = chunk + 4):
//   sBt, sCt  [np][ld]     B, C of the chunk, transposed (t contiguous)
//   sMt       [chunk][ld]  M[t][s] = C_t·B_s · exp(cum_t - cum_s) · δ_s for
//                          s <= t < L, else 0; stored transposed ([s][t])
//   sX        [chunk][pb]  x of the chunk, the block's rows
//   sHt       [np][pb]     the state entering the chunk, transposed
//   sCum, sDelta, sW, sExpCum [chunk]: inclusive cumsum of δA, δ,
//                          δ_s · exp(cum_{L-1} - cum_s), exp(cum_t)
// Per chunk of L tokens:
//   y[t,p] = Σ_{s<=t} M[t][s] x[s,p] + exp(cum_t) Σ_n C[t,n] H[p,n] + D x[t,p]
//   H[p,n] <- exp(cum_{L-1}) H[p,n] + Σ_s sW[s] x[s,p] B[s,n]
// Every product runs over 4x4 register tiles with 16-byte shared loads.
struct ChunkSmem {
  float* bt;
  float* ct;
  float* mt;
  float* x;
  float* ht;
  float* cum;
  float* delta;
  float* w;
  float* exp_cum;
};

__host__ __device__ inline int64_t ChunkSmemFloats(int chunk, int pb, int np) {
  const int64_t ld = chunk + 4;
  return 2 * np * ld + chunk * ld + static_cast<int64_t>(chunk) * pb +
         static_cast<int64_t>(np) * pb + 4 * chunk;
}

template <typename T>
__device__ void ScanSequence(const Mamba2SsdParams& p, const ChunkSmem& sm, int64_t seq,
                             int h, int p0, int pw, int pb, int chunk, float a, float bias,
                             float dskip) {
  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int num_n = p.d_state, num_p = p.head_dim, num_h = p.num_heads;
  const int np = RoundUp4(num_n);
  const int ld = chunk + 4;
  const int g = h / (num_h / p.n_groups);
  const int64_t d_inner = static_cast<int64_t>(num_h) * num_p;
  const int64_t width = d_inner + 2 * static_cast<int64_t>(p.n_groups) * num_n;
  const int64_t b_off = d_inner + static_cast<int64_t>(g) * num_n;
  const int64_t c_off = d_inner + static_cast<int64_t>(p.n_groups + g) * num_n;
  const int64_t x_off = static_cast<int64_t>(h) * num_p + p0;
  const T* xbc = static_cast<const T*>(p.xbc);
  const T* dt = static_cast<const T*>(p.dt);
  T* y = static_cast<T*>(p.y);

  const int q0 = p.query_start[seq];
  const int n = p.query_start[seq + 1] - q0;
  const bool init = p.has_initial_state[seq] != 0;
  float* state = p.ssm_state +
                 (static_cast<int64_t>(p.state_slot[seq]) * num_h + h) * num_p * num_n;

  // The state entering the first chunk (the next barrier orders it).
  for (int idx = tid; idx < pb * np; idx += kChunkThreads) {
    const int pp = idx / np, nn = idx % np;
    sm.ht[nn * pb + pp] =
        (init && pp < pw && nn < num_n) ? state[static_cast<int64_t>(p0 + pp) * num_n + nn] : 0.0f;
  }

  const int ct = chunk / 4;
  const int ptl = pb / 4;
  const int ntl = np / 4;
  for (int c0 = 0; c0 < n; c0 += chunk) {
    const int len = min(chunk, n - c0);
    const int64_t row0 = static_cast<int64_t>(q0) + c0;

    // 1. δ, the cumsum of δA (warp 0), and the chunk's B, C, x.
    if (warp == 0) {
      float v[2];
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        const int t = lane + 32 * k;
        v[k] = 0.0f;
        if (t < len) {
          const float dl = Delta(ToFloat(dt[(row0 + t) * num_h + h]), bias, p.dt_min, p.dt_max);
          sm.delta[t] = dl;
          v[k] = dl * a;
        } else if (t < chunk) {
          sm.delta[t] = 0.0f;
        }
      }
#pragma unroll
      for (int off = 1; off < 32; off *= 2) {
        const float u0 = __shfl_up_sync(0xffffffffu, v[0], off);
        const float u1 = __shfl_up_sync(0xffffffffu, v[1], off);
        if (lane >= off) {
          v[0] += u0;
          v[1] += u1;
        }
      }
      v[1] += __shfl_sync(0xffffffffu, v[0], 31);
      if (lane < chunk) sm.cum[lane] = v[0];
      if (lane + 32 < chunk) sm.cum[lane + 32] = v[1];
      __syncwarp();
      const float cum_end = sm.cum[len - 1];
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        const int t = lane + 32 * k;
        if (t < chunk) {
          sm.exp_cum[t] = t < len ? expf(sm.cum[t]) : 0.0f;
          sm.w[t] = t < len ? sm.delta[t] * expf(cum_end - sm.cum[t]) : 0.0f;
        }
      }
    }
    for (int idx = tid; idx < chunk * np; idx += kChunkThreads) {
      const int t = idx / np, nn = idx % np;
      const bool ok = t < len && nn < num_n;
      const T* r = xbc + (row0 + t) * width;
      sm.bt[nn * ld + t] = ok ? ToFloat(r[b_off + nn]) : 0.0f;
      sm.ct[nn * ld + t] = ok ? ToFloat(r[c_off + nn]) : 0.0f;
    }
    for (int idx = tid; idx < chunk * pb; idx += kChunkThreads) {
      const int t = idx / pb, pp = idx % pb;
      sm.x[idx] = (t < len && pp < pw) ? ToFloat(xbc[(row0 + t) * width + x_off + pp]) : 0.0f;
    }
    __syncthreads();

    // 2. M = (C·Bᵀ) masked and decayed, stored transposed.
    for (int tile = tid; tile < ct * ct; tile += kChunkThreads) {
      const int t0 = (tile / ct) * 4, s0 = (tile % ct) * 4;
      float m[4][4] = {};
      if (s0 <= t0 && t0 < len) {
        for (int nn = 0; nn < np; ++nn) {
          const float4 c4 = *reinterpret_cast<const float4*>(sm.ct + nn * ld + t0);
          const float4 b4 = *reinterpret_cast<const float4*>(sm.bt + nn * ld + s0);
          const float cv[4] = {c4.x, c4.y, c4.z, c4.w};
          const float bv[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
          for (int i = 0; i < 4; ++i) {
#pragma unroll
            for (int j = 0; j < 4; ++j) m[i][j] = fmaf(cv[i], bv[j], m[i][j]);
          }
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int t = t0 + i, s = s0 + j;
            m[i][j] = (s <= t && t < len)
                          ? m[i][j] * expf(sm.cum[t] - sm.cum[s]) * sm.delta[s]
                          : 0.0f;
          }
        }
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        *reinterpret_cast<float4*>(sm.mt + (s0 + j) * ld + t0) =
            make_float4(m[0][j], m[1][j], m[2][j], m[3][j]);
      }
    }
    __syncthreads();

    // 3. Outputs: intra-chunk term, decayed incoming state, skip.
    for (int tile = tid; tile < ct * ptl; tile += kChunkThreads) {
      const int t0 = (tile / ptl) * 4, pp0 = (tile % ptl) * 4;
      if (t0 >= len) continue;
      float yi[4][4] = {}, ye[4][4] = {};
      const int s_end = min(len, t0 + 4);
      for (int s = 0; s < s_end; ++s) {
        const float4 m4 = *reinterpret_cast<const float4*>(sm.mt + s * ld + t0);
        const float4 x4 = *reinterpret_cast<const float4*>(sm.x + s * pb + pp0);
        const float mv[4] = {m4.x, m4.y, m4.z, m4.w};
        const float xv[4] = {x4.x, x4.y, x4.z, x4.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int j = 0; j < 4; ++j) yi[i][j] = fmaf(mv[i], xv[j], yi[i][j]);
        }
      }
      for (int nn = 0; nn < np; ++nn) {
        const float4 c4 = *reinterpret_cast<const float4*>(sm.ct + nn * ld + t0);
        const float4 h4 = *reinterpret_cast<const float4*>(sm.ht + nn * pb + pp0);
        const float cv[4] = {c4.x, c4.y, c4.z, c4.w};
        const float hv[4] = {h4.x, h4.y, h4.z, h4.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int j = 0; j < 4; ++j) ye[i][j] = fmaf(cv[i], hv[j], ye[i][j]);
        }
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int t = t0 + i;
        if (t >= len) continue;
        const float ec = sm.exp_cum[t];
        T* yrow = y + (row0 + t) * d_inner + x_off;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int pp = pp0 + j;
          if (pp < pw) {
            yrow[pp] = FromFloat<T>(yi[i][j] + ec * ye[i][j] + dskip * sm.x[t * pb + pp]);
          }
        }
      }
    }
    __syncthreads();

    // 4. The state after the chunk.
    const float decay_end = sm.exp_cum[len - 1];
    for (int tile = tid; tile < ntl * ptl; tile += kChunkThreads) {
      const int n0 = (tile / ptl) * 4, pp0 = (tile % ptl) * 4;
      float acc[4][4] = {};
      for (int s = 0; s < len; ++s) {
        const float ws = sm.w[s];
        const float4 x4 = *reinterpret_cast<const float4*>(sm.x + s * pb + pp0);
        const float xv[4] = {x4.x * ws, x4.y * ws, x4.z * ws, x4.w * ws};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float bv = sm.bt[(n0 + i) * ld + s];
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(bv, xv[j], acc[i][j]);
        }
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float4* hp = reinterpret_cast<float4*>(sm.ht + (n0 + i) * pb + pp0);
        float4 h4 = *hp;
        h4.x = h4.x * decay_end + acc[i][0];
        h4.y = h4.y * decay_end + acc[i][1];
        h4.z = h4.z * decay_end + acc[i][2];
        h4.w = h4.w * decay_end + acc[i][3];
        *hp = h4;
      }
    }
    __syncthreads();
  }

  for (int idx = tid; idx < pb * np; idx += kChunkThreads) {
    const int pp = idx / np, nn = idx % np;
    if (pp < pw && nn < num_n) state[static_cast<int64_t>(p0 + pp) * num_n + nn] = sm.ht[nn * pb + pp];
  }
  __syncthreads();
}

template <typename T>
__global__ void __launch_bounds__(kChunkThreads, 1)
    Mamba2ChunkKernel(const Mamba2SsdParams p, int chunk, int pb, int z_count) {
  extern __shared__ float4 smem4[];
  __shared__ int s_list[kChunkThreads];
  __shared__ int s_warp_count[kChunkWarps];
  float* smem = reinterpret_cast<float*>(smem4);
  const int np = RoundUp4(p.d_state);
  const int ld = chunk + 4;
  ChunkSmem sm;
  sm.bt = smem;
  sm.ct = sm.bt + np * ld;
  sm.mt = sm.ct + np * ld;
  sm.x = sm.mt + chunk * ld;
  sm.ht = sm.x + chunk * pb;
  sm.cum = sm.ht + np * pb;
  sm.delta = sm.cum + chunk;
  sm.w = sm.delta + chunk;
  sm.exp_cum = sm.w + chunk;

  const int h = blockIdx.y;
  const int p0 = blockIdx.x * pb;
  const int pw = min(pb, p.head_dim - p0);
  const int zi = blockIdx.z;
  const float a = -expf(ToFloat(static_cast<const T*>(p.a_log)[h]));
  const float bias = ToFloat(static_cast<const T*>(p.dt_bias)[h]);
  const float dskip = ToFloat(static_cast<const T*>(p.d)[h]);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  // Walk the sequences in batches of kChunkThreads, listing those with more
  // than one new token in order; this block takes every z_count-th of them.
  int rank_base = 0;
  for (int64_t sb = 0; sb < p.num_seqs; sb += kChunkThreads) {
    const int64_t s = sb + threadIdx.x;
    const bool flag = s < p.num_seqs && p.query_start[s + 1] - p.query_start[s] > 1;
    const unsigned ballot = __ballot_sync(0xffffffffu, flag);
    if (lane == 0) s_warp_count[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, total = 0;
#pragma unroll
    for (int w = 0; w < kChunkWarps; ++w) {
      if (w < warp) before += s_warp_count[w];
      total += s_warp_count[w];
    }
    if (flag) s_list[before + __popc(ballot & ((1u << lane) - 1u))] = static_cast<int>(s);
    __syncthreads();
    for (int k = 0; k < total; ++k) {  // uniform over the block
      if ((rank_base + k) % z_count != zi) continue;
      ScanSequence<T>(p, sm, s_list[k], h, p0, pw, pb, chunk, a, bias, dskip);
    }
    rank_base += total;
    __syncthreads();
  }
}

template <typename T>
cudaError_t LaunchTyped(const Mamba2SsdParams& p, cudaStream_t stream) {
  const unsigned int seqs = static_cast<unsigned int>(p.num_seqs);
  // Single-step update for sequences with at most one new token.
  const bool vec4 = p.d_state % 4 == 0;
  const size_t step_smem = (2 * static_cast<size_t>(p.d_state) + p.head_dim) * sizeof(float);
  const dim3 step_grid(static_cast<unsigned int>(p.num_heads), seqs);
  if (vec4) {
    Mamba2StepKernel<T, true><<<step_grid, kStepThreads, step_smem, stream>>>(p);
  } else {
    Mamba2StepKernel<T, false><<<step_grid, kStepThreads, step_smem, stream>>>(p);
  }
  HS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  if (p.max_query_len <= 1) return cudaSuccess;

  // Chunked SSD for the rest. Split head_dim over blocks only when heads x
  // sequences would leave most of the device idle.
  int pb = RoundUp4(p.head_dim);
  const int64_t sms = std::max(p.num_sms, 1);
  while (pb > 16 && 2 * static_cast<int64_t>(p.num_heads) * p.num_seqs *
                            ((p.head_dim + pb - 1) / pb) < sms) {
    pb = RoundUp4(pb / 2);
  }
  int device = 0, max_smem = 0;
  HS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  HS_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const int64_t budget = static_cast<int64_t>(max_smem) - 2048;  // static shared memory
  const int np = RoundUp4(p.d_state);
  int chunk = kMaxChunk;
  while (ChunkSmemFloats(chunk, pb, np) * static_cast<int64_t>(sizeof(float)) > budget) {
    if (chunk > 32) {
      chunk /= 2;
    } else if (pb > 16) {
      pb = RoundUp4(pb / 2);
    } else if (chunk > 16) {
      chunk /= 2;
    } else {
      return cudaErrorInvalidValue;  // d_state too large for shared memory
    }
  }
  const size_t smem = static_cast<size_t>(ChunkSmemFloats(chunk, pb, np)) * sizeof(float);
  const int num_pb = (p.head_dim + pb - 1) / pb;
  const int64_t per_seq = static_cast<int64_t>(p.num_heads) * num_pb;
  const int z_count = static_cast<int>(
      std::min<int64_t>(p.num_seqs, std::max<int64_t>(1, (sms + per_seq - 1) / per_seq)));
  HS_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
      Mamba2ChunkKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned int>(num_pb), static_cast<unsigned int>(p.num_heads),
                  static_cast<unsigned int>(z_count));
  Mamba2ChunkKernel<T><<<grid, kChunkThreads, smem, stream>>>(p, chunk, pb, z_count);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchMamba2Ssd(const Mamba2SsdParams& p, cudaStream_t stream) {
  if (p.num_heads <= 0 || p.head_dim <= 0 || p.n_groups <= 0 || p.d_state <= 0 ||
      p.num_heads % p.n_groups != 0 || p.num_heads > 65535 || p.num_seqs > 65535) {
    return cudaErrorInvalidValue;
  }
  if (p.num_seqs == 0) return cudaSuccess;
  switch (p.elem) {
    case ElemType::kBF16:
      return LaunchTyped<__nv_bfloat16>(p, stream);
    case ElemType::kF16:
      return LaunchTyped<__half>(p, stream);
    default:
      return LaunchTyped<float>(p, stream);
  }
}

}  // namespace hybridserve::engine::cuda
