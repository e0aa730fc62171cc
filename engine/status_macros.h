// Early-return helpers for absl::Status / absl::StatusOr.
#ifndef HYBRIDSERVE_ENGINE_STATUS_MACROS_H_
#define HYBRIDSERVE_ENGINE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define HS_CONCAT_INNER_(a, b) a##b
#define HS_CONCAT_(a, b) HS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define HS_RETURN_IF_ERROR(expr)                    \
  do {                                              \
    ::absl::Status hs_status_ = (expr);             \
    if (!hs_status_.ok()) return hs_status_;        \
  } while (0)

// `lhs = value of rexpr` (an absl::StatusOr<T>), or returns its error.
#define HS_ASSIGN_OR_RETURN(lhs, rexpr) \
  HS_ASSIGN_OR_RETURN_IMPL_(HS_CONCAT_(hs_statusor_, __LINE__), lhs, rexpr)
#define HS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                              \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#endif  // HYBRIDSERVE_ENGINE_STATUS_MACROS_H_
