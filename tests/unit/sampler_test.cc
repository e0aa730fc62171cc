#include "engine/sampler.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/runtime/logprobs.h"
#include "engine/sampling_params.h"
#include "gtest/gtest.h"

namespace hybridserve::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Logits whose softmax is `probs` (any positive weights).
std::vector<float> LogitsOf(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(p > 0 ? static_cast<float>(std::log(p)) : -kInf);
  return out;
}

SampleResult Draw(Sampler& sampler, const std::vector<float>& logits,
                 const SamplingParams& params, uint64_t seed, int64_t index,
                 const std::vector<int32_t>& prompt = {},
                 const std::vector<int32_t>& output = {},
                 const std::vector<int32_t>& banned = {}) {
  SampleInput in;
  in.logits = logits;
  in.params = &params;
  in.prompt_ids = prompt;
  in.output_ids = output;
  in.banned_ids = banned;
  in.seed = seed;
  in.token_index = index;
  return sampler.Sample(in);
}

// The token the documented draw must give for uniform `u` over the kept
// tokens' probabilities `probs` (indexed by id, 0 = dropped): the first id whose
// running sum exceeds u. Returns -1 when u is within 1e-6 of a boundary
// (float weights make the exact side uncertain there).
int ExpectedDraw(double u, const std::vector<double>& probs) {
  double total = 0;
  for (double p : probs) total += p;
  double running = 0;
  int token = -1;
  for (int id = 0; id < static_cast<int>(probs.size()); ++id) {
    if (probs[id] <= 0) continue;
    running += probs[id] / total;
    if (std::fabs(running - u) < 1e-6) return -1;
    if (token < 0 && running > u) token = id;
  }
  return token;
}

// Over many token indices, the sampled token is exactly the documented draw
// from `kept` (hand-computed kept probabilities, by id, 0 = filtered out).
void ExpectDraws(const std::vector<float>& logits, const SamplingParams& params,
                 const std::vector<double>& kept, const std::string& what) {
  Sampler sampler;
  int checked = 0;
  std::set<int32_t> seen;
  for (int64_t index = 0; index < 2000; ++index) {
    const int expected = ExpectedDraw(SampleUniform(7, index), kept);
    const SampleResult r = Draw(sampler, logits, params, 7, index);
    seen.insert(r.token);
    ASSERT_GE(r.token, 0);
    ASSERT_LT(r.token, static_cast<int>(logits.size()));
    EXPECT_GT(kept[r.token], 0.0) << what << ": drew filtered token " << r.token;
    if (expected < 0) continue;
    ++checked;
    ASSERT_EQ(r.token, expected) << what << " at index " << index;
  }
  EXPECT_GT(checked, 1900) << what;
  double total = 0;
  for (double q : kept) total += q;
  for (int id = 0; id < static_cast<int>(kept.size()); ++id) {
    if (kept[id] / total > 0.01) {
      EXPECT_TRUE(seen.count(id)) << what << ": never drew " << id;
    }
  }
}

