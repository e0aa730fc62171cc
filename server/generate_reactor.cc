#include "server/generate_reactor.h"

#include <chrono>
#include <utility>

#include "absl/time/clock.h"
#include "server/request_builder.h"
#include "server/status_util.h"

namespace hybridserve::server {
namespace {

v1::FinishReason ToProto(scheduler::FinishReason r) {
  switch (r) {
    case scheduler::FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case scheduler::FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case scheduler::FinishReason::kEos: return v1::FINISH_REASON_EOS;
    case scheduler::FinishReason::kCancelled: return v1::FINISH_REASON_CANCELLED;
    case scheduler::FinishReason::kError: return v1::FINISH_REASON_ERROR;
    case scheduler::FinishReason::kNone: break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void ToProto(const scheduler::TokenLogprobInfo& in, v1::TokenLogprobs* out) {
  out->set_token_id(in.token_id);
  out->set_logprob(static_cast<float>(in.logprob));
  out->set_rank(in.rank);
  for (const auto& t : in.top) {
    auto* top = out->add_top();
    top->set_token_id(t.id);
    top->set_logprob(static_cast<float>(t.logprob));
  }
}

void ToProto(const scheduler::TokenEvent& e, const std::string& request_id,
             double cost_per_device_hour, v1::GenerateResponse* out) {
  out->Clear();
  out->set_request_id(request_id);
  out->mutable_token_ids()->Add(e.token_ids.begin(), e.token_ids.end());
  out->set_text(e.text);
  for (const auto& lp : e.logprobs) ToProto(lp, out->add_logprobs());
  for (const auto& lp : e.prompt_logprobs) ToProto(lp, out->add_prompt_logprobs());
  out->mutable_prompt_token_ids()->Add(e.prompt_token_ids.begin(), e.prompt_token_ids.end());
  if (e.is_final()) {
    out->set_finish_reason(ToProto(e.finish));
    v1::Usage* u = out->mutable_usage();
    u->set_prompt_tokens(e.usage.prompt_tokens);
    u->set_completion_tokens(e.usage.completion_tokens);
    u->set_queue_seconds(e.usage.queue_seconds);
    u->set_first_token_seconds(e.usage.first_token_seconds);
    u->set_total_seconds(e.usage.total_seconds);
    u->set_device_seconds(e.usage.device_seconds);
    u->set_cost_usd(e.usage.device_seconds * cost_per_device_hour / 3600.0);
  }
}

absl::Time Deadline(const grpc::CallbackServerContext* context) {
  const auto d = context->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

}  // namespace

GenerateReactor::GenerateReactor(const ModelContext* model, grpc::CallbackServerContext* context,
                                 const v1::GenerateRequest& request, std::string request_id,
                                 bool accepting, KeyTokenCounters key_tokens)
    : request_id_(std::move(request_id)),
      cost_per_device_hour_(model->config.cost_per_device_hour),
      key_tokens_(key_tokens) {
  if (!accepting) {
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is draining"));
    return;
  }
  auto built = BuildRequest(request, *model, absl::Now(), Deadline(context));
  if (!built.ok()) {
    Finish(ToGrpcStatus(built.status()));
    return;
  }
  std::unique_ptr<scheduler::Request> r = *std::move(built);
  r->request_id = request_id_;
  stream_ = std::make_shared<scheduler::TokenStream>(model->config.outbox_events);
  r->stream = stream_;
  stream_->SetNotify([this] { MaybeWrite(); });
  absl::Status submitted = model->loop->Submit(std::move(r));
  if (!submitted.ok()) {
    stream_->SetNotify(nullptr);
    stream_.reset();
    Finish(ToGrpcStatus(submitted));
  }
}

void GenerateReactor::MaybeWrite() {
  enum class Action { kNone, kWrite, kWriteAndFinish, kFinish } action = Action::kNone;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    std::optional<scheduler::TokenEvent> event = stream_->Pop();
    // Once a write failed nothing more is written: skip to the final event,
    // which may already be queued (the loop can end the request, e.g. when
    // the outbox fills, before the write fails) and then no later push would
    // call here again.
    while (event && broken_ && !event->is_final()) event = stream_->Pop();
    if (!event) return;
    if (event->is_final()) {
      finished_ = true;
      if (key_tokens_.prompt != nullptr) {
        key_tokens_.prompt->Increment(static_cast<double>(event->usage.prompt_tokens));
        key_tokens_.generation->Increment(static_cast<double>(event->usage.completion_tokens));
      }
      status = ToGrpcStatus(event->status);
      if (broken_) {
        action = Action::kFinish;
      } else {
        ToProto(*event, request_id_, cost_per_device_hour_, &response_);
        action = Action::kWriteAndFinish;
      }
    } else if (broken_) {
      return;  // the loop will end the request: it is cancelled
    } else {
      ToProto(*event, request_id_, cost_per_device_hour_, &response_);
      writing_ = true;
      action = Action::kWrite;
    }
  }
  // Start* are called without the lock: their reactions may run on other threads.
  switch (action) {
    case Action::kWrite: StartWrite(&response_); break;
    case Action::kWriteAndFinish: StartWriteAndFinish(&response_, grpc::WriteOptions(), status); break;
    case Action::kFinish: Finish(status); break;
    case Action::kNone: break;
  }
}

void GenerateReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) broken_ = true;
  }
  if (!ok) stream_->Cancel();
  MaybeWrite();
}

void GenerateReactor::OnCancel() {
  if (stream_) stream_->Cancel();
}

void GenerateReactor::OnDone() {
  if (stream_) {
    stream_->Cancel();  // no-op if the request already finished
    stream_->SetNotify(nullptr);
  }
  delete this;
}

}  // namespace hybridserve::server
