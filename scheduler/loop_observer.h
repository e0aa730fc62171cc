// LoopObserver: what the engine loop reports as it runs (for metrics). Every
// method is called on the loop thread, between steps, and must be cheap and
// non-blocking. The default implementations do nothing.
#ifndef HYBRIDSERVE_SCHEDULER_LOOP_OBSERVER_H_
#define HYBRIDSERVE_SCHEDULER_LOOP_OBSERVER_H_

#include <cstdint>

#include "scheduler/request.h"

namespace hybridserve::scheduler {

struct StepStats {
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  int64_t num_prefill_tokens = 0;  // prompt (or recomputed) tokens
  int64_t num_decode_tokens = 0;   // one per decoding sequence
  double forward_seconds = 0.0;    // device time of the step
};

struct PoolUsage {
  int64_t used_kv_blocks = 0;
  int64_t free_kv_blocks = 0;
  int64_t used_state_slots = 0;
  int64_t free_state_slots = 0;
  int32_t running = 0;
  int32_t waiting = 0;
};

class LoopObserver {
 public:
  virtual ~LoopObserver() = default;
  virtual void OnStep(const StepStats&) {}
  // A request was scheduled for the first time, after `queue_seconds`.
  virtual void OnFirstScheduled(int64_t prompt_tokens, double queue_seconds) {}
  // A token was generated: `since_previous_seconds` is the time since the
  // arrival (first token) or since the previous token.
  virtual void OnToken(bool first, double since_previous_seconds) {}
  virtual void OnFinish(FinishReason reason, const Usage& usage) {}
  virtual void OnPreemption() {}
  virtual void OnPools(const PoolUsage&) {}
};

}  // namespace hybridserve::scheduler

#endif  // HYBRIDSERVE_SCHEDULER_LOOP_OBSERVER_H_