TEST(SamplerTest, PhiloxKnownAnswers) {
  // Random123 tests/kat_vectors, philox4x32 10: counter, key → output.
  EXPECT_EQ(Philox4x32({0, 0, 0, 0}, {0, 0}),
            (std::array<uint32_t, 4>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(Philox4x32({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                       {0xffffffff, 0xffffffff}),
            (std::array<uint32_t, 4>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(Philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
                       {0xa4093822, 0x299f31d0}),
            (std::array<uint32_t, 4>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(SamplerTest, SampleUniformIsAFunctionOfSeedAndIndex) {
  // The documented construction from the Philox words.
  const auto w = Philox4x32({5, 0, 0, 0}, {42, 0});
  const double expected =
      static_cast<double>(((static_cast<uint64_t>(w[0]) << 32) | w[1]) >> 11) * 0x1.0p-53;
  EXPECT_EQ(SampleUniform(42, 5), expected);
  EXPECT_EQ(SampleUniform(42, 5), SampleUniform(42, 5));
  EXPECT_NE(SampleUniform(42, 5), SampleUniform(42, 6));
  EXPECT_NE(SampleUniform(42, 5), SampleUniform(43, 5));
  EXPECT_NE(SampleUniform(1, 0), SampleUniform(uint64_t{1} << 32, 0));
  EXPECT_NE(SampleUniform(0, 1), SampleUniform(0, int64_t{1} << 32));
  double sum = 0, sum_sq = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = SampleUniform(3, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum_sq += u * u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(sum_sq / n - (sum / n) * (sum / n), 1.0 / 12, 0.002);
}

TEST(SamplerTest, ValidateAcceptsTheRangeEnds) {
  SamplingParams p;
  EXPECT_TRUE(Validate(p, 20).ok());
  p.temperature = 0;
  p.top_k = -1;
  p.top_p = 1;
  p.min_p = 1;
  p.repetition_penalty = 0.01f;
  p.presence_penalty = -2;
  p.frequency_penalty = 2;
  p.seed = 0;
  p.logprobs = 20;
  p.prompt_logprobs = 20;
  EXPECT_TRUE(Validate(p, 20).ok());
  p.top_k = 0;
  p.top_p = 1e-6f;
  p.min_p = 0;
  p.presence_penalty = 2;
  p.frequency_penalty = -2;
  p.logprobs = 0;
  EXPECT_TRUE(Validate(p, 20).ok());
}

TEST(SamplerTest, ValidateRejectsEveryOutOfRangeField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    std::string field;
    std::function<void(SamplingParams&)> set;
    std::string range;  // expected in the message
  };
  const std::vector<Case> cases = {
      {"temperature", [](SamplingParams& p) { p.temperature = -1; }, ">= 0, got -1"},
      {"temperature", [&](SamplingParams& p) { p.temperature = nan; }, ">= 0"},
      {"temperature", [](SamplingParams& p) { p.temperature = kInf; }, "finite"},
      {"top_k", [](SamplingParams& p) { p.top_k = -2; }, "got -2"},
      {"top_p", [](SamplingParams& p) { p.top_p = 0; }, "(0, 1], got 0"},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.5f; }, "(0, 1], got 1.5"},
      {"top_p", [&](SamplingParams& p) { p.top_p = nan; }, "(0, 1]"},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.5f; }, "[0, 1], got -0.5"},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.5f; }, "[0, 1], got 1.5"},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0; }, "> 0, got 0"},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = -1; }, "> 0"},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = kInf; }, "finite"},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = 2.5f; }, "[-2, 2], got 2.5"},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = -3; }, "[-2, 2], got -3"},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = 2.5f; }, "[-2, 2]"},
      {"frequency_penalty", [&](SamplingParams& p) { p.frequency_penalty = nan; }, "[-2, 2]"},
      {"logprobs", [](SamplingParams& p) { p.logprobs = 21; }, "[0, 20], got 21"},
      {"logprobs", [](SamplingParams& p) { p.logprobs = -1; }, "[0, 20], got -1"},
      {"prompt_logprobs", [](SamplingParams& p) { p.prompt_logprobs = 21; }, "[0, 20], got 21"},
  };
  for (const Case& c : cases) {
    SamplingParams p;
    c.set(p);
    const absl::Status s = Validate(p, 20);
    ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field << " " << c.range;
    const std::string msg(s.message());
    EXPECT_EQ(msg.rfind(c.field + " must be", 0), 0u) << msg;
    EXPECT_NE(msg.find(c.range), std::string::npos) << msg;
  }
}

