// The CUDA backend: every op of backend.h on one NVIDIA GPU, on one stream.
// GEMMs go through cuBLAS (bf16 / f16 inputs, f32 accumulation); the other ops
// are kernels in this folder, one .cu per family, each with its CPU twin in
// backend/cpu (tests/gpu compares them). SSM state pools are f32 whatever the
// act dtype is.
//
// Memory: the engine allocates one buffer per pool (weights, kv_cache,
// ssm_state, workspace) through Allocate(); the only other device memory is the
// backend's own scratch (split-K partials of attention, SSD chunk states), which
// is sized by the warm-up step at the largest batch and never grows after
// FreezeScratch(). No managed memory.
//
// Thread-compatible; owned by the engine loop (which owns the stream).
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CUDA_CUDA_BACKEND_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CUDA_CUDA_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"

namespace hybridserve::engine {

// Whether this build has the CUDA backend (HS_HAVE_CUDA) and a usable GPU is
// present (driver loaded, device count > 0). On false, *why says which.
bool CudaDeviceAvailable(std::string* why);

struct CudaDeviceInfo {
  std::string name;          // e.g. "NVIDIA H200"
  int compute_capability = 0;  // 90 for sm_90
  uint64_t total_bytes = 0;  // device memory
  uint64_t free_bytes = 0;   // free when queried
};
absl::StatusOr<CudaDeviceInfo> QueryCudaDevice(int device);

struct CudaBackendOptions {
  int device = 0;
  DType act_dtype = DType::kBF16;  // kBF16 (default on GPU), kF16 or kF32 (parity runs)
};

// Creates the backend: selects the device, creates its stream and cuBLAS
// handle. FailedPrecondition (with the reason) when the build has no CUDA or no
// GPU is usable; InvalidArgument for an unsupported act dtype.
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const CudaBackendOptions& options);

// After the warm-up step at the largest batch: the backend's op scratch may
// no longer grow (a larger request is an error, never a cudaMalloc in the
// step loop). A no-op for other backends and in builds without CUDA.
void FreezeCudaScratch(Backend* backend);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CUDA_CUDA_BACKEND_H_
