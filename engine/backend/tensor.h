// Tensor: a non-owning, typed view of a dense row-major buffer that lives on a
// backend's device (host memory for the CPU backend). Ops take views; buffers
// are owned by the pools that allocated them (DeviceBuffer).
#ifndef HYBRIDSERVE_ENGINE_BACKEND_TENSOR_H_
#define HYBRIDSERVE_ENGINE_BACKEND_TENSOR_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "engine/check.h"
#include "engine/dtype.h"

namespace hybridserve::engine {

inline constexpr int kMaxTensorRank = 4;

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int rank = 0;
  std::array<int64_t, kMaxTensorRank> shape{};

  Tensor() = default;
  Tensor(void* data, DType dtype, std::initializer_list<int64_t> dims)
      : data(data), dtype(dtype), rank(static_cast<int>(dims.size())) {
    HS_CHECK(dims.size() <= kMaxTensorRank);
    int i = 0;
    for (int64_t d : dims) shape[i++] = d;
  }

  int64_t dim(int i) const {
    HS_CHECK(i >= 0 && i < rank);
    return shape[i];
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
  }
  size_t num_bytes() const { return numel() * DTypeSize(dtype); }
  // Elements per leading index: numel / dim(0).
  int64_t row_size() const {
    int64_t n = 1;
    for (int i = 1; i < rank; ++i) n *= shape[i];
    return n;
  }
  bool empty() const { return data == nullptr; }

  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
  // The first `rows` rows (leading dimension) of this tensor.
  Tensor Rows(int64_t first, int64_t count) const {
    HS_CHECK(rank >= 1 && first >= 0 && first + count <= shape[0]);
    Tensor t = *this;
    t.data = static_cast<char*>(data) + first * row_size() * DTypeSize(dtype);
    t.shape[0] = count;
    return t;
  }
  // Same bytes, new shape. REQUIRES: same number of elements.
  Tensor Reshape(std::initializer_list<int64_t> dims) const {
    Tensor t(data, dtype, dims);
    HS_CHECK(t.numel() == numel());
    return t;
  }
  std::string ShapeString() const;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_BACKEND_TENSOR_H_
