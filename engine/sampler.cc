#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "absl/strings/str_cat.h"
#include "engine/check.h"

// The raw-logprob helpers here (log-sum-exp, top-N) are local rather than
// engine/runtime/logprobs.cc's: this file is part of hs_engine_core, which must
// not depend on hs_engine, and the hot path needs allocation-free versions.
// tests/unit/sampler_test.cc checks that both agree.

namespace hybridserve::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
// Below this temperature sampling is greedy (vLLM's _SAMPLING_EPS).
constexpr float kGreedyTemperature = 1e-5f;
// top_p first searches only the tokens with at least this weight (relative to
// the top token's 1) when they hold top_p of the mass; see Sample.
constexpr float kTopPPrefilter = 1e-4f;

struct RowStats {
  float max = -kInf;   // over non-NaN entries (-inf if none)
  int32_t argmax = 0;  // lowest id among the maxima (0 if none)
  bool has_nan = false;
};

// Hot loops work on blocks of kLanes independent accumulators, which the
// compiler turns into SIMD code (basic-block vectorization at -O2) and which
// break the dependency chain of a scalar reduction.
constexpr int kLanes = 8;

// Max (ignoring NaN), NaN presence and the first index of the max, in two
// passes. With SSE2 (every x86-64) both passes are explicit SIMD: GCC does not
// vectorize the NaN-aware max reduction at -O2, and this runs on every row the
// engine samples (a greedy step at 256 sequences is 256 rows).
RowStats ScanRow(absl::Span<const float> x) {
  const float* p = x.data();
  const size_t n = x.size();
  RowStats s;
  size_t i = 0;
  float mx = -kInf;
  bool has_nan = false;
#if defined(__SSE2__)
  // _mm_max_ps(v, m) returns m when v is NaN, so NaN never wins.
  __m128 max0 = _mm_set1_ps(-kInf), max1 = max0;
  __m128 nan0 = _mm_setzero_ps(), nan1 = nan0;
  for (; i + 8 <= n; i += 8) {
    const __m128 a = _mm_loadu_ps(p + i), b = _mm_loadu_ps(p + i + 4);
    max0 = _mm_max_ps(a, max0);
    max1 = _mm_max_ps(b, max1);
    nan0 = _mm_or_ps(nan0, _mm_cmpunord_ps(a, a));
    nan1 = _mm_or_ps(nan1, _mm_cmpunord_ps(b, b));
  }
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, _mm_max_ps(max0, max1));
  for (float v : lanes) mx = v > mx ? v : mx;
  has_nan = _mm_movemask_ps(_mm_or_ps(nan0, nan1)) != 0;
#endif
  for (; i < n; ++i) {
    mx = p[i] > mx ? p[i] : mx;
    has_nan |= std::isnan(p[i]);
  }
  s.max = mx;
  s.has_nan = has_nan;
  size_t j = 0;
#if defined(__SSE2__)
  const __m128 target = _mm_set1_ps(mx);
  for (; j + 4 <= n; j += 4) {
    const int mask = _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(p + j), target));
    if (mask != 0) {
      s.argmax = static_cast<int32_t>(j + __builtin_ctz(mask));
      return s;
    }
  }
#endif
  for (; j < n; ++j) {
    if (p[j] == mx) {
      s.argmax = static_cast<int32_t>(j);
      break;
    }
  }
  return s;
}

// log(sum(exp(x))) over non-NaN entries, given their maximum.
double LogSumExpGivenMax(absl::Span<const float> x, float mx) {
  if (!std::isfinite(mx)) return mx;
  double sum = 0.0;
  for (float v : x) {
    if (!std::isnan(v)) sum += std::exp(v - mx);
  }
  return static_cast<double>(mx) + std::log(sum);
}

// vLLM's rank: tokens whose logit is >= the token's own (NaN: last).
int32_t RankOf(absl::Span<const float> x, int32_t token) {
  const float v = x[token];
  if (std::isnan(v)) return static_cast<int32_t>(x.size());
  const size_t n = x.size();
  int32_t lane_count[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) lane_count[k] += (x[i + k] >= v);
  }
  int32_t rank = 0;
  for (; i < n; ++i) rank += (x[i] >= v);
  for (int k = 0; k < kLanes; ++k) rank += lane_count[k];
  return rank;
}

