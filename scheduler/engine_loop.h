// EngineLoop: the one thread that owns all sequence state — the running and
// waiting lists, the KV block manager and the Engine. gRPC threads only call
// Submit (and set cancel flags on TokenStreams); every iteration the loop
//   drains the inbox → drops cancelled / expired requests → plans the step
//   (decodes first, then prefill chunks, then admissions, within the token
//   budget; nothing mutated yet) → applies it (blocks) → Engine::Step →
//   samples → appends tokens → stop checks → emits events → frees what
//   finished.
// This first version admits a request only when the KV cache can hold its
// prompt plus max_new_tokens and, for models with SSM layers, a state slot is free (blocks are reserved, so no running sequence ever
// runs out and nothing is preempted); prefill is chunked to the step's token
// budget.
// Thread-safe (public methods); the loop's state is owned by its thread.
#ifndef HYBRIDSERVE_SCHEDULER_ENGINE_LOOP_H_
#define HYBRIDSERVE_SCHEDULER_ENGINE_LOOP_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/step_engine.h"
#include "engine/sampler.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/block_manager.h"
#include "scheduler/loop_observer.h"
#include "scheduler/request.h"
#include "scheduler/sequence.h"
#include "scheduler/state_slots.h"
#include "scheduler/token_stream.h"

namespace hybridserve::scheduler {

struct EngineLoopOptions {
  int64_t max_num_seqs = 64;         // sequences running at once
  int64_t max_batched_tokens = 2048; // tokens in one step
  int64_t max_queue = 1024;          // requests waiting (not yet running)
  // Prompt-logprob rows computed per step for one sequence (bounds the logits
  // materialised at once: rows x vocabulary).
  int64_t prompt_logprobs_chunk = 256;
  // A waiting request's priority improves by one per this much waiting time
  // (so none starves); zero turns aging off.
  absl::Duration aging = absl::Seconds(10);
  // Check the pools' invariants after every step (tests; aborts when broken).
  bool check_invariants = false;
  // Told about steps, tokens and finished requests (metrics); may be null.
  // Must outlive the loop.
  LoopObserver* observer = nullptr;
};

// A snapshot of the loop's load, safe to read from any thread.
struct LoopLoad {
  int64_t free_kv_blocks = 0;
  int64_t total_kv_blocks = 0;
  int64_t free_state_slots = 0;
  int64_t total_state_slots = 0;
  int32_t running = 0;
  int32_t waiting = 0;
};

class EngineLoop {
 public:
  // `engine` and `tokenizer` must outlive the loop.
  EngineLoop(engine::StepEngine* engine, const engine::tokenizer::Tokenizer* tokenizer,
             const EngineLoopOptions& options);
  ~EngineLoop();  // Stop()s

  // Runs one step at the largest batch the options allow, then frees it.
  // REQUIRES: called before Start().
  absl::Status Warmup();
  void Start();

  // Hands a validated request to the loop. UNAVAILABLE when draining or
  // stopped; RESOURCE_EXHAUSTED when max_queue requests already wait;
  // INVALID_ARGUMENT when it can never fit the KV cache. On error the request
  // is dropped and nothing is pushed to its stream.
  absl::Status Submit(std::unique_ptr<Request> request);

  // Refuses new submissions from now on; running and waiting requests go on.
  void BeginDrain();
  // Waits until nothing runs or waits, or `deadline`. True when idle.
  bool WaitUntilIdle(absl::Time deadline);
  // Ends every request still running or waiting: final event with finish
  // cancelled and `status`. Returns how many were ended.
  int CancelAll(absl::Status status);
  // Stops and joins the thread (cancelling what is left with UNAVAILABLE).
  void Stop();

  LoopLoad load() const;

  // Runs one iteration on the caller's thread, for tests and benchmarks that
  // drive the loop step by step. REQUIRES: Start() not called. False when
  // there was nothing to run.
  bool RunOnce();

  // Every KV block and slot is free or held by exactly one running sequence,
  // with tables matching context lengths. Loop thread only (or when stopped).
  absl::Status CheckInvariants() const;

