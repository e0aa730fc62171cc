// Sampler: one row of logits → the next token and its logprobs (DESIGN.md 2.2).
//
// Order of operations for a sampled (non-greedy) token:
//   1. penalties on a copy of the row: repetition (tokens of prompt + output:
//      positive logits divided by the penalty, negative ones multiplied), then
//      frequency and presence (output tokens only:
//      logit -= frequency × count + presence × (count > 0)); banned ids → -inf;
//   2. temperature: weights w_i = exp((z_i - z_max) / temperature), computed
//      in float (z: the penalized logits, z_max their maximum);
//   3. top_k: keep every token whose z is >= the k-th largest z (so tokens
//      tied with the k-th are all kept, as vLLM and transformers do);
//   4. top_p: rank the kept tokens by z descending, ties by lower id first;
//      keep a token iff the probability mass (w renormalized over the tokens
//      top_k kept) of the tokens ranked before it is < top_p — i.e. the
//      shortest prefix whose mass reaches top_p, the token that crosses the
//      boundary included (vLLM's and transformers' rule; masses are summed
//      in double, so a boundary met to the last bits is decided by rounding);
//   5. min_p: keep a token iff w_i >= min_p (w of the top token is 1, so this
//      is "probability >= min_p × the top probability");
//   6. draw: u = SampleUniform(seed, token_index) in [0, 1); walk the kept
//      tokens in ascending id order accumulating w in double; the token drawn
//      is the first whose running sum exceeds u × (sum of w over kept tokens).
// Greedy (temperature < 1e-5, as vLLM): the argmax of the penalized logits,
// the lowest id among equal maxima; no random number is used.
//
// The draw depends only on (logits, params, prompt/output ids, seed,
// token_index): the same seeded request gives the same tokens batched or
// alone, and after preemption and recompute (given the same logits).
//
// Logprobs are of the model's raw distribution: log_softmax of the row as
// passed in, before penalties, bans and temperature (vLLM's default). The rank
// of a token is the number of tokens whose raw logit is >= its own (1 = most
// likely; ties count against it, as vLLM counts).
//
// Cost for a V-token row: a few O(V) passes (max, exp, compare, draw), top_k
// by selection (nth_element, no sort), top_p by a weighted quickselect
// (expected O(V), no full sort), top-N logprobs by a size-N heap. No
// allocation per call once the scratch buffers have grown to the vocabulary
// size (except the result's `top` vector when top-N logprobs are asked).
//
// Thread-compatible: one Sampler per thread (the engine loop owns one).
#ifndef HYBRIDSERVE_ENGINE_SAMPLER_H_
#define HYBRIDSERVE_ENGINE_SAMPLER_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/runtime/logprobs.h"
#include "engine/sampling_params.h"

namespace hybridserve::engine {

struct SampleInput {
  absl::Span<const float> logits;      // [vocab] raw logits of one position
  const SamplingParams* params = nullptr;
  absl::Span<const int32_t> prompt_ids;  // for the repetition penalty
  absl::Span<const int32_t> output_ids;  // tokens generated so far
  // Tokens that must not be drawn (e.g. EOS before min_new_tokens). Unlike
  // MaskTokens on the row, they keep their raw logprobs.
  absl::Span<const int32_t> banned_ids;
  uint64_t seed = 0;  // the request's seed (params->seed, or drawn at arrival)
  // Whether to compute the token's logprob, rank and top-N (params->logprobs)
  // of the raw distribution. Off, they are left at zero / empty and greedy
  // sampling is a single pass over the row.
  bool want_logprobs = true;
  // Index of the token being sampled among the request's generated tokens
  // (0 for the first one; normally output_ids.size()).
  int64_t token_index = 0;
};

// A token with its raw logprob, rank and the top-N alternatives.
struct SampleResult {
  int32_t token = 0;
  double logprob = 0.0;  // raw log_softmax of `token`
  int32_t rank = 0;      // 1-based, see above
  std::vector<TokenLogprob> top;  // most likely first, ties by lower id
};

class Sampler {
 public:
  Sampler() = default;
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // Picks the next token as described above. `top` holds the
  // params->logprobs most likely tokens of the raw distribution.
  // REQUIRES: logits non-empty; params valid (Validate). Ids outside
  // [0, vocab) in prompt/output/banned are ignored. NaN logits never win; if
  // every token is banned or -inf, the result is the raw argmax.
  SampleResult Sample(const SampleInput& in);

  // Prompt logprobs for a slice of prompt positions. `rows` is
  // [num_rows, vocab_size] row-major; row r holds the logits computed at
  // prompt position first_position + r, which score prompt token
  // prompt_ids[first_position + r + 1]. Returns one result per row: that
  // token, its raw logprob and rank, and the top_n most likely tokens. Callers
  // pass slices of rows at a time (a whole prompt's rows need never exist at
  // once); the results do not depend on how the rows are sliced.
  // REQUIRES: rows.size() == num_rows × vocab_size;
  //           first_position + num_rows < prompt_ids.size(); top_n >= 0.
  std::vector<SampleResult> PromptLogprobs(absl::Span<const float> rows,
                                           int64_t vocab_size,
                                           absl::Span<const int32_t> prompt_ids,
                                           int64_t first_position, int top_n);

 private:
  // Scratch buffers, grown to the vocabulary size and reused.
  std::vector<float> penalized_;  // [vocab] penalized logits
  std::vector<float> weights_;    // [vocab] w_i by token id (candidates only)
  std::vector<float> values_;     // [vocab] copy of z for the top_k selection
  std::vector<int32_t> cand_;     // top_k candidates, ascending ids
  std::vector<uint64_t> keys_;    // top_p candidates' likelihood keys
  std::vector<uint64_t> heap_;    // top-N logprob selection
  std::vector<int32_t> counts_;   // [vocab] output counts; zero between calls
  std::vector<uint8_t> seen_;     // [vocab] seen flags; zero between calls
  std::vector<int32_t> touched_;  // ids whose counts_ / seen_ need a reset
};

// Sets logits[id] = -inf for every id in `ids` (ids outside the row ignored).
// For callers that own a mutable row; note that masked tokens then also get
// -inf raw logprobs (SampleInput::banned_ids does not have that effect).
void MaskTokens(absl::Span<float> logits, absl::Span<const int32_t> ids);

// The draw's random number: a uniform double in [0, 1) from Philox4x32-10
// with key (seed low 32 bits, seed high 32 bits) and counter
// (token_index low 32 bits, token_index high 32 bits, 0, 0); the first two
// output words form 53 bits: ((w0 << 32 | w1) >> 11) × 2^-53.
double SampleUniform(uint64_t seed, int64_t token_index);

// Philox4x32-10 (Salmon et al., SC'11; Random123's philox4x32), exposed for
// its known-answer test.
std::array<uint32_t, 4> Philox4x32(std::array<uint32_t, 4> counter,
                                   std::array<uint32_t, 2> key);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_SAMPLER_H_