TEST(SamplerTest, GreedyIsArgmaxLowestIdOnTies) {
  Sampler sampler;
  SamplingParams p;
  p.temperature = 0;
  const std::vector<float> logits = {1, 3, -2, 3, 2.5f};
  for (int64_t index = 0; index < 20; ++index) {
    EXPECT_EQ(Draw(sampler, logits, p, index, index).token, 1);
  }
  p.temperature = 1e-6f;  // below vLLM's epsilon: greedy too
  EXPECT_EQ(Draw(sampler, logits, p, 1, 1).token, 1);
  // Greedy sees penalties: token 1 and 3 are in the prompt.
  p.temperature = 0;
  p.repetition_penalty = 2;
  EXPECT_EQ(Draw(sampler, logits, p, 1, 1, {1, 3}).token, 4);
  // Agrees with logprobs.h's Argmax on random rows.
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  SamplingParams greedy;
  greedy.temperature = 0;
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> row(300);
    for (float& x : row) x = normal(rng);
    EXPECT_EQ(Draw(sampler, row, greedy, 0, trial).token, Argmax(row));
  }
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  Sampler sampler;
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2;
  // Positive: 2.0 → 1.0 (divided, not subtracted or multiplied).
  EXPECT_EQ(Draw(sampler, {2.0f, 0.999f}, p, 0, 0, {0}).token, 0);
  EXPECT_EQ(Draw(sampler, {2.0f, 1.001f}, p, 0, 0, {0}).token, 1);
  // Negative: -1.0 → -2.0 (multiplied).
  EXPECT_EQ(Draw(sampler, {-1.0f, -2.001f}, p, 0, 0, {0}).token, 0);
  EXPECT_EQ(Draw(sampler, {-1.0f, -1.999f}, p, 0, 0, {0}).token, 1);
  // Output tokens count too, and a token seen many times is penalized once.
  EXPECT_EQ(Draw(sampler, {2.0f, 1.001f}, p, 0, 0, {}, {0, 0, 0}).token, 1);
  EXPECT_EQ(Draw(sampler, {2.0f, 0.999f}, p, 0, 0, {0, 0}, {0, 0, 0}).token, 0);
  // A penalty below 1 rewards: 1.0 → 2.0 beats 1.9.
  p.repetition_penalty = 0.5f;
  EXPECT_EQ(Draw(sampler, {1.0f, 1.9f}, p, 0, 0, {0}).token, 0);
  // Unseen tokens are untouched.
  EXPECT_EQ(Draw(sampler, {1.0f, 1.9f}, p, 0, 0, {}).token, 1);
}

TEST(SamplerTest, FrequencyAndPresencePenaltiesUseOutputCountsOnly) {
  Sampler sampler;
  SamplingParams p;
  p.temperature = 0;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  // Token 0 generated 3 times: 3 - 0.5 × 3 - 0.25 = 1.25.
  EXPECT_EQ(Draw(sampler, {3.0f, 1.24f}, p, 0, 0, {}, {0, 2, 0, 0}).token, 0);
  EXPECT_EQ(Draw(sampler, {3.0f, 1.26f}, p, 0, 0, {}, {0, 2, 0, 0}).token, 1);
  // Prompt occurrences do not count.
  EXPECT_EQ(Draw(sampler, {3.0f, 2.9f}, p, 0, 0, {0, 0, 0, 0}, {}).token, 0);
  // Negative penalties reward: 1 + 0.5 × 2 + 0.25 = 2.25.
  p.frequency_penalty = -0.5f;
  p.presence_penalty = -0.25f;
  EXPECT_EQ(Draw(sampler, {1.0f, 2.24f}, p, 0, 0, {}, {0, 0}).token, 0);
  EXPECT_EQ(Draw(sampler, {1.0f, 2.26f}, p, 0, 0, {}, {0, 0}).token, 1);
  // Repetition first, then frequency/presence: (4 / 2) - 0.5 - 0.25 = 1.25.
  p.repetition_penalty = 2;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  EXPECT_EQ(Draw(sampler, {4.0f, 1.24f}, p, 0, 0, {}, {0}).token, 0);
  EXPECT_EQ(Draw(sampler, {4.0f, 1.26f}, p, 0, 0, {}, {0}).token, 1);
  // The scratch counts are reset: the same call without outputs is unpenalized.
  EXPECT_EQ(Draw(sampler, {4.0f, 3.9f}, p, 0, 0, {}, {}).token, 0);
}

TEST(SamplerTest, PlainSamplingFollowsTheDocumentedDraw) {
  const std::vector<double> probs = {0.1, 0.4, 0.2, 0.3};
  SamplingParams p;
  ExpectDraws(LogitsOf(probs), p, probs, "plain");
}

TEST(SamplerTest, TemperatureScalesLogits) {
  // Logits log(p) at temperature T give weights p^(1/T).
  const std::vector<double> probs = {0.1, 0.4, 0.2, 0.3};
  for (float t : {0.5f, 2.0f, 0.25f}) {
    SamplingParams p;
    p.temperature = t;
    std::vector<double> scaled;
    for (double q : probs) scaled.push_back(std::pow(q, 1.0 / t));
    ExpectDraws(LogitsOf(probs), p, scaled, "temperature " + std::to_string(t));
  }
}