 private:
  void Run();
  // One iteration; false when there was nothing to do.
  bool Iterate();
  void DrainInbox();
  void DropCancelled();
  // Ends `seq` with `reason` / `status`: frees its blocks and queues `event`
  // as its final event (with the text still held back when flush_text), which
  // the next PublishLoad pushes. The caller removes it from its list.
  void Finish(Sequence& seq, FinishReason reason, absl::Status status,
              TokenEvent event, bool flush_text);
  // Finishes every running and waiting sequence (cancelled, `status`);
  // returns how many.
  int EndAll(absl::Status status);
  // Samples the next token of `seq` from its logits row, runs the stop checks
  // and emits the event.
  // `now` is the step's time (every token of a step gets the same).
  void SampleAndEmit(Sequence& seq, const float* logits_row, absl::Time now);
  // Accumulates the prompt logprobs of positions first_pos .. first_pos+n-1.
  void EmitPromptLogprobs(Sequence& seq, const float* rows, int64_t first_pos, int64_t n);
  void PublishLoad();
  struct Scheduled {
    Sequence* seq;
    int64_t n;       // tokens computed this step
    int64_t blocks;  // blocks it needs on top of what it holds
    // Its block table once the plan is applied (valid until the next Grow or
    // Free of any sequence).
    const std::vector<int32_t>* table = nullptr;
  };
  // Where a scheduled sequence's logits rows sit in the step's output.
  struct LogitsRows {
    int64_t first_prompt_row = -1;  // row of the first prompt-logprob position
    int64_t num_prompt_rows = 0;
    int64_t first_prompt_pos = 0;
    int64_t sample_row = -1;
  };
  // Fills plan_ and rows_ for the applied schedule.
  void BuildPlan(const std::vector<Scheduled>& sched);
  // Decides this step's sequences (decodes, then prefill chunks, then
  // admissions) within the token budget, preempting when blocks run out, then
  // applies it (preemptions, slots, blocks).
  std::vector<Scheduled> PlanStep();
  // Frees `seq`'s blocks and slot for recompute; the caller moves it to waiting_.
  void Preempt(Sequence& seq);
  void SortWaiting(absl::Time now);
  // Whether `a` is served before `b` (and preempted after it).
  static bool Outranks(const Sequence& a, const Sequence& b);
  // Tokens of `seq` to compute this step, given the budget left.
  int64_t ChunkLimit(const Sequence& seq, int64_t budget) const;

  engine::StepEngine* const engine_;
  const engine::tokenizer::Tokenizer* const tokenizer_;
  const EngineLoopOptions options_;

  // Inbox from gRPC threads.
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Request>> inbox_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool idle_ ABSL_GUARDED_BY(mu_) = true;
  int pending_cancel_all_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status cancel_all_status_ ABSL_GUARDED_BY(mu_);
  int cancel_all_ended_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
  bool started_ = false;

  // Owned by the loop thread.
  BlockManager blocks_;
  StateSlotPool slots_;
  engine::Sampler sampler_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;
  int64_t next_seq_id_ = 0;
  int64_t next_admit_order_ = 0;
  engine::StepOutput step_out_;
  engine::StepPlan plan_;          // this step's; capacity reused
  std::vector<LogitsRows> rows_;   // per scheduled sequence, this step
  // Final events of requests finished since the last PublishLoad, which
  // pushes them after publishing the load (see Finish).
  std::vector<std::pair<std::shared_ptr<TokenStream>, TokenEvent>> finals_;
  std::vector<int32_t> banned_;  // scratch for SampleAndEmit
  std::vector<Sequence*> order_;  // scratch for PlanStep
  LoopObserver null_observer_;
  LoopObserver* observer_;  // options_.observer or null_observer_

  // Published for load().
  std::atomic<int64_t> free_blocks_{0};
  std::atomic<int64_t> free_slots_{0};
  std::atomic<int32_t> num_running_{0};
  std::atomic<int32_t> num_waiting_{0};
};

}  // namespace hybridserve::scheduler

#endif  // HYBRIDSERVE_SCHEDULER_ENGINE_LOOP_H_
