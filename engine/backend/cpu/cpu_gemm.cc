#include "engine/backend/cpu/cpu_gemm.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

namespace hybridserve::engine {
namespace {

constexpr int kLanes = 16;

// One tile: y[i * ldy + j] = x[i * ldx + ·] · w[j * ldw + ·] (+ bias[j]) for
// i < MR, j < NR.
using TileFn = void (*)(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t k,
                        const float* bias, float* y, int64_t ldy);

// The lane tree of the header, on 16 stored lanes.
float ReduceLanes(const float* l) {
  float a[8], b[4];
  for (int i = 0; i < 8; ++i) a[i] = l[i] + l[i + 8];
  for (int i = 0; i < 4; ++i) b[i] = a[i] + a[i + 4];
  const float c0 = b[0] + b[2], c1 = b[1] + b[3];
  return c0 + c1;
}

// ---- portable: one element at a time, std::fma per lane --------------------

void TilePortable(const float* x, int64_t, const float* w, int64_t, int64_t k,
                  const float* bias, float* y, int64_t) {
  float acc[kLanes] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const int64_t i = k0 + l;
      const float xv = i < k ? x[i] : 0.0f, wv = i < k ? w[i] : 0.0f;
      acc[l] = std::fma(xv, wv, acc[l]);
    }
  }
  const float sum = ReduceLanes(acc);
  *y = bias != nullptr ? sum + *bias : sum;
}

// ---- AVX2 + FMA: 16 lanes as two 8-float halves -----------------------------

#define HS_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define HS_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))

// Lanes [rem, 8) of each half read as zero.
HS_TARGET_AVX2 inline __m256i HalfMask(int64_t rem) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)), idx);
}

template <int MR, int NR>
HS_TARGET_AVX2 void TileAvx2(const float* x, int64_t ldx, const float* w, int64_t ldw,
                             int64_t k, const float* bias, float* y, int64_t ldy) {
  __m256 lo[MR][NR], hi[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) lo[i][j] = hi[i][j] = _mm256_setzero_ps();
  }
  int64_t k0 = 0;
  for (; k0 + kLanes <= k; k0 += kLanes) {
    __m256 xl[MR], xh[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      xl[i] = _mm256_loadu_ps(x + i * ldx + k0);
      xh[i] = _mm256_loadu_ps(x + i * ldx + k0 + 8);
    }
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const __m256 wl = _mm256_loadu_ps(w + j * ldw + k0);
      const __m256 wh = _mm256_loadu_ps(w + j * ldw + k0 + 8);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        lo[i][j] = _mm256_fmadd_ps(xl[i], wl, lo[i][j]);
        hi[i][j] = _mm256_fmadd_ps(xh[i], wh, hi[i][j]);
      }
    }
  }
  if (k0 < k) {
    const int64_t rem = k - k0;
    const __m256i ml = HalfMask(std::min<int64_t>(rem, 8));
    const __m256i mh = HalfMask(std::max<int64_t>(rem - 8, 0));
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const __m256 wl = _mm256_maskload_ps(w + j * ldw + k0, ml);
      const __m256 wh = _mm256_maskload_ps(w + j * ldw + k0 + 8, mh);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m256 xl = _mm256_maskload_ps(x + i * ldx + k0, ml);
        const __m256 xh = _mm256_maskload_ps(x + i * ldx + k0 + 8, mh);
        lo[i][j] = _mm256_fmadd_ps(xl, wl, lo[i][j]);
        hi[i][j] = _mm256_fmadd_ps(xh, wh, hi[i][j]);
      }
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      float lanes[kLanes];
      _mm256_storeu_ps(lanes, lo[i][j]);
      _mm256_storeu_ps(lanes + 8, hi[i][j]);
      const float sum = ReduceLanes(lanes);
      y[i * ldy + j] = bias != nullptr ? sum + bias[j] : sum;
    }
  }
  // Clean upper register halves before returning to SSE-encoded code (the
  // rest of the engine), which otherwise pays a transition penalty on every
  // instruction; the compiler does not insert this for target() functions.
  _mm256_zeroupper();
}

// ---- AVX-512: one register per 16 lanes -------------------------------------

// The lane tree of 16 accumulators at once, with the same adds as ReduceLanes
// on each: out[4 * (e % 4) + e / 4] is the sum of v[e]'s lanes. (The masked
// shuffle forms avoid GCC 12's uninitialised-undefined-vector warnings.)
template <int kImm>
HS_TARGET_AVX512 inline __m512 Shuffle128(__m512 a, __m512 b) {
  return _mm512_mask_shuffle_f32x4(a, 0xFFFF, a, b, kImm);
}
template <int kImm>
HS_TARGET_AVX512 inline __m512 Shuffle32(__m512 a, __m512 b) {
  return _mm512_mask_shuffle_ps(a, 0xFFFF, a, b, kImm);
}
constexpr int kLo = _MM_SHUFFLE(1, 0, 1, 0), kHi = _MM_SHUFFLE(3, 2, 3, 2);
constexpr int kEven = _MM_SHUFFLE(2, 0, 2, 0), kOdd = _MM_SHUFFLE(3, 1, 3, 1);

