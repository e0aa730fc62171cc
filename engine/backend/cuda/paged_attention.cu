#include "engine/backend/cuda/paged_attention.h"

#include <mma.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

namespace hybridserve::engine::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
// Split partials hold at most this many (split, token, head) rows, so the
// scratch bound does not depend on the batch.
constexpr int64_t kMaxPartialRows = 64 * 1024;
constexpr int kMaxSplits = 64;
// A split covers at least this many keys (fewer would cost more in the
// combine than it gains in parallelism).
constexpr int kMinSplitTokens = 256;
constexpr float kLog2e = 1.4426950408889634f;

// Eight consecutive elements of a row, read with 16-byte loads (two for f32).
template <typename T>
struct Vec8;

template <>
struct Vec8<float> {
  float4 a, b;
  __device__ __forceinline__ void Load(const float* p) {
    a = __ldg(reinterpret_cast<const float4*>(p));
    b = __ldg(reinterpret_cast<const float4*>(p) + 1);
  }
  __device__ __forceinline__ void Zero() {
    a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    b = a;
  }
  __device__ __forceinline__ void ToFloats(float* f) const {
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w;
    f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
  }
};

template <>
struct Vec8<__nv_bfloat16> {
  uint4 u;
  __device__ __forceinline__ void Load(const __nv_bfloat16* p) {
    u = __ldg(reinterpret_cast<const uint4*>(p));
  }
  __device__ __forceinline__ void Zero() { u = make_uint4(0u, 0u, 0u, 0u); }
  __device__ __forceinline__ void ToFloats(float* f) const {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 v = __bfloat1622float2(h[i]);
      f[2 * i] = v.x;
      f[2 * i + 1] = v.y;
    }
  }
};

template <>
struct Vec8<__half> {
  uint4 u;
  __device__ __forceinline__ void Load(const __half* p) {
    u = __ldg(reinterpret_cast<const uint4*>(p));
  }
  __device__ __forceinline__ void Zero() { u = make_uint4(0u, 0u, 0u, 0u); }
  __device__ __forceinline__ void ToFloats(float* f) const {
    const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 v = __half22float2(h[i]);
      f[2 * i] = v.x;
      f[2 * i + 1] = v.y;
    }
  }
};

// The running max used as the exponent offset: 0 while nothing is visible
// (m == -inf), so exp2(-inf - offset) is 0 instead of NaN.
__device__ __forceinline__ float SafeOffset(float m) {
  return m == -INFINITY ? 0.0f : m;
}

