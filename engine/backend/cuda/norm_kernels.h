// Normalisation kernels: RMSNorm (optionally fused with the residual add) and
// the grouped gated RMSNorm of Mamba-2. CPU twins: CpuBackend::RmsNorm,
// AddRmsNorm (cpu_backend.cc) and GatedRmsNorm (cpu_ssm.cc). One thread block
// per row (per row and group for the gated norm), so a row's sums never
// depend on the batch. Sums of squares in f32; outputs rounded once to the
// element type.
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CUDA_NORM_KERNELS_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CUDA_NORM_KERNELS_H_

#include <cstdint>

#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_common.h"

namespace hybridserve::engine::cuda {

struct RmsNormParams {
  const void* x = nullptr;  // [rows, h], elem
  // [rows, h], elem, or null. When set: residual += x (rounded to elem and
  // stored), and the norm is taken of the stored residual.
  void* residual = nullptr;
  const void* w = nullptr;  // [h], elem
  void* out = nullptr;      // [rows, h], elem; may alias x (not residual)
  int64_t rows = 0;
  int64_t h = 0;
  float eps = 0.0f;
  ElemType elem = ElemType::kF32;
};
cudaError_t LaunchRmsNorm(const RmsNormParams& p, cudaStream_t stream);

struct GatedRmsNormParams {
  const void* x = nullptr;  // [rows, d], elem
  const void* z = nullptr;  // [rows, d], elem
  const void* w = nullptr;  // [d], elem
  void* out = nullptr;      // [rows, d], elem; may alias x
  int64_t rows = 0;
  int64_t d = 0;
  int64_t group_size = 0;  // divides d
  float eps = 0.0f;
  ElemType elem = ElemType::kF32;
};
cudaError_t LaunchGatedRmsNorm(const GatedRmsNormParams& p, cudaStream_t stream);

}  // namespace hybridserve::engine::cuda

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CUDA_NORM_KERNELS_H_
