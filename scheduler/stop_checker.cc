#include "scheduler/stop_checker.h"

#include <algorithm>
#include <utility>

namespace hybridserve::scheduler {

StopChecker::StopChecker(const std::vector<std::string>& stop_strings,
                         bool include_stop_str_in_output)
    : include_stop_str_(include_stop_str_in_output) {
  for (int i = 0; i < static_cast<int>(stop_strings.size()); ++i) {
    const std::string& s = stop_strings[i];
    if (s.empty()) continue;
    const bool duplicate =
        std::any_of(patterns_.begin(), patterns_.end(),
                    [&](const Pattern& p) { return p.text == s; });
    if (duplicate) continue;
    Pattern p;
    p.text = s;
    p.index = i;
    p.failure.assign(s.size(), 0);
    for (size_t k = 1, m = 0; k < s.size(); ++k) {
      while (m > 0 && s[k] != s[m]) m = p.failure[m - 1];
      if (s[k] == s[m]) ++m;
      p.failure[k] = static_cast<int32_t>(m);
    }
    patterns_.push_back(std::move(p));
  }
}

StopChecker::Result StopChecker::Feed(std::string_view new_text) {
  if (stopped()) return {"", true};
  const size_t base = pending_.size();
  pending_.append(new_text);
  for (size_t k = 0; k < new_text.size(); ++k) {
    const char c = new_text[k];
    const Pattern* best = nullptr;
    for (Pattern& p : patterns_) {
      int32_t m = p.matched;  // < p.text.size(): a full match returns
      while (m > 0 && p.text[m] != c) m = p.failure[m - 1];
      if (p.text[m] == c) ++m;
      p.matched = m;
      if (m == static_cast<int32_t>(p.text.size()) &&
          (best == nullptr || p.text.size() > best->text.size())) {
        best = &p;
      }
    }
    if (best != nullptr) {
      // The match lies within pending_: before this piece, at most the held
      // bytes (>= best's partial match) precede it.
      const size_t end = base + k + 1;
      Result result;
      result.stopped = true;
      result.emit = pending_.substr(
          0, include_stop_str_ ? end : end - best->text.size());
      matched_index_ = best->index;
      pending_.clear();
      return result;
    }
  }
  size_t held = 0;
  if (!include_stop_str_) {
    for (const Pattern& p : patterns_) {
      held = std::max(held, static_cast<size_t>(p.matched));
    }
  }
  Result result;
  result.emit = pending_.substr(0, pending_.size() - held);
  pending_.erase(0, pending_.size() - held);
  return result;
}

std::string StopChecker::Flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  for (Pattern& p : patterns_) p.matched = 0;
  return out;
}

}  // namespace hybridserve::scheduler
