#include "scheduler/state_slots.h"

#include "engine/check.h"

namespace hybridserve::scheduler {

StateSlotPool::StateSlotPool(int64_t num_slots)
    : num_slots_(num_slots), in_use_(num_slots, 0) {
  for (int64_t s = num_slots - 1; s >= 0; --s) free_.push_back(static_cast<int32_t>(s));
}

std::optional<int32_t> StateSlotPool::Acquire() {
  if (free_.empty()) return std::nullopt;
  const int32_t slot = free_.back();
  free_.pop_back();
  in_use_[slot] = 1;
  return slot;
}

void StateSlotPool::Release(int32_t slot) {
  HS_CHECK(slot >= 0 && slot < num_slots_ && in_use_[slot]);
  in_use_[slot] = 0;
  free_.push_back(slot);
}

}  // namespace hybridserve::scheduler
