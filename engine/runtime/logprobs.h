// Log-probabilities of a row of raw logits (log_softmax, computed in double).
#ifndef HYBRIDSERVE_ENGINE_RUNTIME_LOGPROBS_H_
#define HYBRIDSERVE_ENGINE_RUNTIME_LOGPROBS_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace hybridserve::engine {

struct TokenLogprob {
  int32_t id = 0;
  double logprob = 0.0;
};

// log(sum(exp(logits))).
double LogSumExp(absl::Span<const float> logits);

// The `n` most likely tokens, most likely first; ties go to the lower id.
std::vector<TokenLogprob> TopLogprobs(absl::Span<const float> logits, int n);

// The most likely token (lowest id among equal maxima).
int32_t Argmax(absl::Span<const float> logits);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_RUNTIME_LOGPROBS_H_
