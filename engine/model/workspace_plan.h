// WorkspacePlan: lays out a model's activation buffers in one allocation
// ("workspace" pool): plan every tensor first, then allocate once.
// Thread-compatible.
#ifndef HYBRIDSERVE_ENGINE_MODEL_WORKSPACE_PLAN_H_
#define HYBRIDSERVE_ENGINE_MODEL_WORKSPACE_PLAN_H_

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"

namespace hybridserve::engine {

class WorkspacePlan {
 public:
  // Plans *out as a `dtype` tensor of `shape`; filled in by Allocate().
  void Add(Tensor* out, DType dtype, std::initializer_list<int64_t> shape) {
    Tensor probe(nullptr, dtype, shape);
    items_.push_back({out, probe, total_bytes_});
    total_bytes_ += (probe.num_bytes() + kAlign - 1) / kAlign * kAlign;
  }
  // One allocation holding every planned tensor. On error nothing is filled.
  absl::StatusOr<DeviceBuffer> Allocate(Backend* backend) {
    auto buffer = backend->Allocate(total_bytes_, "workspace");
    if (!buffer.ok()) return buffer.status();
    for (Item& it : items_) {
      *it.out = it.shape;
      it.out->data = static_cast<char*>(buffer->data()) + it.offset;
    }
    return buffer;
  }
  uint64_t total_bytes() const { return total_bytes_; }

 private:
  static constexpr uint64_t kAlign = 256;
  struct Item {
    Tensor* out;
    Tensor shape;
    uint64_t offset;
  };
  std::vector<Item> items_;
  uint64_t total_bytes_ = 0;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_WORKSPACE_PLAN_H_
