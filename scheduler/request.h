// Request, StopCriteria and TokenEvent: the plain value types that cross from
// the gRPC threads to the engine loop and back.
#ifndef HYBRIDSERVE_SCHEDULER_REQUEST_H_
#define HYBRIDSERVE_SCHEDULER_REQUEST_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/runtime/logprobs.h"
#include "engine/sampling_params.h"

namespace hybridserve::scheduler {

class TokenStream;

struct StopCriteria {
  int32_t max_new_tokens = 16;
  std::vector<std::string> stop_strings;
  std::vector<int32_t> stop_token_ids;
  std::vector<int32_t> eos_token_ids;  // the model's, unless ignore_eos
  bool ignore_eos = false;
  int32_t min_new_tokens = 0;
  bool include_stop_str_in_output = false;
};

enum class FinishReason { kNone, kLength, kStop, kEos, kCancelled, kError };
const char* FinishReasonName(FinishReason reason);  // "length", "stop", ...

// A validated generation request. Owned by the engine loop once submitted.
struct Request {
  std::string request_id;
  std::vector<int32_t> prompt_ids;
  engine::SamplingParams sampling;  // seed always set (drawn at arrival if absent)
  StopCriteria stop;
  // Unset: no logprobs in responses; N: the token's own and the top N.
  std::optional<int32_t> logprobs;
  std::optional<int32_t> prompt_logprobs;
  bool skip_special_tokens = true;
  int32_t priority = 0;
  absl::Time arrival = absl::InfinitePast();
  absl::Time deadline = absl::InfiniteFuture();
  // The request's outbox, shared with the gRPC reactor that reads it.
  std::shared_ptr<TokenStream> stream;
};

// The logprob of one token and the top alternatives at its position.
struct TokenLogprobInfo {
  int32_t token_id = 0;
  double logprob = 0.0;
  int32_t rank = 0;
  std::vector<engine::TokenLogprob> top;
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double queue_seconds = 0.0;
  double first_token_seconds = 0.0;
  double total_seconds = 0.0;
  double device_seconds = 0.0;
};

// What the loop sends back for a request: new tokens and text, and with the
// last event the finish reason, usage and final status.
struct TokenEvent {
  absl::InlinedVector<int32_t, 4> token_ids;  // one per step: no allocation
  std::string text;
  std::vector<TokenLogprobInfo> logprobs;         // when requested
  std::vector<TokenLogprobInfo> prompt_logprobs;  // first event only
  std::vector<int32_t> prompt_token_ids;          // first event only
  FinishReason finish = FinishReason::kNone;      // kNone: more events follow
  Usage usage;                                    // last event only
  // Last event only: OK, or why the request failed (the stream's gRPC status).
  absl::Status status;

  bool is_final() const { return finish != FinishReason::kNone; }
};

}  // namespace hybridserve::scheduler

#endif  // HYBRIDSERVE_SCHEDULER_REQUEST_H_
