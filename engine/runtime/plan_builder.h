// PlanBuilder: builds StepPlans for a set of sequences, handing out KV blocks
// and SSM state slots from plain free lists (a slot per sequence, from its
// first chunk until Free). For tools (offline runner) and tests, which drive the
// Engine directly; the server's scheduler has its own block manager.
// Thread-compatible.
#ifndef HYBRIDSERVE_ENGINE_RUNTIME_PLAN_BUILDER_H_
#define HYBRIDSERVE_ENGINE_RUNTIME_PLAN_BUILDER_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/runtime/step_plan.h"

namespace hybridserve::engine {

class PlanBuilder {
 public:
  // `num_blocks` == 0 for models without attention layers; `num_state_slots`
  // == 0 for models without SSM layers (every plan then says slot 0).
  PlanBuilder(int64_t num_blocks, int64_t block_tokens, int64_t num_state_slots = 0);

  struct Chunk {
    int64_t seq_id = 0;            // a sequence is created on first use
    std::vector<int32_t> tokens;   // its next tokens
    bool all_logits = false;       // logits of every token of the chunk
    bool last_logits = true;       // logits of the chunk's last token
  };

  // One plan for `chunks` (one chunk per sequence), allocating blocks for the
  // new tokens and a state slot for each new sequence. On error (out of blocks
  // or slots, empty chunk, sequence twice), nothing changes.
  absl::StatusOr<StepPlan> Build(absl::Span<const Chunk> chunks);
  // What Fork allocated and the Engine must copy (Engine::CopyKvBlocks,
  // Engine::CopyStateSlot) before the new sequence's next step.
  struct ForkCopies {
    std::vector<int32_t> src_blocks;  // the source's blocks, in order
    std::vector<int32_t> dst_blocks;  // the fork's new blocks, same order
    int32_t src_slot = -1;            // -1 without state slots
    int32_t dst_slot = -1;
  };
  // Creates sequence `dst_seq` with the context length of `src_seq`, its own
  // blocks (as many as the source holds) and its own state slot. On error
  // (unknown source, existing destination, out of blocks or slots) nothing
  // changes.
  absl::StatusOr<ForkCopies> Fork(int64_t src_seq, int64_t dst_seq);
  // Frees the sequence's blocks and slot; unknown ids are ignored.
  void Free(int64_t seq_id);

  int64_t num_free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_free_state_slots() const { return static_cast<int64_t>(free_slots_.size()); }
  int64_t context_len(int64_t seq_id) const;

 private:
  struct Seq {
    int64_t len = 0;
    std::vector<int32_t> blocks;
    int32_t state_slot = 0;
  };
  int64_t num_blocks_;
  int64_t block_tokens_;
  int64_t num_state_slots_;
  std::vector<int32_t> free_;  // stack; lowest id handed out first
  std::vector<int32_t> free_slots_;  // stack; lowest slot handed out first
  absl::flat_hash_map<int64_t, Seq> seqs_;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_RUNTIME_PLAN_BUILDER_H_
