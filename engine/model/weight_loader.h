// Places a checkpoint's tensors into one device allocation ("weights" pool):
// plan every tensor first (name, shape, where it goes), then allocate once, then
// copy. Rows of several checkpoint tensors may be concatenated into one device
// tensor (fused projections).
// Thread-compatible.
#ifndef HYBRIDSERVE_ENGINE_MODEL_WEIGHT_LOADER_H_
#define HYBRIDSERVE_ENGINE_MODEL_WEIGHT_LOADER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"

namespace hybridserve::engine {

class WeightLoader {
 public:
  WeightLoader(const Checkpoint* checkpoint, Backend* backend,
               DType weight_precision)
      : checkpoint_(checkpoint), backend_(backend), precision_(weight_precision) {}

  // Plans a device tensor of `shape` made of the checkpoint tensors `parts`
  // stacked along the first dimension (each part's shape is `shape` with its own
  // first dimension, given in `part_rows`). *out is filled in by Load().
  void Add(std::vector<std::string> parts, std::vector<int64_t> part_rows,
           std::vector<int64_t> shape, Tensor* out);
  // Shorthand for a single tensor.
  void Add(std::string name, std::vector<int64_t> shape, Tensor* out);

  // Allocates the pool and copies every planned tensor, converting to the
  // backend's act dtype after rounding to the weight precision. Errors name the
  // file and tensor. On error, no Tensor* is filled.
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
  const Checkpoint* checkpoint_;
  Backend* backend_;
  DType precision_;
  std::vector<Planned> planned_;
  uint64_t total_bytes_ = 0;
  DeviceBuffer buffer_;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_WEIGHT_LOADER_H_