// A key whose order is "more likely": higher logit, then lower id.
// REQUIRES: z is not NaN.
uint64_t LikelihoodKey(float z, int32_t id) {
  if (z == 0.0f) z = 0.0f;  // -0 and +0 tie
  uint32_t bits;
  std::memcpy(&bits, &z, sizeof(bits));
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (static_cast<uint64_t>(bits) << 32) |
         (0xFFFFFFFFu - static_cast<uint32_t>(id));
}

int32_t KeyId(uint64_t key) {
  return static_cast<int32_t>(0xFFFFFFFFu - static_cast<uint32_t>(key));
}

// The n most likely non-NaN entries, most likely first, ties by lower id.
// `heap` is scratch.
std::vector<TokenLogprob> TopN(absl::Span<const float> x, int n, double lse,
                               std::vector<uint64_t>* heap) {
  std::vector<TokenLogprob> top;
  if (n <= 0) return top;
  heap->clear();
  // A min-heap of keys: its front is the least likely of the kept ones.
  for (int32_t i = 0; i < static_cast<int32_t>(x.size()); ++i) {
    if (std::isnan(x[i])) continue;
    const uint64_t key = LikelihoodKey(x[i], i);
    if (static_cast<int>(heap->size()) < n) {
      heap->push_back(key);
      std::push_heap(heap->begin(), heap->end(), std::greater<uint64_t>());
    } else if (key > heap->front()) {
      std::pop_heap(heap->begin(), heap->end(), std::greater<uint64_t>());
      heap->back() = key;
      std::push_heap(heap->begin(), heap->end(), std::greater<uint64_t>());
    }
  }
  std::sort(heap->begin(), heap->end(), std::greater<uint64_t>());
  top.reserve(heap->size());
  for (uint64_t key : *heap) {
    const int32_t id = KeyId(key);
    top.push_back({id, static_cast<double>(x[id]) - lse});
  }
  return top;
}

// top_p over `keys` (the candidates' LikelihoodKeys, reordered here): finds
// the first token, most likely first, at which the running mass
// (sum of w) / total reaches top_p; it and every token before it are kept.
// Returns how many are kept, which are then keys[0, count) in some order; 0
// if the mass never reaches top_p (nothing cut). A weighted quickselect:
// expected O(n), no full sort. Masses are summed in double in partition
// order, so only a boundary met to the last bits can come out differently
// from a sequential sum.
size_t FindTopPCut(absl::Span<uint64_t> keys, const float* w, double total,
                   double top_p) {
  auto weight = [w](uint64_t key) { return static_cast<double>(w[KeyId(key)]); };
  auto reached = [&](double mass) { return mass / total >= top_p; };
  uint64_t* const base = keys.data();
  size_t lo = 0, hi = keys.size();
  double before = 0.0;  // mass of keys[0, lo), all ranked before [lo, hi)
  for (int round = 0; hi - lo > 32 && round < 64; ++round) {
    const uint64_t a = base[lo], b = base[lo + (hi - lo) / 2], c = base[hi - 1];
    const uint64_t pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
    uint64_t* const mid = std::partition(
        base + lo, base + hi, [pivot](uint64_t k) { return k > pivot; });
    const size_t m = static_cast<size_t>(mid - base);
    double better = 0.0;
    for (size_t j = lo; j < m; ++j) better += weight(base[j]);
    if (reached(before + better)) {
      hi = m;
      continue;
    }
    before += better;
    std::iter_swap(mid, std::find(mid, base + hi, pivot));
    before += weight(pivot);
    if (reached(before)) return m + 1;
    lo = m + 1;
  }
  std::sort(base + lo, base + hi, std::greater<uint64_t>());
  for (size_t j = lo; j < hi; ++j) {
    before += weight(base[j]);
    if (reached(before)) return j + 1;
  }
  return 0;
}

