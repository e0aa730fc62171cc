// Row copies and elementwise kernels: embedding / row gather, SiLU-and-
// multiply, bias broadcast (the GEMM's bias is fused as cuBLAS's C input) and
// the seeded uniform fill. CPU twins in cpu_backend.cc (Embedding, GatherRows,
// GatedAct, FillUniform).
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CUDA_ELEMENTWISE_KERNELS_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CUDA_ELEMENTWISE_KERNELS_H_

#include <cstdint>

#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_common.h"

namespace hybridserve::engine::cuda {

// out[r, :] = src[index[r], :]. An index outside [0, src_rows) gives a zero
// row (the host validates ids before they reach the device; this only keeps a
// bad id from reading out of bounds).
struct GatherRowsParams {
  const void* src = nullptr;      // [src_rows, h], elem
  const int32_t* index = nullptr;  // [rows], i32
  void* out = nullptr;            // [rows, h], elem
  int64_t src_rows = 0;
  int64_t rows = 0;
  int64_t h = 0;
  ElemType elem = ElemType::kF32;
};
cudaError_t LaunchGatherRows(const GatherRowsParams& p, cudaStream_t stream);

// out[r, j] = silu(gate_up[r, j]) * gate_up[r, inter + j], computed in f32.
// out[r, j] = act(gate_up[r, j]) * gate_up[r, inter + j]; act is an
// engine::Activation value (0 silu, 1 gelu tanh, 2 relu²).
struct GatedActParams {
  const void* gate_up = nullptr;  // [rows, 2 * inter], elem
  void* out = nullptr;            // [rows, inter], elem
  int64_t rows = 0;
  int64_t inter = 0;
  int act = 0;
  ElemType elem = ElemType::kF32;
};
cudaError_t LaunchGatedAct(const GatedActParams& p, cudaStream_t stream);

// out[r, :] = row for every r.
struct BroadcastRowParams {
  const void* row = nullptr;  // [n], elem
  void* out = nullptr;        // [rows, n], elem
  int64_t rows = 0;
  int64_t n = 0;
  ElemType elem = ElemType::kF32;
};
cudaError_t LaunchBroadcastRow(const BroadcastRowParams& p, cudaStream_t stream);

// out[i] = lo + span · FillUniformUnit(seed, i) (f32 multiply, then add; no
// FMA), rounded to elem: the same bits as CpuBackend::FillUniform.
struct FillUniformParams {
  void* out = nullptr;  // [n], elem
  int64_t n = 0;
  uint64_t seed = 0;
  float lo = 0.0f;
  float span = 0.0f;  // hi - lo, computed in f32 by the caller
  ElemType elem = ElemType::kF32;
};
cudaError_t LaunchFillUniform(const FillUniformParams& p, cudaStream_t stream);

}  // namespace hybridserve::engine::cuda

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CUDA_ELEMENTWISE_KERNELS_H_
