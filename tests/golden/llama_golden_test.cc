// Llama on the CPU engine against the logits transformers computed for the
// same checkpoints (tests/golden/fixtures), judged by DESIGN.md section 7
// class (c): f32 within 1e-3 absolute; bf16 checkpoints within 2x
// transformers' own bf16-vs-f32 gap; greedy tokens by teacher forcing where
// the reference's top-2 margin exceeds 5x the tolerance.
#include <string>
#include <vector>

#include "engine/runtime/engine.h"
#include "gtest/gtest.h"
#include "tests/testing/engine_test_util.h"
#include "tests/testing/golden.h"
#include "tests/testing/golden_checks.h"

namespace hybridserve::engine {
namespace {

class LlamaGoldenTest : public testing::GoldenEngineTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(LoadFixtureAndEngine(
        testing::CpuEngineOptions({.kv_cache_bytes = 8 << 20, .max_num_tokens = 256})));
  }
};

TEST_P(LlamaGoldenTest, MatchesTransformers) {
  for (size_t c = 0; c < fixture_.cases.size(); ++c) {
    const testing::GoldenCase& gc = fixture_.cases[c];
    // Logits of every position from one forward pass of a fresh sequence.
    const std::vector<float> ours = testing::RunChunked(*engine_, gc.full_ids, gc.full_ids.size());
    const double tolerance = testing::ExpectLogitsMatchTransformers(ours, fixture_, c);
    // Teacher forcing: row p predicts full_ids[p + 1].
    const int compared = testing::ExpectGreedyTokens(ours, fixture_, c, 5 * tolerance);
    // Also every prompt position where transformers is confident.
    testing::ExpectConfidentTopTokens(ours, fixture_, c, 5 * tolerance);
    EXPECT_GT(compared, 0) << "case " << c << ": no greedy token was confident enough to compare";
  }
}

std::vector<std::string> LlamaFixtureNames() {
  std::vector<std::string> names;
  for (const std::string& n : testing::GoldenFixtureNames()) {
    if (n.rfind("llama_", 0) == 0) names.push_back(n);
  }
  return names;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LlamaGoldenTest,
                         ::testing::ValuesIn(LlamaFixtureNames()),
                         [](const auto& info) { return info.param; });

TEST(LlamaGoldenFixtures, AllPresent) {
  // The suite must not pass vacuously if the fixtures folder goes missing.
  EXPECT_GE(LlamaFixtureNames().size(), 6u);
}

}  // namespace
}  // namespace hybridserve::engine
