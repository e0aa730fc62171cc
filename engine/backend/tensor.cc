#include "engine/backend/tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hybridserve::engine {

std::string Tensor::ShapeString() const {
  return absl::StrCat(std::string(DTypeName(dtype)), "[",
                      absl::StrJoin(shape.begin(), shape.begin() + rank, ", "),
                      "]");
}

}  // namespace hybridserve::engine