TEST(SamplerTest, TopKKeepsTiesWithTheKthLogit) {
  const std::vector<float> logits = {1, 3, 2, 3, 2, 0};
  const double e = std::exp(1.0);
  SamplingParams p;
  p.top_k = 1;  // both 3s
  ExpectDraws(logits, p, {0, 1, 0, 1, 0, 0}, "top_k 1");
  p.top_k = 2;
  ExpectDraws(logits, p, {0, 1, 0, 1, 0, 0}, "top_k 2");
  p.top_k = 3;  // the 3rd largest is 2: both 2s kept
  ExpectDraws(logits, p, {0, e, 1, e, 1, 0}, "top_k 3");
  p.top_k = 5;
  ExpectDraws(logits, p, {1 / e, e, 1, e, 1, 0}, "top_k 5");
  p.top_k = 6;  // the whole vocabulary
  ExpectDraws(logits, p, {1 / e, e, 1, e, 1, 1 / (e * e)}, "top_k 6");
}

TEST(SamplerTest, TopPKeepsTheTokenThatCrossesTheBoundary) {
  // Four equal logits: exact probabilities 0.25 each, ranked by id.
  const std::vector<float> flat = {0, 0, 0, 0};
  SamplingParams p;
  p.top_p = 0.5f;  // mass before token 2 is exactly 0.5: dropped
  ExpectDraws(flat, p, {1, 1, 0, 0}, "top_p 0.5");
  p.top_p = 0.5001f;
  ExpectDraws(flat, p, {1, 1, 1, 0}, "top_p 0.5001");
  p.top_p = 0.25f;
  ExpectDraws(flat, p, {1, 0, 0, 0}, "top_p 0.25");
  p.top_p = 0.01f;  // at least one token
  ExpectDraws(flat, p, {1, 0, 0, 0}, "top_p 0.01");
  // Ranked by probability: 1 (0.4), 3 (0.3), 2 (0.2), 0 (0.1).
  const std::vector<double> probs = {0.1, 0.4, 0.2, 0.3};
  p.top_p = 0.6f;
  ExpectDraws(LogitsOf(probs), p, {0, 0.4, 0, 0.3}, "top_p 0.6");
  p.top_p = 0.75f;
  ExpectDraws(LogitsOf(probs), p, {0, 0.4, 0.2, 0.3}, "top_p 0.75");
  p.top_p = 0.35f;
  ExpectDraws(LogitsOf(probs), p, {0, 0.4, 0, 0}, "top_p 0.35");
}

TEST(SamplerTest, TopPOnALargerVocabulary) {
  // Few kept tokens among many (the kept ones are listed and sorted) ...
  std::vector<float> logits(1000, -40.0f);
  std::vector<double> kept(1000, 0.0);
  const std::vector<std::pair<int, double>> likely = {
      {700, 0.4}, {100, 0.3}, {300, 0.2}, {900, 0.1}};
  for (const auto& [id, q] : likely) logits[id] = static_cast<float>(std::log(q));
  SamplingParams p;
  p.top_p = 0.6f;  // 0.4 before token 100 < 0.6, 0.7 before token 300
  kept[700] = 0.4;
  kept[100] = 0.3;
  ExpectDraws(logits, p, kept, "top_p 0.6 of 1000");
  p.top_p = 0.95f;
  kept[300] = 0.2;
  kept[900] = 0.1;
  ExpectDraws(logits, p, kept, "top_p 0.95 of 1000");
  // ... and many kept tokens (marked in a mask): 1024 equal logits, exact
  // probabilities 1/1024 each.
  std::vector<float> flat(1024, 0.0f);
  std::vector<double> first(1024, 0.0);
  p.top_p = 0.5f;  // exactly 512 tokens, the lowest ids
  for (int id = 0; id < 512; ++id) first[id] = 1;
  ExpectDraws(flat, p, first, "top_p 0.5 of a flat 1024");
}

TEST(SamplerTest, TopPAppliesAfterTopKAndTemperature) {
  const std::vector<double> probs = {0.4, 0.3, 0.2, 0.1};
  SamplingParams p;
  p.top_p = 0.5f;
  // Alone: 0.4 before token 1 is < 0.5, so tokens 0 and 1 stay.
  ExpectDraws(LogitsOf(probs), p, {0.4, 0.3, 0, 0}, "top_p alone");
  // After top_k = 2 the pair renormalizes to (4/7, 3/7): 4/7 >= 0.5.
  p.top_k = 2;
  ExpectDraws(LogitsOf(probs), p, {1, 0, 0, 0}, "top_k then top_p");
  // Temperature 0.5 squares the weights: 0.16 / 0.30 >= 0.5 → token 0 only.
  // Temperature 4 flattens them (q^(1/4)): tokens 0 and 1.
  p.top_k = 0;
  p.temperature = 0.5f;
  ExpectDraws(LogitsOf(probs), p, {1, 0, 0, 0}, "temperature 0.5 then top_p");
  p.temperature = 4;
  std::vector<double> flat;
  for (double q : probs) flat.push_back(std::pow(q, 0.25));
  // Mass before token 1: 0.795 / 2.766 < 0.5; before token 2: 1.535 / 2.766
  // = 0.555 >= 0.5.
  flat[2] = 0;
  flat[3] = 0;
  ExpectDraws(LogitsOf(probs), p, flat, "temperature 4 then top_p");
}

