// The one place absl::Status becomes grpc::Status.
#ifndef HYBRIDSERVE_SERVER_STATUS_UTIL_H_
#define HYBRIDSERVE_SERVER_STATUS_UTIL_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace hybridserve::server {

// Same code (the numbering is shared), same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace hybridserve::server

#endif  // HYBRIDSERVE_SERVER_STATUS_UTIL_H_
