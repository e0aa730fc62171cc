// SamplingParams: how one request turns logits into tokens (DESIGN.md 2.2).
// A plain value type; the sampler (engine/sampler.h) defines the semantics.
#ifndef HYBRIDSERVE_ENGINE_SAMPLING_PARAMS_H_
#define HYBRIDSERVE_ENGINE_SAMPLING_PARAMS_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"

namespace hybridserve::engine {

struct SamplingParams {
  // 0: greedy (so is anything below 1e-5, as in vLLM). Must be finite, >= 0.
  float temperature = 1.0f;
  // Keep the k most likely tokens (and any tied with the k-th). 0 or -1: off.
  int32_t top_k = 0;
  // Keep the smallest most-likely-first prefix whose mass reaches top_p.
  // 1: off. In (0, 1].
  float top_p = 1.0f;
  // Drop tokens whose probability is below min_p × the top probability.
  // 0: off. In [0, 1].
  float min_p = 0.0f;
  // Logits of tokens seen in the prompt or output: positive ones divided by
  // it, negative ones multiplied. 1: off. Finite, > 0.
  float repetition_penalty = 1.0f;
  // On output tokens only: logit -= frequency_penalty × count
  //                                 + presence_penalty × (count > 0).
  // 0: off. In [-2, 2].
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // Seed of the counter-based RNG. Unset: the caller draws one at arrival.
  std::optional<uint64_t> seed;
  // Top-N alternatives reported per generated token (the sampled token's own
  // logprob and rank are always reported). 0: none. In [0, max_logprobs].
  int32_t logprobs = 0;
  // Top-N per prompt position (plus the prompt token's own). 0: none.
  // In [0, max_logprobs].
  int32_t prompt_logprobs = 0;
};

// OK, or INVALID_ARGUMENT naming the first bad field and its allowed range,
// e.g. "temperature must be >= 0, got -1". NaN is out of every range.
// `max_logprobs` bounds `logprobs` and `prompt_logprobs`.
// (Defined in engine/sampler.cc, next to the code that gives the fields their
// meaning.)
absl::Status Validate(const SamplingParams& params, int max_logprobs);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_SAMPLING_PARAMS_H_