TEST(SamplerTest, MinPIsRelativeToTheTopProbability) {
  const std::vector<double> probs = {0.05, 0.5, 0.15, 0.3};
  SamplingParams p;
  p.min_p = 0.35f;  // threshold 0.175
  ExpectDraws(LogitsOf(probs), p, {0, 0.5, 0, 0.3}, "min_p 0.35");
  p.min_p = 0.25f;  // threshold 0.125
  ExpectDraws(LogitsOf(probs), p, {0, 0.5, 0.15, 0.3}, "min_p 0.25");
  p.min_p = 1;  // the top token only
  ExpectDraws(LogitsOf(probs), p, {0, 1, 0, 0}, "min_p 1");
  // The same relative cut when the top probability is different.
  const std::vector<double> scaled = {0.05, 0.25, 0.075, 0.15, 0.475};
  p.min_p = 0.35f;  // threshold 0.166
  ExpectDraws(LogitsOf(scaled), p, {0, 0.25, 0, 0, 0.475}, "min_p, other top");
  // After temperature 2: ratios sqrt(p / 0.5) = 0.316, 1, 0.548, 0.775.
  p.temperature = 2;
  p.min_p = 0.5f;
  std::vector<double> hot;
  for (double q : probs) hot.push_back(std::sqrt(q));
  hot[0] = 0;
  ExpectDraws(LogitsOf(probs), p, hot, "temperature 2 then min_p");
  // After top_p (0.6 keeps tokens 1 and 3), min_p 0.7 drops token 3 (0.6).
  p.temperature = 1;
  p.top_p = 0.6f;
  p.min_p = 0.7f;
  ExpectDraws(LogitsOf(probs), p, {0, 1, 0, 0}, "top_p then min_p");
  p.min_p = 0.5f;
  ExpectDraws(LogitsOf(probs), p, {0, 0.5, 0, 0.3}, "top_p then weak min_p");
}

TEST(SamplerTest, SeededDrawsAreDeterministicAndIndependentOfHistory) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0, 2);
  std::vector<float> logits(500);
  for (float& x : logits) x = normal(rng);
  SamplingParams p;
  p.top_k = 50;
  p.top_p = 0.9f;
  p.repetition_penalty = 1.3f;
  std::vector<int32_t> first;
  Sampler a;
  for (int64_t i = 0; i < 100; ++i) first.push_back(Draw(a, logits, p, 99, i, {1, 2}, {3}).token);
  // A fresh sampler, indices in reverse order, other requests in between.
  Sampler b;
  SamplingParams other;
  other.frequency_penalty = 1;
  for (int64_t i = 99; i >= 0; --i) {
    Draw(b, logits, other, 1234, i, {5}, {6, 7, 7});
    EXPECT_EQ(Draw(b, logits, p, 99, i, {1, 2}, {3}).token, first[i]) << i;
  }
  // Different indices draw different tokens; different seeds differ.
  EXPECT_GT(std::set<int32_t>(first.begin(), first.end()).size(), 10u);
  int same = 0;
  for (int64_t i = 0; i < 100; ++i) same += Draw(a, logits, p, 100, i, {1, 2}, {3}).token == first[i];
  EXPECT_LT(same, 50);
}

