// StepPlan: what one forward pass computes (scheduler → engine), in the varlen
// layout of DESIGN.md section 2.1: the new tokens of all scheduled sequences
// concatenated, plus per-sequence metadata. Plain value type; tests build them
// by hand.
#ifndef HYBRIDSERVE_ENGINE_RUNTIME_STEP_PLAN_H_
#define HYBRIDSERVE_ENGINE_RUNTIME_STEP_PLAN_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace hybridserve::engine {

struct StepPlan {
  // Per token (T = token_ids.size()).
  std::vector<int32_t> token_ids;  // [T]
  std::vector<int32_t> positions;  // [T] position of each token in its sequence
  // Per sequence (S = context_len.size()).
  std::vector<int32_t> query_start;  // [S + 1] prefix sums of new tokens
  std::vector<int32_t> context_len;  // [S] tokens in cache after this step
  // [S, block_table_width] row-major: physical KV block of each logical block.
  // Entries past a sequence's last needed block are ignored (use -1).
  std::vector<int32_t> block_table;
  int32_t block_table_width = 0;
  // SSM models (unused by pure attention models): slot and whether it starts
  // from a zero state. A sequence's state is fresh exactly when its first new
  // token is at position 0 (admission, or recompute after preemption).
  std::vector<int32_t> state_slot;      // [S]
  std::vector<uint8_t> state_is_fresh;  // [S]
  // Token indices (into [0, T)) whose logits the step returns, in this order.
  std::vector<int32_t> logits_indices;

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  int32_t num_seqs() const { return static_cast<int32_t>(context_len.size()); }
};

// Limits a plan is checked against.
struct StepPlanLimits {
  int64_t vocab_size = 0;
  int64_t block_tokens = 0;
  int64_t num_blocks = 0;      // KV blocks in the cache (0: no attention layers)
  int64_t max_num_tokens = 0;  // workspace capacity in tokens
  int64_t max_context_len = 0;
  int64_t num_state_slots = 0;  // SSM state slots (0: no SSM layers)
};

// OK iff the plan is internally consistent and within `limits`: sizes agree,
// query_start is non-decreasing from 0 to T, every sequence has at least one
// new token, positions run context_len - n .. context_len - 1, token ids are in
// the vocabulary, the block table covers every context with blocks in range and
// no block is used by two sequences, logits indices are in range; with state
// slots: one slot per sequence, in range, no slot used twice, and
// state_is_fresh set exactly for sequences starting at position 0. The error
// names the first problem found.
//
// `scratch` (optional) is reused between calls so that the check costs
// O(blocks in the plan), not O(blocks in the cache).
struct PlanCheckScratch {
  std::vector<uint32_t> block_stamp;  // [num_blocks] call number that last saw it
  std::vector<int32_t> block_seq;     // [num_blocks] sequence that used it then
  std::vector<uint32_t> slot_stamp;   // [num_state_slots]
  std::vector<int32_t> slot_seq;      // [num_state_slots]
  uint32_t call = 0;
};
absl::Status ValidateStepPlan(const StepPlan& plan, const StepPlanLimits& limits,
                              PlanCheckScratch* scratch = nullptr);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_RUNTIME_STEP_PLAN_H_
