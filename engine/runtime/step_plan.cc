#include "engine/runtime/step_plan.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace hybridserve::engine {

absl::Status ValidateStepPlan(const StepPlan& plan, const StepPlanLimits& limits,
                              PlanCheckScratch* scratch) {
  PlanCheckScratch local;
  PlanCheckScratch& sc = scratch != nullptr ? *scratch : local;
  if (sc.block_stamp.size() != static_cast<size_t>(limits.num_blocks) ||
      sc.slot_stamp.size() != static_cast<size_t>(limits.num_state_slots) ||
      sc.call == UINT32_MAX) {
    sc.block_stamp.assign(limits.num_blocks, 0);
    sc.block_seq.assign(limits.num_blocks, -1);
    sc.slot_stamp.assign(limits.num_state_slots, 0);
    sc.slot_seq.assign(limits.num_state_slots, -1);
    sc.call = 0;
  }
  const uint32_t call = ++sc.call;
  const int64_t t = plan.num_tokens();
  const int64_t s = plan.num_seqs();
  auto bad = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("invalid StepPlan: ", parts...));
  };
  if (t == 0 || s == 0) return bad("no tokens or no sequences");
  if (t > limits.max_num_tokens) {
    return bad(t, " tokens exceed the workspace of ", limits.max_num_tokens);
  }
  if (static_cast<int64_t>(plan.positions.size()) != t) {
    return bad("positions has ", plan.positions.size(), " entries for ", t, " tokens");
  }
  if (static_cast<int64_t>(plan.query_start.size()) != s + 1) {
    return bad("query_start has ", plan.query_start.size(), " entries for ", s,
               " sequences");
  }
  if (plan.query_start[0] != 0 || plan.query_start[s] != t) {
    return bad("query_start must run from 0 to ", t);
  }
  for (int64_t i = 0; i < t; ++i) {
    if (plan.token_ids[i] < 0 || plan.token_ids[i] >= limits.vocab_size) {
      return bad("token id ", plan.token_ids[i], " at index ", i,
                 " outside the vocabulary [0, ", limits.vocab_size, ")");
    }
  }
  const bool has_kv = limits.num_blocks > 0;
  const int64_t width = plan.block_table_width;
  if (has_kv && (width <= 0 ||
                 static_cast<int64_t>(plan.block_table.size()) != s * width)) {
    return bad("block_table has ", plan.block_table.size(), " entries for ", s,
               " sequences of width ", width);
  }
  const bool has_state = limits.num_state_slots > 0;
  if (has_state && (static_cast<int64_t>(plan.state_slot.size()) != s ||
                    static_cast<int64_t>(plan.state_is_fresh.size()) != s)) {
    return bad("state_slot / state_is_fresh have ", plan.state_slot.size(), " / ",
               plan.state_is_fresh.size(), " entries for ", s, " sequences");
  }
  for (int64_t q = 0; q < s; ++q) {
    const int64_t n_new = plan.query_start[q + 1] - plan.query_start[q];
    const int64_t ctx = plan.context_len[q];
    if (n_new <= 0) return bad("sequence ", q, " has no new tokens");
    if (ctx < n_new) return bad("sequence ", q, " context ", ctx, " < new tokens ", n_new);
    if (ctx > limits.max_context_len) {
      return bad("sequence ", q, " context ", ctx, " exceeds ", limits.max_context_len);
    }
    for (int64_t j = 0; j < n_new; ++j) {
      const int64_t expect = ctx - n_new + j;
      if (plan.positions[plan.query_start[q] + j] != expect) {
        return bad("sequence ", q, " token ", j, " has position ",
                   plan.positions[plan.query_start[q] + j], ", expected ", expect);
      }
    }
    if (has_state) {
      const int32_t slot = plan.state_slot[q];
      if (slot < 0 || slot >= limits.num_state_slots) {
        return bad("sequence ", q, " state slot ", slot, " outside [0, ",
                   limits.num_state_slots, ")");
      }
      if (sc.slot_stamp[slot] == call) {
        return bad("state slot ", slot, " used by sequences ", sc.slot_seq[slot], " and ", q);
      }
      sc.slot_stamp[slot] = call;
      sc.slot_seq[slot] = static_cast<int32_t>(q);
      const bool starts_at_zero = ctx == n_new;
      if ((plan.state_is_fresh[q] != 0) != starts_at_zero) {
        return bad("sequence ", q, " has state_is_fresh ", int(plan.state_is_fresh[q]),
                   " but its first new token is at position ", ctx - n_new,
                   " (fresh exactly when it is 0)");
      }
    }
    if (!has_kv) continue;
    const int64_t needed = (ctx + limits.block_tokens - 1) / limits.block_tokens;
    if (needed > width) {
      return bad("sequence ", q, " needs ", needed, " blocks, table width ", width);
    }
    for (int64_t b = 0; b < needed; ++b) {
      const int32_t block = plan.block_table[q * width + b];
      if (block < 0 || block >= limits.num_blocks) {
        return bad("sequence ", q, " block ", block, " outside [0, ",
                   limits.num_blocks, ")");
      }
      if (sc.block_stamp[block] == call && sc.block_seq[block] != q) {
        return bad("block ", block, " used by sequences ", sc.block_seq[block], " and ", q);
      }
      sc.block_stamp[block] = call;
      sc.block_seq[block] = static_cast<int32_t>(q);
    }
  }
  for (int32_t idx : plan.logits_indices) {
    if (idx < 0 || idx >= t) return bad("logits index ", idx, " outside [0, ", t, ")");
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine
