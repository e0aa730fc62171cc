// Places a checkpoint's tensors into one device allocation ("weights" pool):
// plan every tensor first (name, shape, where it goes), then allocate once, then
// copy. Rows of several checkpoint tensors may be concatenated into one device
// tensor (fused projections).
// Thread-compatible.
#ifndef HYBRIDSERVE_ENGINE_MODEL_WEIGHT_LOADER_H_
#define HYBRIDSERVE_ENGINE_MODEL_WEIGHT_LOADER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"

namespace hybridserve::engine {

// Random weights (ModelLoadOptions::random_weights_seed): a WeightLoader given
// a seed does not read the checkpoint (which may hold no tensors) but fills
// every planned tensor on the device with Backend::FillUniform, seeded by the
// seed and the tensor's name:
//   * norm weights and D: 1; biases: 0;
//   * matrices (rank >= 2): uniform in ±1/sqrt(fan-in), fan-in = the product
//     of the dims after the first (conv1d weights: d_conv);
//   * Mamba A_log: log A with log A uniform in [0, log 16] (Mamba-2, per head)
//     or [0, log d_state] (Mamba-1);
//   * dt_bias / dt_proj.bias: uniform between softplus⁻¹(0.001) and
//     softplus⁻¹(0.1) (the dt range transformers initialises Mamba with).
// Values are drawn in the backend's act dtype (the weight precision rounding
// of Load does not apply).
class WeightLoader {
 public:
  // Reads `checkpoint`, or fills seeded random values when `random_seed` is
  // set (see above).
  WeightLoader(const Checkpoint* checkpoint, Backend* backend, DType weight_precision,
               std::optional<uint64_t> random_seed = std::nullopt);

  // Plans a device tensor of `shape` made of the checkpoint tensors `parts`
  // stacked along the first dimension (each part's shape is `shape` with its own
  // first dimension, given in `part_rows`). *out is filled in by Load().
  void Add(std::vector<std::string> parts, std::vector<int64_t> part_rows,
           std::vector<int64_t> shape, Tensor* out);
  // Shorthand for a single tensor.
  void Add(std::string name, std::vector<int64_t> shape, Tensor* out);

  // Allocates the pool and copies every planned tensor, converting to the
  // backend's act dtype after rounding to the weight precision (random
  // weights: fills them). Errors name the file and tensor. On error, no
  // Tensor* is filled.
  absl::Status Load(const std::function<void(const std::string&)>& progress);

  uint64_t total_bytes() const { return total_bytes_; }
  DeviceBuffer TakeBuffer() { return std::move(buffer_); }

 private:
  struct Planned {
    std::vector<std::string> parts;
    std::vector<int64_t> part_rows;
    std::vector<int64_t> shape;
    Tensor* out;
    uint64_t offset;
  };
  absl::Status FillRandom(const Planned& p);

  const Checkpoint* checkpoint_;
  Backend* backend_;
  DType precision_;
  std::optional<uint64_t> random_seed_;
  std::vector<Planned> planned_;
  uint64_t total_bytes_ = 0;
  DeviceBuffer buffer_;
};

// Rows [first, first + count) of a loaded tensor, or an empty tensor when `t`
// is empty (an optional bias the checkpoint does not carry).
inline Tensor RowsOrEmpty(const Tensor& t, int64_t first, int64_t count) {
  return t.empty() ? Tensor() : t.Rows(first, count);
}

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_WEIGHT_LOADER_H_
