#include "engine/runtime/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace hybridserve::engine {

double LogSumExp(absl::Span<const float> logits) {
  double mx = -std::numeric_limits<double>::infinity();
  for (float x : logits) mx = std::max<double>(mx, x);
  if (!std::isfinite(mx)) return mx;
  double sum = 0.0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - mx);
  return mx + std::log(sum);
}

std::vector<TokenLogprob> TopLogprobs(absl::Span<const float> logits, int n) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  const int64_t k = std::min<int64_t>(std::max(n, 0), vocab);
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  auto better = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), better);
  const double lse = LogSumExp(logits);
  std::vector<TokenLogprob> top(k);
  for (int64_t i = 0; i < k; ++i) top[i] = {ids[i], logits[ids[i]] - lse};
  return top;
}

int32_t Argmax(absl::Span<const float> logits) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(logits.size()); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

}  // namespace hybridserve::engine
