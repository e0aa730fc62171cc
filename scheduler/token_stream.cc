#include "scheduler/token_stream.h"

#include <utility>

namespace hybridserve::scheduler {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone: return "none";
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kEos: return "eos";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "unknown";
}

bool TokenStream::Push(TokenEvent event) {
  {
    absl::MutexLock lock(&mu_);
    if (final_pushed_ || events_.size() >= capacity_) return false;
    events_.push_back(std::move(event));
  }
  Notify();
  return true;
}

void TokenStream::PushFinal(TokenEvent event) {
  {
    absl::MutexLock lock(&mu_);
    if (final_pushed_) return;
    final_pushed_ = true;
    events_.push_back(std::move(event));
  }
  Notify();
}

std::optional<TokenEvent> TokenStream::Pop() {
  absl::MutexLock lock(&mu_);
  if (events_.empty()) return std::nullopt;
  TokenEvent e = std::move(events_.front());
  events_.pop_front();
  return e;
}

bool TokenStream::final_pushed() const {
  absl::MutexLock lock(&mu_);
  return final_pushed_;
}

void TokenStream::SetNotify(std::function<void()> notify) {
  absl::MutexLock lock(&notify_mu_);
  notify_ = std::move(notify);
}

void TokenStream::Notify() {
  absl::MutexLock lock(&notify_mu_);
  if (notify_) notify_();
}

}  // namespace hybridserve::scheduler
