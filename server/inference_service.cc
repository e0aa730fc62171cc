#include "server/inference_service.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/generate_reactor.h"
#include "server/request_builder.h"
#include "server/status_util.h"

namespace hybridserve::server {
namespace {

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A Generate call refused before it starts (no valid API key).
class RefusedStream final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

std::string DTypeLabel(const std::string& flag, const std::string& torch_dtype) {
  if (flag != "auto") return flag;
  if (torch_dtype == "bfloat16") return "bf16";
  if (torch_dtype == "float16") return "f16";
  return "f32";
}

}  // namespace

absl::StatusOr<KeyTokenCounters> InferenceService::Authorize(
    const grpc::CallbackServerContext* context, const char* rpc) const {
  if (api_keys_ == nullptr || !api_keys_->enabled()) return KeyTokenCounters{};
  absl::StatusOr<std::string> key_name = api_keys_->Authenticate(context->client_metadata());
  if (!key_name.ok()) {
    if (metrics_ != nullptr) metrics_->OnUnauthenticated();
    return absl::UnauthenticatedError(key_name.status().message());
  }
  if (metrics_ == nullptr) return KeyTokenCounters{};
  return metrics_->OnKeyRequest(*key_name, rpc);
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  absl::StatusOr<KeyTokenCounters> key = Authorize(context, "Generate");
  if (!key.ok()) return new RefusedStream(ToGrpcStatus(key.status()));
  std::string id = request->request_id();
  if (id.empty()) id = absl::StrCat("req-", next_request_id_.fetch_add(1));
  return new GenerateReactor(model_, context, *request, std::move(id), accepting_.load(), *key);
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* context,
                                                     const v1::TokenizeRequest* request,
                                                     v1::TokenizeResponse* response) {
  if (auto key = Authorize(context, "Tokenize"); !key.ok()) return Done(context, key.status());
  if (absl::Status st = CheckModelName(*model_, request->model()); !st.ok()) return Done(context, st);
  if (static_cast<int64_t>(request->text().size()) > model_->config.max_input_bytes) {
    return Done(context, absl::InvalidArgumentError(absl::StrCat(
                             "text: ", request->text().size(), " bytes exceed the limit of ",
                             model_->config.max_input_bytes, " (--max-input-bytes)")));
  }
  const bool special = request->add_special_tokens() || !request->has_add_special_tokens();
  auto ids = model_->tokenizer->Encode(request->text(), special);
  if (!ids.ok()) return Done(context, absl::InvalidArgumentError(absl::StrCat("text: ", ids.status().message())));
  response->mutable_token_ids()->Add(ids->begin(), ids->end());
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(grpc::CallbackServerContext* context,
                                                       const v1::DetokenizeRequest* request,
                                                       v1::DetokenizeResponse* response) {
  if (auto key = Authorize(context, "Detokenize"); !key.ok()) return Done(context, key.status());
  if (absl::Status st = CheckModelName(*model_, request->model()); !st.ok()) return Done(context, st);
  // Ids the model can produce but the tokenizer has no token for (padded
  // vocabulary rows) decode to nothing, as they do in generated text.
  const int64_t vocab = std::max<int64_t>(model_->model.vocab_size, model_->tokenizer->vocab_size());
  std::vector<int32_t> ids;
  ids.reserve(request->token_ids_size());
  for (int i = 0; i < request->token_ids_size(); ++i) {
    const int32_t id = request->token_ids(i);
    if (id < 0 || id >= vocab) {
      return Done(context, absl::InvalidArgumentError(absl::StrCat(
                               "token_ids[", i, "]: token id ", id,
                               " is outside the vocabulary [0, ", vocab, ")")));
    }
    if (model_->tokenizer->IdToToken(id) != nullptr) ids.push_back(id);
  }
  const bool skip = request->skip_special_tokens() || !request->has_skip_special_tokens();
  auto text = model_->tokenizer->Decode(ids, skip);
  if (!text.ok()) return Done(context, absl::InvalidArgumentError(absl::StrCat("token_ids: ", text.status().message())));
  response->set_text(*std::move(text));
  return Done(context, absl::OkStatus());
}

void InferenceService::FillModelInfo(v1::ModelInfo* info) const {
  const engine::ModelConfig& c = model_->model;
  info->set_name(model_->served_name);
  info->set_architecture(c.architecture);
  info->set_family(std::string(engine::FamilyName(c.family())));
  info->set_num_layers(static_cast<int32_t>(c.num_layers));
  info->set_num_attention_layers(static_cast<int32_t>(c.num_attention_layers()));
  info->set_num_ssm_layers(static_cast<int32_t>(c.num_layers - c.num_attention_layers()));
  info->set_dtype(DTypeLabel(model_->config.dtype, c.torch_dtype));
  info->set_device(model_->device);
  info->set_vocab_size(static_cast<int32_t>(c.vocab_size));
  info->set_max_model_len(model_->max_model_len);
  info->set_kv_cache_bytes_per_token(static_cast<int64_t>(model_->memory.kv_bytes_per_token));
  info->set_ssm_state_bytes_per_sequence(static_cast<int64_t>(model_->memory.state_bytes_per_slot));
  info->set_block_tokens(static_cast<int32_t>(model_->memory.block_tokens));
  info->set_capacity_sequences(
      model_->memory.num_state_slots > 0
          ? std::min<int64_t>(model_->config.max_num_seqs, model_->memory.num_state_slots)
          : model_->config.max_num_seqs);
  info->set_capacity_tokens(model_->memory.num_blocks * model_->memory.block_tokens);
  const scheduler::LoopLoad load = model_->loop->load();
  v1::ModelLoad* l = info->mutable_load();
  l->set_free_kv_blocks(load.free_kv_blocks);
  l->set_total_kv_blocks(load.total_kv_blocks);
  l->set_free_state_slots(load.free_state_slots);
  l->set_total_state_slots(load.total_state_slots);
  l->set_running_requests(load.running);
  l->set_waiting_requests(load.waiting);
}

grpc::ServerUnaryReactor* InferenceService::ListModels(grpc::CallbackServerContext* context,
                                                       const v1::ListModelsRequest*,
                                                       v1::ListModelsResponse* response) {
  if (auto key = Authorize(context, "ListModels"); !key.ok()) return Done(context, key.status());
  FillModelInfo(response->add_models());
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::GetModel(grpc::CallbackServerContext* context,
                                                     const v1::GetModelRequest* request,
                                                     v1::ModelInfo* response) {
  if (auto key = Authorize(context, "GetModel"); !key.ok()) return Done(context, key.status());
  if (absl::Status st = CheckModelName(*model_, request->model()); !st.ok()) return Done(context, st);
  FillModelInfo(response);
  return Done(context, absl::OkStatus());
}

}  // namespace hybridserve::server
