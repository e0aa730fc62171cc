// Emulated nvcuda::wmma (16x16x16): every lane keeps the whole tile; stores
// are split among the lanes (lane l writes elements l*8 .. l*8+7), so a
// missing __syncwarp between a store and another lane's read shows up.
#pragma once
#include "emu_cuda.h"
namespace nvcuda { namespace wmma {
struct row_major {}; struct col_major {};
struct matrix_a {}; struct matrix_b {}; struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment { float v[256]; };
inline float EmuF(float x) { return x; }
inline float EmuF(__nv_bfloat16 x) { return __bfloat162float(x); }
inline float EmuF(__half x) { return __half2float(x); }
template <typename Use, typename T, typename Layout>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, float x) { for (float& e : f.v) e = x; }
inline void CheckAlign(const void* p) { if (reinterpret_cast<uintptr_t>(p) % 32) { fprintf(stderr, "EMU: wmma pointer not 32-byte aligned\n"); abort(); } }
// matrix_a [m][k], matrix_b [k][n]
template <typename T>
void load_matrix_sync(fragment<matrix_a, 16, 16, 16, T, row_major>& f, const T* p, unsigned ldm) {
  CheckAlign(p); for (int r = 0; r < 16; ++r) for (int c = 0; c < 16; ++c) f.v[r * 16 + c] = EmuF(p[r * ldm + c]); }
template <typename T>
void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, row_major>& f, const T* p, unsigned ldm) {
  CheckAlign(p); for (int k = 0; k < 16; ++k) for (int n = 0; n < 16; ++n) f.v[k * 16 + n] = EmuF(p[k * ldm + n]); }
template <typename T>
void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, col_major>& f, const T* p, unsigned ldm) {
  CheckAlign(p); for (int k = 0; k < 16; ++k) for (int n = 0; n < 16; ++n) f.v[k * 16 + n] = EmuF(p[n * ldm + k]); }
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm, layout_t l) {
  CheckAlign(p); for (int r = 0; r < 16; ++r) for (int c = 0; c < 16; ++c) f.v[r * 16 + c] = l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]; }
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t l) {
  CheckAlign(p);
  const int lane = emu::cur->linear % 32;
  for (int i = lane * 8; i < lane * 8 + 8; ++i) { int r = i / 16, c = i % 16; if (l == mem_row_major) p[r * ldm + c] = f.v[i]; else p[c * ldm + r] = f.v[i]; }
}
template <typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  float out[256];
  for (int m = 0; m < 16; ++m) for (int n = 0; n < 16; ++n) { float s = c.v[m * 16 + n]; for (int k = 0; k < 16; ++k) s += a.v[m * 16 + k] * b.v[k * 16 + n]; out[m * 16 + n] = s; }
  memcpy(d.v, out, sizeof(out));
}
}}  // namespace nvcuda::wmma