TEST(SamplerTest, DrawFrequenciesFollowTheFilteredDistribution) {
  // Chi-square over 20000 indices; the bound (≈ p < 1e-6 for these degrees of
  // freedom) is generous, the draws are fixed by the seed.
  const std::vector<double> probs = {0.02, 0.3, 0.1, 0.05, 0.2, 0.13, 0.15, 0.05};
  struct Case {
    SamplingParams params;
    std::vector<double> kept;
  };
  std::vector<Case> cases(3);
  cases[0].kept = probs;
  cases[1].params.top_k = 3;
  cases[1].kept = {0, 0.3, 0, 0, 0.2, 0, 0.15, 0};
  cases[2].params.temperature = 0.5f;
  cases[2].params.min_p = 0.2f;  // squared weights: keep q^2 >= 0.2 × 0.09
  for (double q : probs) cases[2].kept.push_back(q * q >= 0.018 ? q * q : 0);
  const int n = 20000;
  for (const Case& c : cases) {
    Sampler sampler;
    std::vector<int> counts(probs.size());
    for (int64_t i = 0; i < n; ++i) ++counts[Draw(sampler, LogitsOf(probs), c.params, 2024, i).token];
    double total = 0;
    for (double q : c.kept) total += q;
    double chi2 = 0;
    int dof = -1;
    for (size_t id = 0; id < probs.size(); ++id) {
      if (c.kept[id] == 0) {
        EXPECT_EQ(counts[id], 0) << id;
        continue;
      }
      const double expected = n * c.kept[id] / total;
      chi2 += (counts[id] - expected) * (counts[id] - expected) / expected;
      ++dof;
    }
    std::printf("chi2 = %.2f with %d degrees of freedom\n", chi2, dof);
    EXPECT_LT(chi2, 5.0 * dof + 20);
  }
}

TEST(SamplerTest, FilterPathsAgree) {
  // top_k >= vocab, top_p = 1 and min_p = 0 all mean "off": the same draws.
  std::mt19937 rng(8);
  std::normal_distribution<float> normal;
  std::vector<float> logits(1000);
  for (float& x : logits) x = normal(rng);
  Sampler sampler;
  SamplingParams off, k_vocab, k_more;
  k_vocab.top_k = 1000;
  k_more.top_k = 5000;
  for (int64_t i = 0; i < 200; ++i) {
    const int32_t t = Draw(sampler, logits, off, 3, i).token;
    EXPECT_EQ(Draw(sampler, logits, k_vocab, 3, i).token, t);
    EXPECT_EQ(Draw(sampler, logits, k_more, 3, i).token, t);
  }
  // top_k = k draws exactly as top_p/min_p-free sampling over those k tokens.
  SamplingParams k20;
  k20.top_k = 20;
  const std::vector<TokenLogprob> top20 = TopLogprobs(logits, 20);
  std::vector<float> only20(logits.size(), -kInf);
  for (const TokenLogprob& t : top20) only20[t.id] = logits[t.id];
  for (int64_t i = 0; i < 200; ++i) {
    EXPECT_EQ(Draw(sampler, logits, k20, 3, i).token, Draw(sampler, only20, off, 3, i).token);
  }
}

TEST(SamplerTest, LogprobsAreOfTheRawDistribution) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0, 3);
  std::vector<float> logits(2000);
  for (float& x : logits) x = normal(rng);
  const double lse = LogSumExp(logits);
  const std::vector<TokenLogprob> ref_top = TopLogprobs(logits, 5);

  SamplingParams plain;
  plain.logprobs = 5;
  SamplingParams shaped = plain;
  shaped.temperature = 0.3f;
  shaped.top_k = 40;
  shaped.top_p = 0.8f;
  shaped.repetition_penalty = 1.8f;
  shaped.frequency_penalty = 1.5f;
  shaped.presence_penalty = 0.7f;
  SamplingParams greedy = shaped;
  greedy.temperature = 0;
  Sampler sampler;
  const std::vector<int32_t> prompt = {ref_top[0].id, ref_top[1].id, 7};
  const std::vector<int32_t> output = {ref_top[2].id, ref_top[2].id};
  for (const SamplingParams* p : {&plain, &shaped, &greedy}) {
    for (int64_t i = 0; i < 30; ++i) {
      const SampleResult r = Draw(sampler, logits, *p, 17, i, prompt, output);
      EXPECT_NEAR(r.logprob, logits[r.token] - lse, 1e-5);
      int rank = 0;
      for (float x : logits) rank += x >= logits[r.token];
      EXPECT_EQ(r.rank, rank);
      ASSERT_EQ(r.top.size(), 5u);
      for (size_t j = 0; j < 5; ++j) {
        EXPECT_EQ(r.top[j].id, ref_top[j].id);
        EXPECT_NEAR(r.top[j].logprob, ref_top[j].logprob, 1e-5);
      }
    }
  }
  // Greedy with penalties picks a token that is not the raw argmax, and its
  // logprob and rank are still the raw ones.
  const SampleResult g = Draw(sampler, logits, greedy, 0, 0, prompt, output);
  EXPECT_NE(g.token, ref_top[0].id);
  EXPECT_GT(g.rank, 1);
  // Without logprobs asked, the token's own logprob and rank still come back.
  SamplingParams none;
  const SampleResult r = Draw(sampler, logits, none, 1, 1);
  EXPECT_TRUE(r.top.empty());
  EXPECT_NEAR(r.logprob, logits[r.token] - lse, 1e-5);
  // Ties in the raw rank: a token tied with two others has rank 3.
  const SampleResult tied = Draw(sampler, {1, 5, 5, 5, 0}, greedy, 0, 0);
  EXPECT_EQ(tied.token, 1);
  EXPECT_EQ(tied.rank, 3);
}

