#include "engine/backend/backend.h"

#include <utility>

namespace hybridserve::engine {

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (backend_ != nullptr && data_ != nullptr) backend_->Free(data_, num_bytes_);
    backend_ = std::exchange(other.backend_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    num_bytes_ = std::exchange(other.num_bytes_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (backend_ != nullptr && data_ != nullptr) backend_->Free(data_, num_bytes_);
}

}  // namespace hybridserve::engine
