// The CUDA backend's entry points in a build without it (HS_CUDA off: no nvcc,
// or a sanitizer / fuzz build). The binary still runs on the CPU backend.
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/backend/cuda/cuda_backend.h"

namespace hybridserve::engine {
namespace {

constexpr char kNoCuda[] = "this build has no CUDA backend (built without nvcc)";

}  // namespace

bool CudaDeviceAvailable(std::string* why) {
  if (why != nullptr) *why = kNoCuda;
  return false;
}

absl::StatusOr<CudaDeviceInfo> QueryCudaDevice(int device) {
  return absl::FailedPreconditionError(
      absl::StrCat("cannot query CUDA device ", device, ": ", kNoCuda));
}

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(
    const CudaBackendOptions& options) {
  return absl::FailedPreconditionError(absl::StrCat("--device cuda: ", kNoCuda));
}

void FreezeCudaScratch(Backend* backend) {}

}  // namespace hybridserve::engine