// The k-th largest value of z (1-based; REQUIRES 1 <= k <= z.size(), no
// NaN). Small k: one pass with a size-k heap; large k: nth_element on a copy.
float KthLargest(absl::Span<const float> z, int32_t k,
                 std::vector<float>* values) {
  if (k > 1024) {
    values->assign(z.begin(), z.end());
    std::nth_element(values->begin(), values->begin() + (k - 1), values->end(),
                     std::greater<float>());
    return (*values)[k - 1];
  }
  // A min-heap of the k largest values so far.
  values->assign(z.begin(), z.begin() + k);
  std::make_heap(values->begin(), values->end(), std::greater<float>());
  for (size_t i = k; i < z.size(); ++i) {
    if (z[i] > values->front()) {
      std::pop_heap(values->begin(), values->end(), std::greater<float>());
      values->back() = z[i];
      std::push_heap(values->begin(), values->end(), std::greater<float>());
    }
  }
  return values->front();
}

}  // namespace

absl::Status Validate(const SamplingParams& p, int max_logprobs) {
  auto bad = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  if (!(p.temperature >= 0)) {
    return bad("temperature must be >= 0, got ", p.temperature);
  }
  if (!std::isfinite(p.temperature)) {
    return bad("temperature must be finite, got ", p.temperature);
  }
  if (p.top_k < -1) {
    return bad("top_k must be -1 or 0 (off) or >= 1, got ", p.top_k);
  }
  if (!(p.top_p > 0 && p.top_p <= 1)) {
    return bad("top_p must be in (0, 1], got ", p.top_p);
  }
  if (!(p.min_p >= 0 && p.min_p <= 1)) {
    return bad("min_p must be in [0, 1], got ", p.min_p);
  }
  if (!(p.repetition_penalty > 0 && std::isfinite(p.repetition_penalty))) {
    return bad("repetition_penalty must be finite and > 0, got ",
               p.repetition_penalty);
  }
  if (!(p.presence_penalty >= -2 && p.presence_penalty <= 2)) {
    return bad("presence_penalty must be in [-2, 2], got ", p.presence_penalty);
  }
  if (!(p.frequency_penalty >= -2 && p.frequency_penalty <= 2)) {
    return bad("frequency_penalty must be in [-2, 2], got ",
               p.frequency_penalty);
  }
  if (p.logprobs < 0 || p.logprobs > max_logprobs) {
    return bad("logprobs must be in [0, ", max_logprobs, "], got ", p.logprobs);
  }
  if (p.prompt_logprobs < 0 || p.prompt_logprobs > max_logprobs) {
    return bad("prompt_logprobs must be in [0, ", max_logprobs, "], got ",
               p.prompt_logprobs);
  }
  return absl::OkStatus();
}

void MaskTokens(absl::Span<float> logits, absl::Span<const int32_t> ids) {
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[id] = -kInf;
  }
}

std::array<uint32_t, 4> Philox4x32(std::array<uint32_t, 4> ctr,
                                   std::array<uint32_t, 2> key) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kW0;
      key[1] += kW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kM0) * ctr[0];
    const uint64_t p1 = static_cast<uint64_t>(kM1) * ctr[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32);
    const uint32_t lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32);
    const uint32_t lo1 = static_cast<uint32_t>(p1);
    ctr = {hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0};
  }
  return ctr;
}

