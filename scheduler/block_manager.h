// BlockManager: the KV cache's free list and each sequence's block table, on
// the host. Blocks are handed out whole; a sequence of n tokens holds
// ceil(n / block_tokens) blocks.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_SCHEDULER_BLOCK_MANAGER_H_
#define HYBRIDSERVE_SCHEDULER_BLOCK_MANAGER_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace hybridserve::scheduler {

class BlockManager {
 public:
  // num_blocks == 0: a model without attention layers (nothing to allocate).
  BlockManager(int64_t num_blocks, int64_t block_tokens);

  int64_t num_blocks() const { return num_blocks_; }
  int64_t block_tokens() const { return block_tokens_; }
  int64_t num_free() const { return static_cast<int64_t>(free_.size()); }
  bool has_kv() const { return num_blocks_ > 0; }

  // Blocks needed for sequence `seq` to hold `num_tokens` tokens in all.
  int64_t BlocksNeeded(int64_t seq, int64_t num_tokens) const;
  // Grows `seq`'s table to hold `num_tokens` tokens. False, and nothing
  // changed, when too few blocks are free.
  bool Grow(int64_t seq, int64_t num_tokens);
  // Returns all of `seq`'s blocks to the free list (unknown seq: no-op).
  void Free(int64_t seq);
  // REQUIRES: seq holds blocks (or the model has no KV).
  const std::vector<int32_t>& Table(int64_t seq) const;

  // Checks invariants: every block is free or owned by exactly one sequence.
  bool CheckInvariants() const;

 private:
  int64_t num_blocks_;
  int64_t block_tokens_;
  std::vector<int32_t> free_;  // stack; low ids handed out first
  absl::flat_hash_map<int64_t, std::vector<int32_t>> tables_;
  static const std::vector<int32_t> kEmpty;
};

}  // namespace hybridserve::scheduler

#endif  // HYBRIDSERVE_SCHEDULER_BLOCK_MANAGER_H_
