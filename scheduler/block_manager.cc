#include "scheduler/block_manager.h"

#include <algorithm>

namespace hybridserve::scheduler {

const std::vector<int32_t> BlockManager::kEmpty;

BlockManager::BlockManager(int64_t num_blocks, int64_t block_tokens)
    : num_blocks_(num_blocks), block_tokens_(block_tokens) {
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int64_t BlockManager::BlocksNeeded(int64_t seq, int64_t num_tokens) const {
  if (!has_kv()) return 0;
  const int64_t want = (num_tokens + block_tokens_ - 1) / block_tokens_;
  auto it = tables_.find(seq);
  const int64_t have = it == tables_.end() ? 0 : static_cast<int64_t>(it->second.size());
  return std::max<int64_t>(0, want - have);
}

bool BlockManager::Grow(int64_t seq, int64_t num_tokens) {
  if (!has_kv()) return true;
  const int64_t want = (num_tokens + block_tokens_ - 1) / block_tokens_;
  auto it = tables_.find(seq);
  const int64_t have = it == tables_.end() ? 0 : static_cast<int64_t>(it->second.size());
  const int64_t need = want - have;
  if (need <= 0) return true;
  if (need > num_free()) return false;
  std::vector<int32_t>& table = it == tables_.end() ? tables_[seq] : it->second;
  for (int64_t i = 0; i < need; ++i) {
    table.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void BlockManager::Free(int64_t seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  for (auto b = it->second.rbegin(); b != it->second.rend(); ++b) free_.push_back(*b);
  tables_.erase(it);
}

const std::vector<int32_t>& BlockManager::Table(int64_t seq) const {
  auto it = tables_.find(seq);
  return it == tables_.end() ? kEmpty : it->second;
}

bool BlockManager::CheckInvariants() const {
  std::vector<int> owners(num_blocks_, 0);
  for (int32_t b : free_) {
    if (b < 0 || b >= num_blocks_) return false;
    ++owners[b];
  }
  for (const auto& [seq, table] : tables_) {
    for (int32_t b : table) {
      if (b < 0 || b >= num_blocks_) return false;
      ++owners[b];
    }
  }
  return std::all_of(owners.begin(), owners.end(), [](int n) { return n == 1; });
}

}  // namespace hybridserve::scheduler