// One block per (sequence x KV head, tile of kRows query rows, KV split).
// Query row r of a (sequence, KV head) is new token r / group, query head
// kv_head * group + r % group. Lanes are grouped kDPad / 8 to a K/V row, each
// lane holding 8 of its dims; a warp reads 32 / (kDPad / 8) rows at once and
// each lane keeps, for all kRows query rows, a running max m (log2 domain),
// sum l and accumulator over its 8 dims. Per iteration a lane loads kU K and
// V rows before using any, scores them against all query rows (a dot product
// reduced over the row's lanes), and rescales its accumulators once for the
// kU keys. At the end the warp's row groups and then the warps are merged.
// Without a split (part_acc == nullptr) the block writes out; with one it
// writes the unnormalized accumulator and (m, l) to the partials.
template <typename T, int kDPad, int kRows, int kU>
__global__ void __launch_bounds__(kThreads)
    PagedAttentionKernel(const PagedAttentionParams p, int split_tokens, int max_new_tokens,
                         float* __restrict__ part_acc, float* __restrict__ part_ml) {
  constexpr int kLanesPerRow = kDPad / 8;
  constexpr int kGroups = 32 / kLanesPerRow;
  constexpr int kSlots = kWarps * kGroups;  // K/V rows the block reads at once
  __shared__ float s_acc[kWarps][kRows][kDPad];
  __shared__ float s_m[kWarps][kRows];
  __shared__ float s_l[kWarps][kRows];

  const int kv_head = static_cast<int>(blockIdx.x % p.num_kv_heads);
  const int64_t seq = blockIdx.x / p.num_kv_heads;
  const int group = p.num_heads / p.num_kv_heads;
  const int q_begin = p.query_start[seq];
  const int n_new = p.query_start[seq + 1] - q_begin;
  if (n_new > max_new_tokens) return;  // the tensor-core kernel's sequence
  const int total_rows = n_new * group;
  const int row0 = static_cast<int>(blockIdx.y) * kRows;
  if (row0 >= total_rows) return;  // uniform over the block
  const int first_pos = p.context_len[seq] - n_new;  // position of new token 0
  const int last_row = min(row0 + kRows, total_rows) - 1;
  const int key_begin = static_cast<int>(blockIdx.z) * split_tokens;
  const int key_end = min(first_pos + last_row / group + 1, key_begin + split_tokens);

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int slot = warp * kGroups + lane / kLanesPerRow;
  const int d0 = (lane % kLanesPerRow) * 8;
  const bool dims_active = d0 < p.head_dim;
  const int head_dim = p.head_dim;

  const T* q = static_cast<const T*>(p.q);
  float qf[kRows][8];
  int pos[kRows];
  const float qscale = p.scale * kLog2e;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = row0 + r;
    const int tok = row / group;
    const int head = kv_head * group + row % group;
    pos[r] = row < total_rows ? first_pos + tok : -1;  // -1: sees nothing
    Vec8<T> v;
    if (row < total_rows && dims_active) {
      v.Load(q + ((static_cast<int64_t>(q_begin) + tok) * p.num_heads + head) * head_dim + d0);
    } else {
      v.Zero();
    }
    v.ToFloats(qf[r]);
#pragma unroll
    for (int i = 0; i < 8; ++i) qf[r][i] *= qscale;
  }

  float m[kRows], l[kRows], acc[kRows][8];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[r][i] = 0.0f;
  }

  const T* k_cache = static_cast<const T*>(p.k_cache);
  const T* v_cache = static_cast<const T*>(p.v_cache);
  const int64_t kv_row = static_cast<int64_t>(p.num_kv_heads) * head_dim;
  const int64_t head_off = static_cast<int64_t>(kv_head) * head_dim + d0;
  const int32_t* table = p.block_table + seq * p.max_blocks_per_seq;
  const int bt = p.block_tokens;

  for (int base = key_begin; base < key_end; base += kSlots * kU) {
    Vec8<T> kv[kU], vv[kU];
    int key[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      key[u] = base + u * kSlots + slot;
      if (key[u] < key_end && dims_active) {
        const int64_t block = table[key[u] / bt];
        const int64_t off = (block * bt + key[u] % bt) * kv_row + head_off;
        kv[u].Load(k_cache + off);
        vv[u].Load(v_cache + off);
      } else {
        kv[u].Zero();
        vv[u].Zero();
      }
    }
    float s[kU][kRows];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      float kf[8];
      kv[u].ToFloats(kf);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) dot = fmaf(qf[r][i], kf[i], dot);
        s[u][r] = dot;
      }
    }
    // Sum the partial dots over the lanes of each K row (all lanes take part).
#pragma unroll
    for (int off = kLanesPerRow / 2; off > 0; off /= 2) {
#pragma unroll
      for (int u = 0; u < kU; ++u) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          s[u][r] += __shfl_xor_sync(0xffffffffu, s[u][r], off);
        }
      }
    }
    float offset[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        if (key[u] >= key_end || key[u] > pos[r]) s[u][r] = -INFINITY;
        mx = fmaxf(mx, s[u][r]);
      }
      const float m_new = fmaxf(m[r], mx);
      offset[r] = SafeOffset(m_new);
      const float corr = exp2f(m[r] - offset[r]);
      l[r] *= corr;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[r][i] *= corr;
      m[r] = m_new;
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      float vf[8];
      vv[u].ToFloats(vf);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const float pr = exp2f(s[u][r] - offset[r]);
        l[r] += pr;
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[r][i] = fmaf(pr, vf[i], acc[r][i]);
      }
    }
  }

  // Merge the row groups of the warp (butterfly: every group ends equal).
