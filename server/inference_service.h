// The hybridserve.v1.Inference gRPC service (callback API): proto ⇄ Request /
// TokenEvent, no model logic. Generate streams each TokenEvent the engine loop
// pushes to the request's TokenStream.
// Thread-safe.
#ifndef HYBRIDSERVE_SERVER_INFERENCE_SERVICE_H_
#define HYBRIDSERVE_SERVER_INFERENCE_SERVICE_H_

#include <atomic>

#include "hybridserve/v1/inference.grpc.pb.h"
#include "server/api_keys.h"
#include "server/metrics.h"
#include "server/model_context.h"

namespace hybridserve::server {

class InferenceService final : public v1::Inference::CallbackService {
 public:
  // `model` must outlive the service.
  explicit InferenceService(const ModelContext* model) : model_(model) {}

  // From now on Generate answers UNAVAILABLE (draining).
  void StopAccepting() { accepting_.store(false); }

  // From now on, while `keys` holds keys, every RPC of this service needs a
  // valid API key (else UNAUTHENTICATED); calls and Generate tokens are counted
  // per key name in `metrics`. Both must outlive the service; call before serving.
  void RequireApiKeys(const ApiKeyStore* keys, ServerMetrics* metrics) {
    api_keys_ = keys;
    metrics_ = metrics;
  }

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context,
                                     const v1::GetModelRequest* request,
                                     v1::ModelInfo* response) override;

 private:
  void FillModelInfo(v1::ModelInfo* info) const;
  // The caller's key counters when keys are configured and its key is valid
  // (empty counters when no keys are configured); else UNAUTHENTICATED.
  absl::StatusOr<KeyTokenCounters> Authorize(const grpc::CallbackServerContext* context,
                                            const char* rpc) const;

  const ModelContext* model_;
  std::atomic<bool> accepting_{true};
  std::atomic<uint64_t> next_request_id_{1};
  const ApiKeyStore* api_keys_ = nullptr;
  ServerMetrics* metrics_ = nullptr;
};

}  // namespace hybridserve::server

#endif  // HYBRIDSERVE_SERVER_INFERENCE_SERVICE_H_