TEST(SamplerTest, BannedTokensAreNeverDrawnButKeepTheirLogprobs) {
  const std::vector<float> logits = {0, 5, 1, 4};
  const double lse = LogSumExp(logits);
  Sampler sampler;
  SamplingParams p;
  p.logprobs = 1;
  for (int64_t i = 0; i < 300; ++i) {
    const SampleResult r = Draw(sampler, logits, p, 4, i, {}, {}, {1, 3, 99, -1});
    EXPECT_TRUE(r.token == 0 || r.token == 2) << r.token;
    ASSERT_EQ(r.top.size(), 1u);
    EXPECT_EQ(r.top[0].id, 1);
    EXPECT_NEAR(r.top[0].logprob, 5 - lse, 1e-6);
  }
  SamplingParams greedy;
  greedy.temperature = 0;
  EXPECT_EQ(Draw(sampler, logits, greedy, 0, 0, {}, {}, {1}).token, 3);
  // Everything banned: the raw argmax.
  EXPECT_EQ(Draw(sampler, logits, p, 0, 0, {}, {}, {0, 1, 2, 3}).token, 1);
  // MaskTokens on a mutable row: -inf, ids outside the row ignored.
  std::vector<float> row = logits;
  MaskTokens(absl::MakeSpan(row), {3, 0, 4, -7});
  EXPECT_EQ(row, (std::vector<float>{-kInf, 5, 1, -kInf}));
  for (int64_t i = 0; i < 100; ++i) {
    const int32_t t = Draw(sampler, row, p, 4, i).token;
    EXPECT_TRUE(t == 1 || t == 2) << t;
  }
}

TEST(SamplerTest, NaNAndInfiniteLogitsNeverCrash) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Sampler sampler;
  SamplingParams p;
  p.top_p = 0.9f;
  p.logprobs = 2;
  for (int64_t i = 0; i < 100; ++i) {
    const SampleResult r = Draw(sampler, {nan, 1, nan, 2}, p, 1, i);
    EXPECT_TRUE(r.token == 1 || r.token == 3) << r.token;
    ASSERT_EQ(r.top.size(), 2u);
    EXPECT_EQ(r.top[0].id, 3);
  }
  const SampleResult r = Draw(sampler, {1, kInf, 0}, p, 1, 0);
  EXPECT_EQ(r.token, 1);
  const SampleResult all_masked = Draw(sampler, {-kInf, -kInf}, p, 1, 0);
  EXPECT_EQ(all_masked.token, 0);
}

