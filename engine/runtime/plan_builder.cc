#include "engine/runtime/plan_builder.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace hybridserve::engine {

PlanBuilder::PlanBuilder(int64_t num_blocks, int64_t block_tokens,
                         int64_t num_state_slots)
    : num_blocks_(num_blocks), block_tokens_(block_tokens),
      num_state_slots_(num_state_slots) {
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
  for (int64_t s = num_state_slots - 1; s >= 0; --s) {
    free_slots_.push_back(static_cast<int32_t>(s));
  }
}

int64_t PlanBuilder::context_len(int64_t seq_id) const {
  auto it = seqs_.find(seq_id);
  return it == seqs_.end() ? 0 : it->second.len;
}

absl::StatusOr<StepPlan> PlanBuilder::Build(absl::Span<const Chunk> chunks) {
  const bool has_kv = num_blocks_ > 0;
  // Plan: count blocks needed before changing anything.
  int64_t blocks_needed = 0;
  int64_t slots_needed = 0;
  absl::flat_hash_set<int64_t> seen;
  for (const Chunk& c : chunks) {
    if (c.tokens.empty()) return absl::InvalidArgumentError("empty chunk");
    if (!seen.insert(c.seq_id).second) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", c.seq_id, " twice in one plan"));
    }
    auto it = seqs_.find(c.seq_id);
    if (it == seqs_.end()) ++slots_needed;
    const int64_t len = it == seqs_.end() ? 0 : it->second.len;
    const int64_t have = it == seqs_.end() ? 0 : it->second.blocks.size();
    const int64_t need = (len + static_cast<int64_t>(c.tokens.size()) + block_tokens_ - 1) / block_tokens_;
    blocks_needed += std::max<int64_t>(0, need - have);
  }
  if (has_kv && blocks_needed > num_free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "need ", blocks_needed, " KV blocks, ", num_free_blocks(), " free"));
  }
  if (num_state_slots_ > 0 && slots_needed > num_free_state_slots()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "need ", slots_needed, " state slots, ", num_free_state_slots(), " free"));
  }
  // Apply.
  StepPlan plan;
  plan.query_start.push_back(0);
  int64_t width = 1;
  for (const Chunk& c : chunks) {
    const bool is_new = !seqs_.contains(c.seq_id);
    Seq& seq = seqs_[c.seq_id];
    if (is_new && num_state_slots_ > 0) {
      seq.state_slot = free_slots_.back();
      free_slots_.pop_back();
    }
    const int64_t need = (seq.len + static_cast<int64_t>(c.tokens.size()) + block_tokens_ - 1) / block_tokens_;
    while (static_cast<int64_t>(seq.blocks.size()) < need && !free_.empty()) {
      seq.blocks.push_back(free_.back());
      free_.pop_back();
    }
    const int32_t first_token = plan.num_tokens();
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      plan.token_ids.push_back(c.tokens[i]);
      plan.positions.push_back(static_cast<int32_t>(seq.len + i));
      if (c.all_logits || (c.last_logits && i + 1 == c.tokens.size())) {
        plan.logits_indices.push_back(first_token + static_cast<int32_t>(i));
      }
    }
    seq.len += static_cast<int64_t>(c.tokens.size());
    plan.query_start.push_back(plan.num_tokens());
    plan.context_len.push_back(static_cast<int32_t>(seq.len));
    plan.state_slot.push_back(seq.state_slot);
    plan.state_is_fresh.push_back(seq.len == static_cast<int64_t>(c.tokens.size()));
    width = std::max<int64_t>(width, seq.blocks.size());
  }
  plan.block_table_width = static_cast<int32_t>(width);
  plan.block_table.assign(chunks.size() * width, -1);
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Seq& seq = seqs_[chunks[i].seq_id];
    std::copy(seq.blocks.begin(), seq.blocks.end(), plan.block_table.begin() + i * width);
  }
  return plan;
}

absl::StatusOr<PlanBuilder::ForkCopies> PlanBuilder::Fork(int64_t src_seq,
                                                          int64_t dst_seq) {
  auto src = seqs_.find(src_seq);
  if (src == seqs_.end()) {
    return absl::NotFoundError(absl::StrCat("Fork: no sequence ", src_seq));
  }
  if (seqs_.contains(dst_seq)) {
    return absl::AlreadyExistsError(absl::StrCat("Fork: sequence ", dst_seq, " exists"));
  }
  const int64_t blocks = static_cast<int64_t>(src->second.blocks.size());
  if (blocks > num_free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "Fork: need ", blocks, " KV blocks, ", num_free_blocks(), " free"));
  }
  if (num_state_slots_ > 0 && free_slots_.empty()) {
    return absl::ResourceExhaustedError("Fork: no free state slot");
  }
  Seq copy;
  copy.len = src->second.len;
  ForkCopies copies;
  copies.src_blocks = src->second.blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    copy.blocks.push_back(free_.back());
    free_.pop_back();
  }
  copies.dst_blocks = copy.blocks;
  if (num_state_slots_ > 0) {
    copy.state_slot = free_slots_.back();
    free_slots_.pop_back();
    copies.src_slot = src->second.state_slot;
    copies.dst_slot = copy.state_slot;
  }
  seqs_.emplace(dst_seq, std::move(copy));  // invalidates `src`
  return copies;
}

void PlanBuilder::Free(int64_t seq_id) {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) return;
  for (auto b = it->second.blocks.rbegin(); b != it->second.blocks.rend(); ++b) free_.push_back(*b);
  if (num_state_slots_ > 0) free_slots_.push_back(it->second.state_slot);
  seqs_.erase(it);
}

}  // namespace hybridserve::engine