double SampleUniform(uint64_t seed, int64_t token_index) {
  const uint64_t index = static_cast<uint64_t>(token_index);
  const std::array<uint32_t, 4> out = Philox4x32(
      {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0, 0},
      {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  const uint64_t bits = (static_cast<uint64_t>(out[0]) << 32 | out[1]) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

SampleResult Sampler::Sample(const SampleInput& in) {
  HS_CHECK(!in.logits.empty() && in.params != nullptr);
  const SamplingParams& p = *in.params;
  const absl::Span<const float> raw = in.logits;
  const int32_t vocab = static_cast<int32_t>(raw.size());
  auto in_vocab = [vocab](int32_t id) { return id >= 0 && id < vocab; };
  const RowStats raw_stats = ScanRow(raw);

  // 1. Penalties and bans, on a copy (only when there is something to do).
  const bool repetition = p.repetition_penalty != 1.0f;
  const bool output_penalties =
      p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  absl::Span<const float> z = raw;
  RowStats z_stats = raw_stats;
  if (repetition || output_penalties || !in.banned_ids.empty() ||
      raw_stats.has_nan) {
    penalized_.assign(raw.begin(), raw.end());
    for (float& v : penalized_) {
      if (std::isnan(v)) v = -kInf;
    }
    if (repetition) {
      seen_.resize(vocab, 0);
      auto mark = [&](absl::Span<const int32_t> ids) {
        for (int32_t id : ids) {
          if (!in_vocab(id) || seen_[id]) continue;
          seen_[id] = 1;
          touched_.push_back(id);
          float& v = penalized_[id];
          v = v > 0 ? v / p.repetition_penalty : v * p.repetition_penalty;
        }
      };
      mark(in.prompt_ids);
      mark(in.output_ids);
      for (int32_t id : touched_) seen_[id] = 0;
      touched_.clear();
    }
    if (output_penalties) {
      counts_.resize(vocab, 0);
      for (int32_t id : in.output_ids) {
        if (!in_vocab(id)) continue;
        if (counts_[id]++ == 0) touched_.push_back(id);
      }
      for (int32_t id : touched_) {
        penalized_[id] -= p.frequency_penalty * static_cast<float>(counts_[id]) +
                          p.presence_penalty;
        counts_[id] = 0;
      }
      touched_.clear();
    }
    MaskTokens(absl::MakeSpan(penalized_), in.banned_ids);
    z = penalized_;
    z_stats = ScanRow(z);
  }

  SampleResult result;
  double raw_lse = 0.0;
  bool have_raw_lse = false;
  const float z_max = z_stats.max;
  if (p.temperature < kGreedyTemperature || z_max == -kInf) {
    result.token = z_max == -kInf ? raw_stats.argmax : z_stats.argmax;
  } else {
    // 2-3. Candidates (all tokens, or those with z >= the k-th largest z)
    // and their weights.
    weights_.resize(vocab);
    const float temperature = p.temperature;
    auto weight = [&](int32_t id) {
      return std::exp((z[id] - z_max) / temperature);
    };
    const bool top_k = p.top_k > 0 && p.top_k < vocab;
    const bool top_p = p.top_p < 1.0f;
    const bool min_p = p.min_p > 0.0f;
    const int32_t* cand = nullptr;  // ascending ids; nullptr: all tokens
    int32_t num_cand = vocab;
    double cand_mass = 0.0;  // sum of w over the candidates
    // Mass of the candidates with w >= kTopPPrefilter (for top_p only).
    double prefilter_mass = 0.0;
    if (top_k) {
      const float threshold = KthLargest(z, p.top_k, &values_);
      cand_.clear();
      for (int32_t i = 0; i < vocab; ++i) {
        if (z[i] >= threshold) cand_.push_back(i);
      }
      cand = cand_.data();
      num_cand = static_cast<int32_t>(cand_.size());
      for (int32_t id : cand_) {
        const float w = weights_[id] = weight(id);
        cand_mass += w;
        if (w >= kTopPPrefilter) prefilter_mass += w;
      }
    } else if (top_p) {
      for (int32_t i = 0; i < vocab; ++i) {
        const float w = weights_[i] = weight(i);
        cand_mass += w;
        prefilter_mass += w >= kTopPPrefilter ? w : 0.0f;
      }
    } else {
      for (int32_t i = 0; i < vocab; ++i) cand_mass += (weights_[i] = weight(i));
    }
    // At temperature 1 on the raw row the weights are the raw log-sum-exp's
    // terms (the same floats, summed in the same order).
    if (!top_k && z.data() == raw.data() && temperature == 1.0f &&
        std::isfinite(raw_stats.max)) {
      raw_lse = static_cast<double>(raw_stats.max) + std::log(cand_mass);
      have_raw_lse = true;
    }
    auto cand_id = [&](int32_t j) { return cand ? cand[j] : j; };

    // 4-5. top_p, then min_p. Only tokens that min_p keeps (and with w > 0)
    // take part in the top_p search: min_p keeps a most-likely-first prefix
    // too, so where the top_p cut would lie beyond it, min_p decides alone.
    // When the tokens with w >= kTopPPrefilter (another such prefix) already
    // hold top_p of the mass, the cut lies among them and only they are
    // searched.
    size_t num_top_p_kept = 0;
    if (top_p) {
      const bool prefilter = prefilter_mass / cand_mass >= p.top_p;
      for (const float floor : {prefilter ? kTopPPrefilter : 0.0f, 0.0f}) {
        keys_.clear();
        for (int32_t j = 0; j < num_cand; ++j) {
          const int32_t id = cand_id(j);
          const float w = weights_[id];
          if (w > 0.0f && w >= floor && (!min_p || w >= p.min_p)) {
            keys_.push_back(LikelihoodKey(z[id], id));
          }
        }
        num_top_p_kept = FindTopPCut(absl::MakeSpan(keys_), weights_.data(),
                                     cand_mass, p.top_p);
        if (num_top_p_kept > 0 || floor == 0.0f) break;
      }
    }
    // keys_[0, num_top_p_kept) are exactly the kept tokens: few of them are
    // sorted into the candidate list; many are marked in seen_ (zeroed again
    // below) and the walk goes over the vocabulary.
    const bool top_p_sorted =
        num_top_p_kept > 0 && num_top_p_kept * 8 <= static_cast<size_t>(num_cand);
    const bool top_p_marked = num_top_p_kept > 0 && !top_p_sorted;
    if (top_p_sorted) {
      cand_.resize(num_top_p_kept);
      for (size_t j = 0; j < num_top_p_kept; ++j) cand_[j] = KeyId(keys_[j]);
      std::sort(cand_.begin(), cand_.end());
      cand = cand_.data();
      num_cand = static_cast<int32_t>(num_top_p_kept);
    } else if (top_p_marked) {
      seen_.resize(vocab, 0);
      for (size_t j = 0; j < num_top_p_kept; ++j) seen_[KeyId(keys_[j])] = 1;
    }
    const bool filter_min_p = min_p && num_top_p_kept == 0;
    auto kept = [&](int32_t id) {
      if (top_p_marked) return seen_[id] != 0;
      return weights_[id] > 0.0f && (!filter_min_p || weights_[id] >= p.min_p);
    };

    // 6. Draw over the kept tokens in ascending id order.
    double total = cand_mass;
    if (filter_min_p || num_top_p_kept > 0) {
      total = 0.0;
      for (int32_t j = 0; j < num_cand; ++j) {
        const int32_t id = cand_id(j);
        if (kept(id)) total += weights_[id];
      }
    }
    const double target = SampleUniform(in.seed, in.token_index) * total;
    // If rounding leaves no token below (u × total rounded up to total), the
    // last kept one; if no weight is positive (+inf logits), the argmax.
    result.token = z_stats.argmax;
    double running = 0.0;
    for (int32_t j = 0; j < num_cand; ++j) {
      const int32_t id = cand_id(j);
      if (!kept(id)) continue;
      running += weights_[id];
      result.token = id;
      if (running > target) break;
    }
    if (top_p_marked) {
      for (size_t j = 0; j < num_top_p_kept; ++j) seen_[KeyId(keys_[j])] = 0;
    }
  }

  if (!in.want_logprobs) return result;
  if (!have_raw_lse) raw_lse = LogSumExpGivenMax(raw, raw_stats.max);
  result.logprob = static_cast<double>(raw[result.token]) - raw_lse;
  result.rank = RankOf(raw, result.token);
  result.top = TopN(raw, std::min(p.logprobs, vocab), raw_lse, &heap_);
  return result;
}

std::vector<SampleResult> Sampler::PromptLogprobs(
    absl::Span<const float> rows, int64_t vocab_size,
    absl::Span<const int32_t> prompt_ids, int64_t first_position, int top_n) {
  HS_CHECK(vocab_size > 0 && rows.size() % vocab_size == 0 && top_n >= 0);
  const int64_t num_rows = static_cast<int64_t>(rows.size()) / vocab_size;
  HS_CHECK(first_position >= 0 &&
           first_position + num_rows < static_cast<int64_t>(prompt_ids.size()));
  std::vector<SampleResult> out(num_rows);
  for (int64_t r = 0; r < num_rows; ++r) {
    const absl::Span<const float> row = rows.subspan(r * vocab_size, vocab_size);
    const double lse = LogSumExpGivenMax(row, ScanRow(row).max);
    SampleResult& res = out[r];
    res.token = prompt_ids[first_position + r + 1];
    HS_CHECK(res.token >= 0 && res.token < vocab_size);
    res.logprob = static_cast<double>(row[res.token]) - lse;
    res.rank = RankOf(row, res.token);
    res.top = TopN(row, static_cast<int>(std::min<int64_t>(top_n, vocab_size)),
                   lse, &heap_);
  }
  return out;
}

}  // namespace hybridserve::engine
