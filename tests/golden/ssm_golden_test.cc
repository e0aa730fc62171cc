// SSM and hybrid models (Mamba-2, Bamba, Mamba-1) on the CPU engine against
// the logits transformers computed for the same checkpoints
// (tests/golden/fixtures/{mamba2,bamba,mamba}_*), judged by DESIGN.md section 7
// class (c): f32 within 1e-3 absolute; bf16 checkpoints within 2x
// transformers' own bf16-vs-f32 gap; greedy tokens by teacher forcing where
// the reference's top-2 margin exceeds 5x the tolerance.
#include <algorithm>
#include <cmath>
#include <string>

#include "engine/runtime/engine.h"
#include "engine/runtime/logprobs.h"
#include "engine/runtime/plan_builder.h"
#include "gtest/gtest.h"
#include "tests/testing/golden.h"

namespace hybridserve::engine {
namespace {

constexpr double kF32Tolerance = 1e-3;

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

class SsmGoldenTest : public ::testing::TestWithParam<std::string> {};

std::unique_ptr<Engine> MakeEngine(const std::filesystem::path& dir) {
  EngineOptions o;
  o.model_dir = dir;
  o.device = "cpu";
  o.num_threads = 2;
  o.kv_cache_bytes = 8 << 20;
  o.block_tokens = 16;
  o.max_num_tokens = 256;
  o.max_num_seqs = 8;
  o.max_model_len = 256;
  auto e = Engine::Create(o);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? std::move(e).value() : nullptr;
}

std::vector<float> FullForward(Engine& e, const std::vector<int32_t>& ids) {
  const MemoryPlan& m = e.memory_plan();
  PlanBuilder builder(m.num_blocks, m.block_tokens, m.num_state_slots);
  auto plan = builder.Build({{.seq_id = 0, .tokens = ids, .all_logits = true}});
  EXPECT_TRUE(plan.ok()) << plan.status();
  StepOutput out;
  absl::Status st = e.Step(*plan, &out);
  EXPECT_TRUE(st.ok()) << st;
  return out.logits;
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  }
  return m;
}

TEST_P(SsmGoldenTest, MatchesTransformers) {
  auto fixture = testing::LoadGoldenFixture(GetParam());
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  auto engine = MakeEngine(fixture->dir);
  ASSERT_NE(engine, nullptr);
  const int64_t vocab = fixture->vocab_size;
  const bool bf16 = fixture->checkpoint_dtype == "bfloat16";
  int greedy_compared = 0;
  for (size_t c = 0; c < fixture->cases.size(); ++c) {
    const testing::GoldenCase& gc = fixture->cases[c];
    const std::vector<float> ours = FullForward(*engine, gc.full_ids);
    const double gap = MaxAbsDiff(ours, gc.logits_f32);
    double tolerance = kF32Tolerance;
    if (bf16) {
      tolerance = 2.0 * gc.bf16_vs_f32_max_abs_gap;
      EXPECT_LE(gap, kF32Tolerance) << "case " << c << ": vs upcast f32 reference";
      std::printf("[golden] %s case %zu: max |ours - transformers native bf16| = %.3g\n",
                  GetParam().c_str(), c, MaxAbsDiff(ours, gc.logits_native));
    }
    EXPECT_LE(gap, tolerance) << "case " << c;
    std::printf("[golden] %s case %zu: max |ours - transformers f32| = %.3g (tolerance %.3g)\n",
                GetParam().c_str(), c, gap, tolerance);

    for (size_t p = gc.prompt_ids.size() - 1; p + 1 < gc.full_ids.size(); ++p) {
      if (gc.top2_margin[p] <= 5 * tolerance) continue;
      ++greedy_compared;
      const int32_t ours_top = Argmax(absl::MakeConstSpan(ours).subspan(p * vocab, vocab));
      EXPECT_EQ(ours_top, gc.full_ids[p + 1]) << "case " << c << " position " << p;
    }
    int compared = 0;
    for (size_t p = 0; p + 1 < gc.full_ids.size(); ++p) {
      if (gc.top2_margin[p] <= 5 * tolerance) continue;
      ++compared;
      const int32_t ref_top =
          Argmax(absl::MakeConstSpan(gc.logits_f32).subspan(p * vocab, vocab));
      EXPECT_EQ(Argmax(absl::MakeConstSpan(ours).subspan(p * vocab, vocab)), ref_top)
          << "case " << c << " position " << p;
    }
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
