// Dense Transformers (every fixture of that family: Llama, Mistral, Qwen2,
// Qwen3) on the CPU engine against the logits transformers computed for the
// same checkpoints (tests/golden/fixtures), judged by DESIGN.md section 7
// class (c): f32 within 1e-3 absolute; bf16 checkpoints within 2x
// transformers' own bf16-vs-f32 gap; greedy tokens by teacher forcing where
// the reference's top-2 margin exceeds 5x the tolerance.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/runtime/engine.h"
#include "gtest/gtest.h"
#include "tests/testing/engine_test_util.h"
#include "tests/testing/golden.h"
#include "tests/testing/golden_checks.h"
#include "tests/testing/test_env.h"

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

// Every dense Transformer fixture (Llama, Mistral, Qwen2, Qwen3, ...).
std::vector<std::string> LlamaFixtureNames() {
  return testing::GoldenFixtureNames(ArchitectureFamily::kTransformer);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LlamaGoldenTest,
                         ::testing::ValuesIn(LlamaFixtureNames()),
                         [](const auto& info) { return info.param; });

// Sliding-window attention is not implemented: a --max-model-len beyond the
// window is refused by name; within it, attention equals full attention (the
// mistral_f32_window fixture above, window 4096).
TEST(SlidingWindowTest, MaxModelLenBeyondTheWindowIsRefusedByName) {
  auto fixture = testing::LoadGoldenFixture("mistral_f32_window");
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  const std::filesystem::path dir = testing::MakeTempDir() / "mistral_window16";
  std::filesystem::copy(fixture->dir, dir);
  std::ifstream in(dir / "config.json");
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t at = config.find("\"sliding_window\": 4096");
  ASSERT_NE(at, std::string::npos) << config;
  config.replace(at, std::strlen("\"sliding_window\": 4096"), "\"sliding_window\": 16");
  std::ofstream(dir / "config.json") << config;

  EngineOptions o = testing::CpuEngineOptions({.kv_cache_bytes = 8 << 20});
  o.model_dir = dir;
  auto refused = Engine::Create(o);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_NE(refused.status().message().find("sliding_window 16"), std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("--max-model-len"), std::string::npos);
  o.max_model_len = 16;
  auto within = Engine::Create(o);
  EXPECT_TRUE(within.ok()) << within.status();
}

TEST(LlamaGoldenFixtures, AllPresent) {
  // The suite must not pass vacuously if the fixtures folder goes missing.
  EXPECT_GE(LlamaFixtureNames().size(), 12u);
}

}  // namespace
}  // namespace hybridserve::engine