#pragma unroll
  for (int off = kLanesPerRow; off < 32; off *= 2) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float m_o = __shfl_xor_sync(0xffffffffu, m[r], off);
      const float l_o = __shfl_xor_sync(0xffffffffu, l[r], off);
      const float m_new = fmaxf(m[r], m_o);
      const float o = SafeOffset(m_new);
      const float c_self = exp2f(m[r] - o);
      const float c_other = exp2f(m_o - o);
      l[r] = l[r] * c_self + l_o * c_other;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float a_o = __shfl_xor_sync(0xffffffffu, acc[r][i], off);
        acc[r][i] = acc[r][i] * c_self + a_o * c_other;
      }
      m[r] = m_new;
    }
  }
  if (lane < kLanesPerRow) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
#pragma unroll
      for (int i = 0; i < 8; ++i) s_acc[warp][r][d0 + i] = acc[r][i];
      if (lane == 0) {
        s_m[warp][r] = m[r];
        s_l[warp][r] = l[r];
      }
    }
  }
  __syncthreads();

  // Merge the warps; one thread per (row, dim).
  const int split = static_cast<int>(blockIdx.z);
  for (int idx = threadIdx.x; idx < kRows * kDPad; idx += kThreads) {
    const int r = idx / kDPad;
    const int d = idx % kDPad;
    const int row = row0 + r;
    if (row >= total_rows || d >= head_dim) continue;
    float m_max = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m_max = fmaxf(m_max, s_m[w][r]);
    const float o = SafeOffset(m_max);
    float sum = 0.0f, a = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float c = exp2f(s_m[w][r] - o);
      sum += s_l[w][r] * c;
      a += s_acc[w][r][d] * c;
    }
    const int64_t tok = q_begin + row / group;
    const int head = kv_head * group + row % group;
    const int64_t out_row = tok * p.num_heads + head;  // (token, head)
    if (part_acc == nullptr) {
      // Split 0 always holds key 0, which every row sees: sum > 0.
      static_cast<T*>(p.out)[out_row * head_dim + d] = FromFloat<T>(a / sum);
    } else {
      const int64_t part_row = static_cast<int64_t>(split) * p.num_tokens * p.num_heads + out_row;
      part_acc[part_row * head_dim + d] = a;
      if (d == 0) {
        part_ml[2 * part_row] = m_max;
        part_ml[2 * part_row + 1] = sum;
      }
    }
  }
}

// One warp per (token, head) row: out = Σ_s c_s acc_s / Σ_s c_s l_s with
// c_s = exp2(m_s - max m).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    CombineSplitsKernel(const float* __restrict__ part_acc,
                        const float* __restrict__ part_ml, int num_splits,
                        int64_t rows, int head_dim, T* __restrict__ out) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float m_max = -INFINITY;
  for (int s = 0; s < num_splits; ++s) m_max = fmaxf(m_max, part_ml[2 * (s * rows + row)]);
  const float o = SafeOffset(m_max);
  float sum = 0.0f;
  for (int s = 0; s < num_splits; ++s) {
    const int64_t pr = s * rows + row;
    sum += part_ml[2 * pr + 1] * exp2f(part_ml[2 * pr] - o);
  }
  const float inv = 1.0f / sum;
  for (int d = lane; d < head_dim; d += 32) {
    float a = 0.0f;
    for (int s = 0; s < num_splits; ++s) {
      const int64_t pr = s * rows + row;
      a += part_acc[pr * head_dim + d] * exp2f(part_ml[2 * pr] - o);
    }
    out[row * head_dim + d] = FromFloat<T>(a * inv);
  }
}

// ---------------------------------------------------------------------------
// Tensor-core kernel for sequences with many new tokens (bf16 / f16, head_dim
// 64 or 128). One block per (sequence x KV head, tile of kTcRows query rows);
// warp w owns rows [16w, 16w + 16) of the tile. Per tile of kTcKeys keys the
// block stages K and V in shared memory (16-byte loads through the block
// table); each warp computes S = Q·Kᵀ with WMMA (f32 accumulators), runs the
// online softmax on S in shared memory (two lanes per row), writes P in the
// element type and rescales its f32 output rows, then O += P·V with WMMA,
// O living in shared memory between tiles.
namespace wmma = nvcuda::wmma;
constexpr int kTcRows = 64;
constexpr int kTcKeys = 64;
// Sequences with more new tokens than this go to the tensor-core kernel.
constexpr int kTcMinNewTokens = 16;

