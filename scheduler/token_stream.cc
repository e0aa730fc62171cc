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
    if (final_pushed_ || events_.size() - head_ >= capacity_) return false;
    Append(std::move(event));
  }
  Notify();
  return true;
}

void TokenStream::PushFinal(TokenEvent event) {
  {
    absl::MutexLock lock(&mu_);
    if (final_pushed_) return;
    final_pushed_ = true;
    Append(std::move(event));
  }
  Notify();
}

void TokenStream::Append(TokenEvent event) {
  // A reader that lags without catching up: drop the consumed prefix instead
  // of growing once it is at least half the vector (so the vector stays under
  // about twice the capacity and each event is moved O(1) times on average).
  if (events_.size() == events_.capacity() && head_ > 0 && 2 * head_ >= events_.size()) {
    events_.erase(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  events_.push_back(std::move(event));
}

std::optional<TokenEvent> TokenStream::Pop() {
  absl::MutexLock lock(&mu_);
  if (head_ == events_.size()) return std::nullopt;
  TokenEvent e = std::move(events_[head_++]);
  if (head_ == events_.size()) {
    events_.clear();
    head_ = 0;
  }
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
