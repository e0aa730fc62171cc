// StateSlotPool: the free list of SSM state slots (host side). A running
// sequence of a model with SSM layers holds exactly one slot; the engine zeroes
// it when the sequence's first step says state_is_fresh.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_SCHEDULER_STATE_SLOTS_H_
#define HYBRIDSERVE_SCHEDULER_STATE_SLOTS_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace hybridserve::scheduler {

class StateSlotPool {
 public:
  // num_slots == 0: a model without SSM layers (sequences need no slot).
  explicit StateSlotPool(int64_t num_slots);

  bool has_slots() const { return num_slots_ > 0; }
  int64_t num_slots() const { return num_slots_; }
  int64_t num_free() const { return static_cast<int64_t>(free_.size()); }

  // A free slot, lowest first; nullopt when none is free.
  std::optional<int32_t> Acquire();
  // REQUIRES: `slot` was acquired and not released since.
  void Release(int32_t slot);

 private:
  int64_t num_slots_;
  std::vector<int32_t> free_;       // stack
  std::vector<uint8_t> in_use_;     // [num_slots]
};

}  // namespace hybridserve::scheduler

#endif  // HYBRIDSERVE_SCHEDULER_STATE_SLOTS_H_
