#include "engine/model/model.h"

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {

absl::Status LogitsOfRows(Backend& backend, const Tensor& hidden, const Tensor& gathered,
                          const Tensor& lm_head, const Tensor& rows, const Tensor& logits) {
  const int64_t r = rows.dim(0);
  const int64_t max_rows = gathered.dim(0);
  if (r <= 0 || r > max_rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("ComputeLogits: ", r, " rows (max ", max_rows, ")"));
  }
  const Tensor picked = gathered.Rows(0, r);
  HS_RETURN_IF_ERROR(backend.GatherRows(hidden, rows, picked));
  return backend.Gemm(picked, lm_head, Tensor(), logits);
}

}  // namespace hybridserve::engine