TEST(SamplerTest, PromptLogprobsDoNotDependOnSlicing) {
  const int64_t vocab = 64;
  const std::vector<int32_t> prompt = {5, 9, 9, 0, 63, 17, 2, 2, 40, 11};
  const int64_t rows = static_cast<int64_t>(prompt.size()) - 1;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0, 2);
  std::vector<float> logits(rows * vocab);
  for (float& x : logits) x = normal(rng);
  Sampler sampler;
  const std::vector<SampleResult> whole =
      sampler.PromptLogprobs(logits, vocab, prompt, 0, 3);
  ASSERT_EQ(whole.size(), static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const absl::Span<const float> row = absl::MakeConstSpan(logits).subspan(r * vocab, vocab);
    const double lse = LogSumExp(row);
    EXPECT_EQ(whole[r].token, prompt[r + 1]);
    EXPECT_NEAR(whole[r].logprob, row[prompt[r + 1]] - lse, 1e-5);
    int rank = 0;
    for (float x : row) rank += x >= row[prompt[r + 1]];
    EXPECT_EQ(whole[r].rank, rank);
    const std::vector<TokenLogprob> top = TopLogprobs(row, 3);
    ASSERT_EQ(whole[r].top.size(), 3u);
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(whole[r].top[j].id, top[j].id);
      EXPECT_NEAR(whole[r].top[j].logprob, top[j].logprob, 1e-5);
    }
  }
  for (int64_t slice : {1, 2, 4}) {
    for (int64_t first = 0; first < rows; first += slice) {
      const int64_t n = std::min(slice, rows - first);
      const std::vector<SampleResult> part = sampler.PromptLogprobs(
          absl::MakeConstSpan(logits).subspan(first * vocab, n * vocab), vocab, prompt,
          first, 3);
      ASSERT_EQ(part.size(), static_cast<size_t>(n));
      for (int64_t r = 0; r < n; ++r) {
        EXPECT_EQ(part[r].token, whole[first + r].token);
        EXPECT_EQ(part[r].logprob, whole[first + r].logprob);
        EXPECT_EQ(part[r].rank, whole[first + r].rank);
        ASSERT_EQ(part[r].top.size(), whole[first + r].top.size());
        for (size_t j = 0; j < part[r].top.size(); ++j) {
          EXPECT_EQ(part[r].top[j].id, whole[first + r].top[j].id);
        }
      }
    }
  }
  EXPECT_TRUE(sampler.PromptLogprobs(logits, vocab, prompt, 0, 0)[0].top.empty());
}

TEST(SamplerTest, LargeVocabularySamplingRuns) {
  // 128k vocabulary, logits shaped like a language model's (a few likely
  // tokens, a long tail). Prints the time per call; asserts only results.
  const int vocab = 128256;
  std::mt19937 rng(21);
  std::normal_distribution<float> normal(0, 2);
  std::vector<float> logits(vocab);
  for (float& x : logits) x = normal(rng);
  for (int i = 0; i < 30; ++i) logits[(i * 7919) % vocab] += 12;
  std::vector<int32_t> prompt(2000), output(500);
  for (int32_t& t : prompt) t = rng() % vocab;
  for (int32_t& t : output) t = rng() % vocab;

  struct Case {
    const char* name;
    SamplingParams params;
  };
  std::vector<Case> cases(7);
  cases[0].name = "greedy";
  cases[0].params.temperature = 0;
  cases[1].name = "plain";
  cases[2].name = "top_k=50";
  cases[2].params.top_k = 50;
  cases[3].name = "top_p=0.9";
  cases[3].params.top_p = 0.9f;
  cases[4].name = "top_p=0.99,T=1.5";
  cases[4].params.top_p = 0.99f;
  cases[4].params.temperature = 1.5f;
  cases[5].name = "k=40,p=0.95,min_p=0.05";
  cases[5].params.top_k = 40;
  cases[5].params.top_p = 0.95f;
  cases[5].params.min_p = 0.05f;
  cases[6].name = "penalties+top_p+logprobs=20";
  cases[6].params.repetition_penalty = 1.1f;
  cases[6].params.frequency_penalty = 0.5f;
  cases[6].params.presence_penalty = 0.5f;
  cases[6].params.top_p = 0.95f;
  cases[6].params.logprobs = 20;
  Sampler sampler;
  for (const Case& c : cases) {
    const int iters = 50;
    const auto start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    std::set<int32_t> tokens;
    for (int64_t i = 0; i < iters; ++i) {
      const SampleResult r = Draw(sampler, logits, c.params, 77, i, prompt, output);
      ASSERT_GE(r.token, 0);
      ASSERT_LT(r.token, vocab);
      EXPECT_GE(r.rank, 1);
      EXPECT_LE(r.logprob, 0.0);
      EXPECT_EQ(r.top.size(), static_cast<size_t>(c.params.logprobs));
      tokens.insert(r.token);
    }
    const double us = std::chrono::duration<double, std::micro>(
                          std::chrono::steady_clock::now() - start)
                          .count() /
                      iters;
    const double cpu_us = 1e6 * (std::clock() - cpu_start) / CLOCKS_PER_SEC / iters;
    std::printf("vocab %d, %-28s %8.1f us per token (%8.1f us CPU), %zu distinct tokens\n",
                vocab, c.name, us, cpu_us, tokens.size());
  }
}

}  // namespace
}  // namespace hybridserve::engine
