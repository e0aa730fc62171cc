// SSM and hybrid models (Mamba-2, Bamba, Mamba-1) on the CPU engine against
// the logits transformers computed for the same checkpoints
// (tests/golden/fixtures/{mamba2,bamba,mamba}_*), judged by DESIGN.md section 7
// class (c): f32 within 1e-3 absolute; bf16 checkpoints within 2x
// transformers' own bf16-vs-f32 gap; greedy tokens by teacher forcing where
// the reference's top-2 margin exceeds 5x the tolerance.
#include <cstdio>
#include <string>
#include <vector>

#include "engine/runtime/engine.h"
#include "gtest/gtest.h"
#include "tests/testing/engine_test_util.h"
#include "tests/testing/golden.h"
#include "tests/testing/golden_checks.h"

namespace hybridserve::engine {
namespace {

std::vector<std::string> SsmFixtureNames() {
  std::vector<std::string> names;
  for (const std::string& n : testing::GoldenFixtureNames()) {
    if (n.rfind("mamba2_", 0) == 0 || n.rfind("bamba_", 0) == 0 ||
        n.rfind("mamba_", 0) == 0) {
      names.push_back(n);
    }
  }
  return names;
}

class SsmGoldenTest : public testing::GoldenEngineTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(LoadFixtureAndEngine(testing::CpuEngineOptions(
        {.kv_cache_bytes = 8 << 20, .max_num_tokens = 256, .max_num_seqs = 8,
         .max_model_len = 256})));
  }
};

TEST_P(SsmGoldenTest, MatchesTransformers) {
  const bool bf16 = fixture_.checkpoint_dtype == "bfloat16";
  int greedy_compared = 0;
  for (size_t c = 0; c < fixture_.cases.size(); ++c) {
    const testing::GoldenCase& gc = fixture_.cases[c];
    const std::vector<float> ours = testing::RunChunked(*engine_, gc.full_ids, gc.full_ids.size());
    if (bf16) {
      std::printf("[golden] %s case %zu: max |ours - transformers native bf16| = %.3g\n",
                  GetParam().c_str(), c, testing::MaxAbsDiff(ours, gc.logits_native));
    }
    const double tolerance = testing::ExpectLogitsMatchTransformers(ours, fixture_, c);
    greedy_compared += testing::ExpectGreedyTokens(ours, fixture_, c, 5 * tolerance);
    const int compared = testing::ExpectConfidentTopTokens(ours, fixture_, c, 5 * tolerance);
    EXPECT_GT(compared, 0) << "case " << c << ": no position was confident enough";
    if (!bf16) {
      EXPECT_GT(greedy_compared, 0) << "case " << c << ": no greedy token was confident enough";
    }
  }
  // bf16's tolerance (2x transformers' own bf16 gap, 0.04 to 0.09 here) makes
  // the bar 10x that gap; some cases have no greedy token that confident, so
  // the bar is applied per fixture for them.
  EXPECT_GT(greedy_compared, 0) << "no greedy token was confident enough in any case";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SsmGoldenTest, ::testing::ValuesIn(SsmFixtureNames()),
                         [](const auto& info) { return info.param; });

TEST(SsmGoldenFixtures, AllPresent) {
  size_t mamba2 = 0;
  for (const std::string& n : SsmFixtureNames()) mamba2 += n.rfind("mamba2_", 0) == 0;
  EXPECT_GE(mamba2, 4u);
}

}  // namespace
}  // namespace hybridserve::engine