template <int kD>
struct TcLayout {
  static constexpr int kLdQ = kD + 8;       // sQ, sK, sV rows (elements)
  static constexpr int kLdS = kTcKeys + 4;  // sS rows (f32)
  static constexpr int kLdP = kTcKeys + 8;  // sP rows (elements)
  static constexpr int kLdO = kD + 4;       // sO rows (f32)
  // Byte offsets; every WMMA tile pointer stays 32-byte aligned.
  static constexpr size_t kQ = 0;                                    // [kTcRows][kLdQ]
  static constexpr size_t kK = kQ + size_t{kTcRows} * kLdQ * 2;     // [kTcKeys][kLdQ]
  static constexpr size_t kV = kK + size_t{kTcKeys} * kLdQ * 2;     // [kTcKeys][kLdQ]
  static constexpr size_t kS = kV + size_t{kTcKeys} * kLdQ * 2;     // [warps][16][kLdS]
  static constexpr size_t kP = kS + size_t{kWarps} * 16 * kLdS * 4;  // [warps][16][kLdP]
  static constexpr size_t kO = kP + size_t{kWarps} * 16 * kLdP * 2;  // [warps][16][kLdO]
  static constexpr size_t kBytes = kO + size_t{kWarps} * 16 * kLdO * 4;
};

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads, 1)
    PagedAttentionTcKernel(const PagedAttentionParams p) {
  using L = TcLayout<kD>;
  constexpr int kVecs = kD / 8;  // 16-byte vectors per row
  extern __shared__ __align__(128) float4 tc_smem4[];
  char* smem = reinterpret_cast<char*>(tc_smem4);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  T* s_q = reinterpret_cast<T*>(smem + L::kQ);
  T* s_k = reinterpret_cast<T*>(smem + L::kK);
  T* s_v = reinterpret_cast<T*>(smem + L::kV);
  float* s_s = reinterpret_cast<float*>(smem + L::kS) + warp * 16 * L::kLdS;
  T* s_p = reinterpret_cast<T*>(smem + L::kP) + warp * 16 * L::kLdP;
  float* s_o = reinterpret_cast<float*>(smem + L::kO) + warp * 16 * L::kLdO;

  const int kv_head = static_cast<int>(blockIdx.x % p.num_kv_heads);
  const int64_t seq = blockIdx.x / p.num_kv_heads;
  const int group = p.num_heads / p.num_kv_heads;
  const int q_begin = p.query_start[seq];
  const int n_new = p.query_start[seq + 1] - q_begin;
  if (n_new <= kTcMinNewTokens) return;  // the scalar kernel's sequence
  const int total_rows = n_new * group;
  const int row0 = static_cast<int>(blockIdx.y) * kTcRows;
  if (row0 >= total_rows) return;  // uniform over the block
  const int first_pos = p.context_len[seq] - n_new;
  const int key_end = first_pos + (min(row0 + kTcRows, total_rows) - 1) / group + 1;

  const T* q = static_cast<const T*>(p.q);
  for (int idx = threadIdx.x; idx < kTcRows * kVecs; idx += kThreads) {
    const int r = idx / kVecs, c = (idx % kVecs) * 8;
    const int row = row0 + r;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (row < total_rows) {
      const int64_t qrow = (static_cast<int64_t>(q_begin) + row / group) * p.num_heads +
                           kv_head * group + row % group;
      v = __ldg(reinterpret_cast<const uint4*>(q + qrow * kD + c));
    }
    *reinterpret_cast<uint4*>(s_q + r * L::kLdQ + c) = v;
  }
  for (int i = lane; i < 16 * L::kLdO; i += 32) s_o[i] = 0.0f;
  // Lanes 2r and 2r + 1 own row r of the warp's 16, keys / dims split in halves.
  const int r_local = lane / 2, half = lane % 2;
  const int my_row = row0 + warp * 16 + r_local;
  const int my_pos = my_row < total_rows ? first_pos + my_row / group : -1;
  float m = -INFINITY, l = 0.0f;
  const float score_scale = p.scale * kLog2e;
  __syncthreads();

  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qf[kD / 16];
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    wmma::load_matrix_sync(qf[kk], s_q + warp * 16 * L::kLdQ + kk * 16, L::kLdQ);
  }

  const T* k_cache = static_cast<const T*>(p.k_cache);
  const T* v_cache = static_cast<const T*>(p.v_cache);
  const int64_t kv_row = static_cast<int64_t>(p.num_kv_heads) * kD;
  const int32_t* table = p.block_table + seq * p.max_blocks_per_seq;
  const int bt = p.block_tokens;
  for (int kb = 0; kb < key_end; kb += kTcKeys) {  // uniform over the block
    __syncthreads();  // the previous K/V tile is consumed
    for (int idx = threadIdx.x; idx < kTcKeys * kVecs; idx += kThreads) {
      const int j = idx / kVecs, c = (idx % kVecs) * 8;
      const int key = kb + j;
      uint4 kv = make_uint4(0u, 0u, 0u, 0u), vv = kv;
      if (key < key_end) {
        const int64_t block = table[key / bt];
        const int64_t off = (block * bt + key % bt) * kv_row + static_cast<int64_t>(kv_head) * kD + c;
        kv = __ldg(reinterpret_cast<const uint4*>(k_cache + off));
        vv = __ldg(reinterpret_cast<const uint4*>(v_cache + off));
      }
      *reinterpret_cast<uint4*>(s_k + j * L::kLdQ + c) = kv;
      *reinterpret_cast<uint4*>(s_v + j * L::kLdQ + c) = vv;
    }
    __syncthreads();

    // S = Q·Kᵀ for the warp's 16 rows.
#pragma unroll
    for (int nj = 0; nj < kTcKeys / 16; ++nj) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kf;
        wmma::load_matrix_sync(kf, s_k + nj * 16 * L::kLdQ + kk * 16, L::kLdQ);
        wmma::mma_sync(acc, qf[kk], kf, acc);
      }
      wmma::store_matrix_sync(s_s + nj * 16, acc, L::kLdS, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax of the row's half (32 keys); P in the element type.
    const float* srow = s_s + r_local * L::kLdS + half * 32;
    float sv[32];
    float mx = -INFINITY;
#pragma unroll
    for (int c = 0; c < 32; ++c) {
      const int key = kb + half * 32 + c;
      sv[c] = (key > my_pos || key >= key_end) ? -INFINITY : srow[c] * score_scale;
      mx = fmaxf(mx, sv[c]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_new = fmaxf(m, mx);
    const float offset = SafeOffset(m_new);
    const float corr = exp2f(m - offset);
    T* prow = s_p + r_local * L::kLdP + half * 32;
    float psum = 0.0f;
#pragma unroll
    for (int c = 0; c < 32; ++c) {
      const float pr = exp2f(sv[c] - offset);
      psum += pr;
      prow[c] = FromFloat<T>(pr);
    }
    psum += __shfl_xor_sync(0xffffffffu, psum, 1);
    l = l * corr + psum;
    m = m_new;
    float* orow = s_o + r_local * L::kLdO + half * (kD / 2);
#pragma unroll 8
    for (int c = 0; c < kD / 2; ++c) orow[c] *= corr;
    __syncwarp();

    // O += P·V.
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pf[kTcKeys / 16];
#pragma unroll
    for (int kk = 0; kk < kTcKeys / 16; ++kk) {
      wmma::load_matrix_sync(pf[kk], s_p + kk * 16, L::kLdP);
    }
#pragma unroll
    for (int dj = 0; dj < kD / 16; ++dj) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, s_o + dj * 16, L::kLdO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kTcKeys / 16; ++kk) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vf;
        wmma::load_matrix_sync(vf, s_v + kk * 16 * L::kLdQ + dj * 16, L::kLdQ);
        wmma::mma_sync(acc, pf[kk], vf, acc);
      }
      wmma::store_matrix_sync(s_o + dj * 16, acc, L::kLdO, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (my_row < total_rows) {
    // Every valid row sees key 0: l > 0.
    const int64_t qrow = (static_cast<int64_t>(q_begin) + my_row / group) * p.num_heads +
                         kv_head * group + my_row % group;
    T* o = static_cast<T*>(p.out) + qrow * kD + half * (kD / 2);
    const float* orow = s_o + r_local * L::kLdO + half * (kD / 2);
    const float inv = 1.0f / l;
    for (int c = 0; c < kD / 2; ++c) o[c] = FromFloat<T>(orow[c] * inv);
  }
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The scalar kernel for sequences with at most `max_new_tokens` new tokens;
// its grid covers `query_len` (<= max_query_len) new tokens per sequence.
template <typename T, int kDPad, int kRows>
cudaError_t LaunchScalar(const PagedAttentionParams& p, int64_t query_len, int max_new_tokens,
                         cudaStream_t stream) {
  constexpr int kU = kRows <= 4 ? 4 : 2;
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t tiles = CeilDiv(query_len * group, kRows);
  const int64_t seq_heads = p.num_seqs * p.num_kv_heads;
  if (tiles > 65535 || seq_heads > 0x7fffffff) return cudaErrorInvalidValue;

  // Split the context when the grid alone would not fill the device.
  const int64_t base_blocks = seq_heads * tiles;
  const int64_t target_blocks = 16 * static_cast<int64_t>(std::max(p.num_sms, 1));
  int64_t num_splits = 1;
  if (base_blocks < target_blocks && p.max_context_len > kMinSplitTokens) {
    num_splits = std::min({CeilDiv(target_blocks, base_blocks),
                           CeilDiv(p.max_context_len, kMinSplitTokens),
                           kMaxPartialRows / (p.num_tokens * p.num_heads),
                           static_cast<int64_t>(kMaxSplits)});
    num_splits = std::max<int64_t>(num_splits, 1);
  }
  int64_t split_tokens = CeilDiv(CeilDiv(p.max_context_len, num_splits), 16) * 16;
  split_tokens = std::max<int64_t>(split_tokens, 16);
  num_splits = std::max<int64_t>(CeilDiv(p.max_context_len, split_tokens), 1);

  float* part_acc = nullptr;
  float* part_ml = nullptr;
  if (num_splits > 1) {
    part_acc = static_cast<float*>(p.scratch);
    part_ml = part_acc + num_splits * p.num_tokens * p.num_heads * p.head_dim;
  }
  const dim3 grid(static_cast<unsigned int>(seq_heads), static_cast<unsigned int>(tiles),
                  static_cast<unsigned int>(num_splits));
  PagedAttentionKernel<T, kDPad, kRows, kU><<<grid, kThreads, 0, stream>>>(
      p, static_cast<int>(split_tokens), max_new_tokens, part_acc, part_ml);
  HS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  if (num_splits > 1) {
    // Rows of sequences the scalar kernel skipped are combined too, from
    // partials it did not write; the tensor-core kernel overwrites them, as it
    // runs after this on the same stream.
    const int64_t rows = p.num_tokens * p.num_heads;
    CombineSplitsKernel<T><<<NumBlocks(rows, kWarps), kThreads, 0, stream>>>(
        part_acc, part_ml, static_cast<int>(num_splits), rows, p.head_dim,
        static_cast<T*>(p.out));
    HS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  return cudaSuccess;
}

template <typename T, int kDPad>
cudaError_t LaunchScalarForRows(const PagedAttentionParams& p, int64_t query_len,
                                int max_new_tokens, cudaStream_t stream) {
  const int64_t rows = query_len * (p.num_heads / p.num_kv_heads);
  if (rows <= 1) return LaunchScalar<T, kDPad, 1>(p, query_len, max_new_tokens, stream);
  if (rows <= 2) return LaunchScalar<T, kDPad, 2>(p, query_len, max_new_tokens, stream);
  if (rows <= 4) return LaunchScalar<T, kDPad, 4>(p, query_len, max_new_tokens, stream);
  return LaunchScalar<T, kDPad, 8>(p, query_len, max_new_tokens, stream);
}

template <typename T>
cudaError_t LaunchScalarForHeadDim(const PagedAttentionParams& p, int64_t query_len,
                                   int max_new_tokens, cudaStream_t stream) {
  if (p.head_dim <= 64) return LaunchScalarForRows<T, 64>(p, query_len, max_new_tokens, stream);
  if (p.head_dim <= 128) return LaunchScalarForRows<T, 128>(p, query_len, max_new_tokens, stream);
  return LaunchScalarForRows<T, 256>(p, query_len, max_new_tokens, stream);
}

// Whether the device can give the tensor-core kernel its shared memory.
cudaError_t TcFits(size_t bytes, bool* fits) {
  int device = 0, max_smem = 0;
  HS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  HS_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  *fits = bytes <= static_cast<size_t>(max_smem);
  return cudaSuccess;
}

template <typename T, int kD>
cudaError_t LaunchTensorCore(const PagedAttentionParams& p, cudaStream_t stream) {
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t tiles = CeilDiv(p.max_query_len * group, kTcRows);
  const int64_t seq_heads = p.num_seqs * p.num_kv_heads;
  if (tiles > 65535 || seq_heads > 0x7fffffff) return cudaErrorInvalidValue;
  constexpr size_t kBytes = TcLayout<kD>::kBytes;
  HS_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(PagedAttentionTcKernel<T, kD>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(kBytes)));
  const dim3 grid(static_cast<unsigned int>(seq_heads), static_cast<unsigned int>(tiles));
  PagedAttentionTcKernel<T, kD><<<grid, kThreads, kBytes, stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t LaunchForHeadDim(const PagedAttentionParams& p, cudaStream_t stream) {
  if constexpr (!std::is_same_v<T, float>) {
    if ((p.head_dim == 64 || p.head_dim == 128) && p.max_query_len > kTcMinNewTokens) {
      bool fits = false;
      HS_CUDA_RETURN_IF_ERROR(TcFits(p.head_dim == 64 ? TcLayout<64>::kBytes
                                                      : TcLayout<128>::kBytes, &fits));
      if (fits) {
        // Short sequences (decode) first, on the scalar kernel; then the
        // long ones on tensor cores.
        HS_CUDA_RETURN_IF_ERROR(
            LaunchScalarForHeadDim<T>(p, kTcMinNewTokens, kTcMinNewTokens, stream));
        return p.head_dim == 64 ? LaunchTensorCore<T, 64>(p, stream)
                                : LaunchTensorCore<T, 128>(p, stream);
      }
    }
  }
  return LaunchScalarForHeadDim<T>(p, p.max_query_len, INT_MAX, stream);
}

}  // namespace

bool PagedAttentionSupportsHeadDim(int head_dim) {
  return head_dim >= 8 && head_dim <= 256 && head_dim % 8 == 0;
}

size_t PagedAttentionScratchBytes(int head_dim) {
  return static_cast<size_t>(kMaxPartialRows) * (head_dim + 2) * sizeof(float);
}

cudaError_t LaunchPagedAttention(const PagedAttentionParams& p, cudaStream_t stream) {
  if (!PagedAttentionSupportsHeadDim(p.head_dim) || p.num_kv_heads <= 0 ||
      p.num_heads % p.num_kv_heads != 0 || p.block_tokens <= 0) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0 || p.num_seqs == 0 || p.max_query_len == 0) return cudaSuccess;
  switch (p.elem) {
    case ElemType::kBF16:
      return LaunchForHeadDim<__nv_bfloat16>(p, stream);
    case ElemType::kF16:
      return LaunchForHeadDim<__half>(p, stream);
    default:
      return LaunchForHeadDim<float>(p, stream);
  }
}

}  // namespace hybridserve::engine::cuda
