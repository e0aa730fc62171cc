// Validates a GenerateRequest and turns it into a scheduler::Request. Every
// rejection is INVALID_ARGUMENT naming the field and the limit (NOT_FOUND for an
// unknown model), and leaves nothing behind.
// Thread-safe.
#ifndef HYBRIDSERVE_SERVER_REQUEST_BUILDER_H_
#define HYBRIDSERVE_SERVER_REQUEST_BUILDER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "hybridserve/v1/inference.pb.h"
#include "scheduler/request.h"
#include "server/model_context.h"

namespace hybridserve::server {

// NOT_FOUND unless `name` is empty or the served name.
absl::Status CheckModelName(const ModelContext& model, const std::string& name);

// `deadline`: the call's deadline (InfiniteFuture if none). The request's
// stream is left unset.
absl::StatusOr<std::unique_ptr<scheduler::Request>> BuildRequest(
    const v1::GenerateRequest& proto, const ModelContext& model, absl::Time now,
    absl::Time deadline);

}  // namespace hybridserve::server

#endif  // HYBRIDSERVE_SERVER_REQUEST_BUILDER_H_
