// Sequence: the engine loop's state for one running or waiting request.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_SCHEDULER_SEQUENCE_H_
#define HYBRIDSERVE_SCHEDULER_SEQUENCE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "scheduler/request.h"
#include "scheduler/stop_checker.h"
#include "scheduler/token_stream.h"

namespace hybridserve::scheduler {

struct Sequence {
  Sequence(int64_t id, std::unique_ptr<Request> request,
           const engine::tokenizer::Tokenizer& tokenizer)
      : id(id),
        req(std::move(request)),
        tokens(req->prompt_ids),
        detokenizer(tokenizer, req->skip_special_tokens),
        stop_checker(req->stop.stop_strings, req->stop.include_stop_str_in_output) {}

  int64_t prompt_len() const { return static_cast<int64_t>(req->prompt_ids.size()); }
  int64_t num_generated() const { return static_cast<int64_t>(tokens.size()) - prompt_len(); }
  // Tokens not yet in the KV cache.
  int64_t num_uncomputed() const { return static_cast<int64_t>(tokens.size()) - num_computed; }
  // Longest this sequence can get: prompt + max_new_tokens.
  int64_t max_len() const { return prompt_len() + req->stop.max_new_tokens; }

  const int64_t id;
  std::unique_ptr<Request> req;
  std::vector<int32_t> tokens;  // prompt, then generated
  int64_t num_computed = 0;     // tokens whose K/V (or state) is in the cache
  int32_t state_slot = -1;      // SSM models: the slot held while running
  int64_t admit_order = 0;      // rank among admissions (later = preempted first)
  int32_t num_preemptions = 0;
  int64_t prompt_logprobs_next = 0;  // first prompt position whose logprob is not yet taken
  engine::tokenizer::IncrementalDetokenizer detokenizer;
  StopChecker stop_checker;
  bool first_event_sent = false;
  std::vector<TokenLogprobInfo> prompt_logprobs;  // accumulated until the first event
  absl::Time first_scheduled = absl::InfiniteFuture();
  absl::Time first_token = absl::InfiniteFuture();
  absl::Time last_token = absl::InfiniteFuture();
  double device_seconds = 0.0;
  bool finished = false;
};

}  // namespace hybridserve::scheduler

#endif  // HYBRIDSERVE_SCHEDULER_SEQUENCE_H_
