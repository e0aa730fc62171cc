// GenerateReactor: one Generate call. Validates and submits the request, then
// streams the events the engine loop pushes to the request's TokenStream, one
// write at a time. The client going away (or its deadline) sets the stream's
// cancel flag; the loop then ends the request and frees what it held.
// Deletes itself in OnDone.
#ifndef HYBRIDSERVE_SERVER_GENERATE_REACTOR_H_
#define HYBRIDSERVE_SERVER_GENERATE_REACTOR_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "hybridserve/v1/inference.pb.h"
#include "scheduler/token_stream.h"
#include "server/metrics.h"
#include "server/model_context.h"

namespace hybridserve::server {

class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // Finishes at once (with the error) when the request is invalid or the loop
  // refuses it.
  GenerateReactor(const ModelContext* model, grpc::CallbackServerContext* context,
                  const v1::GenerateRequest& request, std::string request_id,
                  bool accepting, KeyTokenCounters key_tokens = {});

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Writes the next queued event if no write is in flight.
  void MaybeWrite();

  std::shared_ptr<scheduler::TokenStream> stream_;
  std::string request_id_;
  const double cost_per_device_hour_;
  const KeyTokenCounters key_tokens_;  // the API key's counters, if any
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // a write failed: the client is gone
  v1::GenerateResponse response_;  // only touched by the one writer
};

}  // namespace hybridserve::server

#endif  // HYBRIDSERVE_SERVER_GENERATE_REACTOR_H_