HS_TARGET_AVX512 inline void Reduce16(const __m512* v, float* out) {
  // a[i] = l[i] + l[i + 8]: w[p] holds v[2p]'s a then v[2p + 1]'s.
  __m512 w[8];
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) {
    w[p] = _mm512_add_ps(Shuffle128<kLo>(v[2 * p], v[2 * p + 1]),
                         Shuffle128<kHi>(v[2 * p], v[2 * p + 1]));
  }
  // b[i] = a[i] + a[i + 4]: x[q] holds the b of v[4q .. 4q + 3], 4 lanes each.
  __m512 x[4];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    x[q] = _mm512_add_ps(Shuffle128<kEven>(w[2 * q], w[2 * q + 1]),
                         Shuffle128<kOdd>(w[2 * q], w[2 * q + 1]));
  }
  // c0 = b0 + b2, c1 = b1 + b3: in 128-bit chunk c, y0 holds v[c]'s then
  // v[4 + c]'s (c0, c1); y1 those of v[8 + c] and v[12 + c].
  const __m512 y0 = _mm512_add_ps(Shuffle32<kLo>(x[0], x[1]), Shuffle32<kHi>(x[0], x[1]));
  const __m512 y1 = _mm512_add_ps(Shuffle32<kLo>(x[2], x[3]), Shuffle32<kHi>(x[2], x[3]));
  // c0 + c1: chunk c holds the sums of v[c], v[4 + c], v[8 + c], v[12 + c].
  _mm512_storeu_ps(out, _mm512_add_ps(Shuffle32<kEven>(y0, y1), Shuffle32<kOdd>(y0, y1)));
}

template <int MR, int NR>
HS_TARGET_AVX512 void TileAvx512(const float* x, int64_t ldx, const float* w, int64_t ldw,
                                 int64_t k, const float* bias, float* y, int64_t ldy) {
  static_assert(MR * NR <= 16, "Reduce16 takes at most 16 accumulators");
  __m512 acc[16];
#pragma GCC unroll 16
  for (int e = 0; e < 16; ++e) acc[e] = _mm512_setzero_ps();
  int64_t k0 = 0;
  for (; k0 + kLanes <= k; k0 += kLanes) {
    __m512 xv[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) xv[i] = _mm512_loadu_ps(x + i * ldx + k0);
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) {
      const __m512 wv = _mm512_loadu_ps(w + j * ldw + k0);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        acc[i * NR + j] = _mm512_fmadd_ps(xv[i], wv, acc[i * NR + j]);
      }
    }
  }
  if (k0 < k) {
    const __mmask16 m = static_cast<__mmask16>((1u << (k - k0)) - 1);
    __m512 xv[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) xv[i] = _mm512_maskz_loadu_ps(m, x + i * ldx + k0);
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) {
      const __m512 wv = _mm512_maskz_loadu_ps(m, w + j * ldw + k0);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        acc[i * NR + j] = _mm512_fmadd_ps(xv[i], wv, acc[i * NR + j]);
      }
    }
  }
  float sums[16];
  Reduce16(acc, sums);
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) {
      const int e = i * NR + j;
      const float sum = sums[4 * (e % 4) + e / 4];
      y[i * ldy + j] = bias != nullptr ? sum + bias[j] : sum;
    }
  }
  _mm256_zeroupper();  // as in TileAvx2
}

// A path's tiles: `block[(mr - 1) * block_cols + nr - 1]` for groups of
// block_rows rows (mr = block_rows) and their column tails; `row[nr - 1]` for
// single rows left over.
struct TileSet {
  const TileFn* block;
  int block_rows, block_cols;
  const TileFn* row;
  int row_cols;
};

constexpr TileFn kAvx512Block[4] = {TileAvx512<4, 1>, TileAvx512<4, 2>, TileAvx512<4, 3>,
                                    TileAvx512<4, 4>};
constexpr TileFn kAvx512Row[16] = {
    TileAvx512<1, 1>,  TileAvx512<1, 2>,  TileAvx512<1, 3>,  TileAvx512<1, 4>,
    TileAvx512<1, 5>,  TileAvx512<1, 6>,  TileAvx512<1, 7>,  TileAvx512<1, 8>,
    TileAvx512<1, 9>,  TileAvx512<1, 10>, TileAvx512<1, 11>, TileAvx512<1, 12>,
    TileAvx512<1, 13>, TileAvx512<1, 14>, TileAvx512<1, 15>, TileAvx512<1, 16>};
