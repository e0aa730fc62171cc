// TokenStream: one request's bounded outbox, written by the engine loop and
// read by the gRPC reactor that streams it, plus the request's cancel flag.
// Thread-safe.
#ifndef HYBRIDSERVE_SCHEDULER_TOKEN_STREAM_H_
#define HYBRIDSERVE_SCHEDULER_TOKEN_STREAM_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/request.h"

namespace hybridserve::scheduler {

class TokenStream {
 public:
  // `capacity`: events that may wait unread before the writer gives up on the
  // reader (the loop then cancels the request rather than block on a client).
  explicit TokenStream(size_t capacity) : capacity_(capacity) {}

  // ---- engine loop side
  // Queues a non-final event. False (and nothing queued) when `capacity`
  // events already wait unread.
  bool Push(TokenEvent event);
  // Queues the final event; always succeeds (one extra place is kept for it).
  // Later pushes are ignored.
  void PushFinal(TokenEvent event);

  // ---- reader side
  // The oldest queued event, if any.
  std::optional<TokenEvent> Pop();
  // Called (on the writer's thread) after each push. Replacing or clearing it
  // waits for a running call to return, so after SetNotify(nullptr) the old
  // callback is never called again.
  void SetNotify(std::function<void()> notify);

  // ---- both
  // Asks the loop to stop the request at its next step (client gone, deadline).
  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  bool final_pushed() const;

 private:
  void Notify();
  void Append(TokenEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  mutable absl::Mutex mu_;
  // Queued events are events_[head_ ..]; the vector is cleared (its capacity
  // kept) whenever the reader catches up, so a stream that is read as fast as
  // it is written allocates nothing per event (a deque allocates a node every
  // couple of events of this size).
  std::vector<TokenEvent> events_ ABSL_GUARDED_BY(mu_);
  size_t head_ ABSL_GUARDED_BY(mu_) = 0;
  bool final_pushed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex notify_mu_;
  std::function<void()> notify_ ABSL_GUARDED_BY(notify_mu_);
  std::atomic<bool> cancelled_{false};
};

}  // namespace hybridserve::scheduler

#endif  // HYBRIDSERVE_SCHEDULER_TOKEN_STREAM_H_