constexpr TileFn kAvx2Block[2] = {TileAvx2<2, 1>, TileAvx2<2, 2>};
constexpr TileFn kAvx2Row[2] = {TileAvx2<1, 1>, TileAvx2<1, 2>};
constexpr TileFn kPortable[1] = {TilePortable};

TileSet Tiles(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return {kAvx512Block, 4, 4, kAvx512Row, 16};
    case CpuIsa::kAvx2:
      return {kAvx2Block, 2, 2, kAvx2Row, 2};
    case CpuIsa::kPortable:
      break;
  }
  return {kPortable, 1, 1, kPortable, 1};
}

// Work split: blocks of columns whose rows of w fit in about this many bytes
// (kept in L2 while a chunk of rows of x streams past), times chunks of rows.
constexpr int64_t kColumnBlockBytes = int64_t{128} << 10;
constexpr int64_t kRowChunk = 64;
// Below this many multiply-adds a call runs on one thread.
constexpr int64_t kParallelMinMacs = int64_t{1} << 18;

}  // namespace

bool CpuIsaSupported(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kPortable:
      return true;
    case CpuIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuIsa::kAvx512:
      return __builtin_cpu_supports("avx512f") && CpuIsaSupported(CpuIsa::kAvx2);
  }
  return false;
}

CpuIsa BestCpuIsa() {
  static const CpuIsa best = [] {
    if (CpuIsaSupported(CpuIsa::kAvx512)) return CpuIsa::kAvx512;
    if (CpuIsaSupported(CpuIsa::kAvx2)) return CpuIsa::kAvx2;
    return CpuIsa::kPortable;
  }();
  return best;
}

std::string_view CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kPortable:
      break;
  }
  return "portable";
}

void GemmF32(const GemmF32Args& a, CpuIsa isa) {
  if (a.t <= 0 || a.n <= 0) return;
  const TileSet tiles = Tiles(isa);
  const int64_t row_bytes = std::max<int64_t>(a.k, 1) * static_cast<int64_t>(sizeof(float));
  const int64_t align = std::max(tiles.block_cols, tiles.row_cols);
  const int64_t block_cols =
      std::max<int64_t>(1, kColumnBlockBytes / (row_bytes * align)) * align;
  const int64_t num_col_blocks = (a.n + block_cols - 1) / block_cols;
  const int64_t num_row_chunks = (a.t + kRowChunk - 1) / kRowChunk;
  const int64_t num_items = num_col_blocks * num_row_chunks;
  const bool parallel = a.t * a.n * std::max<int64_t>(a.k, 1) >= kParallelMinMacs &&
                        num_items > 1 && omp_get_max_threads() > 1;
  // Each output element is computed whole by one tile call, so the split of
  // items among threads does not change any value.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t item = 0; item < num_items; ++item) {
    const int64_t c0 = (item % num_col_blocks) * block_cols;
    const int64_t c1 = std::min(a.n, c0 + block_cols);
    const int64_t r0 = (item / num_col_blocks) * kRowChunk;
    const int64_t r1 = std::min(a.t, r0 + kRowChunk);
    const float* bias = a.bias;
    int64_t r = r0;
    for (; r + tiles.block_rows <= r1; r += tiles.block_rows) {
      for (int64_t c = c0; c < c1; c += tiles.block_cols) {
        const int64_t nr = std::min<int64_t>(tiles.block_cols, c1 - c);
        tiles.block[nr - 1](a.x + r * a.k, a.k, a.w + c * a.k, a.k, a.k,
                            bias != nullptr ? bias + c : nullptr, a.y + r * a.n + c, a.n);
      }
    }
    for (; r < r1; ++r) {
      for (int64_t c = c0; c < c1; c += tiles.row_cols) {
        const int64_t nr = std::min<int64_t>(tiles.row_cols, c1 - c);
        tiles.row[nr - 1](a.x + r * a.k, a.k, a.w + c * a.k, a.k, a.k,
                          bias != nullptr ? bias + c : nullptr, a.y + r * a.n + c, a.n);
      }
    }
  }
}

float DotF32(const float* a, const float* b, int64_t k, CpuIsa isa) {
  float out = 0.0f;
  Tiles(isa).row[0](a, k, b, k, k, nullptr, &out, 1);
  return out;
}

void DotsF32(const float* a, const float* b, int64_t b_stride, int64_t count, int64_t k,
             float* out, CpuIsa isa) {
  const TileSet tiles = Tiles(isa);
  for (int64_t c = 0; c < count; c += tiles.row_cols) {
    const int64_t nr = std::min<int64_t>(tiles.row_cols, count - c);
    tiles.row[nr - 1](a, k, b + c * b_stride, b_stride, k, nullptr, out + c, 1);
  }
}

}  // namespace hybridserve::engine
