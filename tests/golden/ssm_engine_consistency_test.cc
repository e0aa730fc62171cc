// Incremental decode, chunked prefill and batching on transformers-written SSM
// and hybrid checkpoints: each must reproduce one full forward pass. The SSM
// state travels between steps in the engine's state slots, so these check the
// slot plumbing as much as the ops. Batched vs alone is class (b), bitwise;
// incremental and chunked prefill are class (c), within the f32 tolerance.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/runtime/engine.h"
#include "engine/runtime/plan_builder.h"
#include "gtest/gtest.h"
#include "tests/testing/engine_test_util.h"
#include "tests/testing/golden.h"

namespace hybridserve::engine {
namespace {

class SsmConsistencyTest : public testing::GoldenEngineTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(LoadFixtureAndEngine(testing::CpuEngineOptions(
        {.kv_cache_bytes = 16 << 20, .max_num_tokens = 512, .max_num_seqs = 16,
         .max_model_len = 256})));
  }

  PlanBuilder NewBuilder() const { return testing::NewPlanBuilder(*engine_); }
  std::vector<float> RunChunked(const std::vector<int32_t>& ids, size_t chunk) {
    return testing::RunChunked(*engine_, ids, chunk);
  }
};

TEST_P(SsmConsistencyTest, MemoryPlanHasStateSlots) {
  const MemoryPlan& m = engine_->memory_plan();
  EXPECT_GT(m.state_bytes_per_slot, 0u);
  EXPECT_EQ(m.num_state_slots, 16);  // min(max_num_seqs, budget)
  EXPECT_EQ(m.state_cache_bytes, m.num_state_slots * m.state_bytes_per_slot);
  EXPECT_EQ(m.state_bytes_per_slot, engine_->config().state_bytes_per_seq());
  EXPECT_LE(m.state_cache_bytes + m.kv_cache_bytes, 16u << 20);
  std::printf("[plan] %s: %s\n", GetParam().c_str(), m.ToString().c_str());
}

TEST_P(SsmConsistencyTest, IncrementalDecodeIsBitwiseIdenticalToFullForward) {
  testing::ExpectIncrementalDecodeBitwiseEqualsFullForward(*engine_, fixture_);
}

TEST_P(SsmConsistencyTest, ChunkedPrefillIsBitwiseIdenticalToWhole) {
  testing::ExpectChunkedPrefillBitwiseEqualsWhole(*engine_, fixture_);
}

TEST_P(SsmConsistencyTest, RandomBatchMatesChangeNothing) {
  testing::ExpectRandomBatchMatesChangeNothing(*engine_, 70, 12, {11u, 12u});
}

TEST_P(SsmConsistencyTest, ThreadCountChangesNothing) {
  testing::ExpectThreadCountChangesNothing(*engine_, engine_options_, fixture_);
}

TEST_P(SsmConsistencyTest, BatchedSequencesAreBitwiseIdenticalToAlone) {
  // 8 sequences of different lengths: prefills in one plan, then decodes in
  // one plan, then a mixed plan (a new prefill among decodes).
  const int lengths[8] = {1, 3, 5, 16, 17, 33, 64, 100};
  const std::vector<std::vector<int32_t>> prompts = testing::RandomPrompts(lengths, vocab_, 7);
  // Alone: prefill, one decode step (token 42), then 3 more tokens.
  const PlanBuilder::Chunk decode{.tokens = {42}};
  const PlanBuilder::Chunk three{.tokens = {7, 8, 9}, .all_logits = true};
  std::vector<std::vector<std::vector<float>>> alone;  // [sequence][step]
  ASSERT_NO_FATAL_FAILURE(testing::RunEachAlone(*engine_, prompts, {decode, three}, &alone));
  // Together, in a builder whose slots are handed out in a different order
  // (a throwaway sequence takes slot 0 first): prefills, then decodes.
  PlanBuilder builder = NewBuilder();
  ASSERT_TRUE(builder.Build({{.seq_id = 99, .tokens = {1}}}).ok());
  ASSERT_NO_FATAL_FAILURE(
      testing::ExpectBatchedEqualsAlone(*engine_, builder, prompts, {decode}, alone));
  // Mixed: every sequence continues with 3 tokens, plus a fresh prefill.
  std::vector<PlanBuilder::Chunk> chunks;
  std::vector<const std::vector<float>*> expected;
  for (size_t i = 0; i < prompts.size(); ++i) {
    PlanBuilder::Chunk next = three;
    next.seq_id = static_cast<int64_t>(i);
    chunks.push_back(next);
    expected.push_back(&alone[i][2]);
  }
  chunks.push_back({.seq_id = 100, .tokens = prompts[6], .all_logits = true});
  expected.push_back(&alone[6][0]);
  testing::ExpectStepBitwiseEqual(*engine_, builder, chunks, expected,
                                  "continuation (or fresh prefill among them)");
}

TEST_P(SsmConsistencyTest, InvalidPlansAreRejectedWithoutSideEffects) {
  const auto& ids = fixture_.cases[0].full_ids;
  // Prefill, then keep the sequence's state to continue after bad plans.
  PlanBuilder builder = NewBuilder();
  StepOutput out;
  auto prefill = builder.Build({{.seq_id = 0, .tokens = ids}});
  ASSERT_TRUE(prefill.ok());
  ASSERT_TRUE(engine_->Step(*prefill, &out).ok());
  auto good = builder.Build({{.seq_id = 0, .tokens = {5}}});
  ASSERT_TRUE(good.ok());
  StepPlan bad = *good;
  bad.state_slot[0] = static_cast<int32_t>(engine_->memory_plan().num_state_slots);
  EXPECT_EQ(engine_->Step(bad, &out).code(), absl::StatusCode::kInvalidArgument);
  bad = *good;
  bad.state_slot.clear();
  EXPECT_EQ(engine_->Step(bad, &out).code(), absl::StatusCode::kInvalidArgument);
  bad = *good;
  bad.state_is_fresh[0] = 1;  // not at position 0
  EXPECT_EQ(engine_->Step(bad, &out).code(), absl::StatusCode::kInvalidArgument);
  bad = *good;
  bad.token_ids[0] = static_cast<int32_t>(vocab_);
  EXPECT_EQ(engine_->Step(bad, &out).code(), absl::StatusCode::kInvalidArgument);
  // Two sequences on one slot.
  PlanBuilder other = NewBuilder();
  auto two = other.Build({{.seq_id = 1, .tokens = {1, 2}}, {.seq_id = 2, .tokens = {3}}});
  ASSERT_TRUE(two.ok());
  two->state_slot[1] = two->state_slot[0];
  EXPECT_EQ(engine_->Step(*two, &out).code(), absl::StatusCode::kInvalidArgument);
  // A fresh start not flagged fresh.
  auto fresh = other.Build({{.seq_id = 3, .tokens = {1, 2}}});
  ASSERT_TRUE(fresh.ok());
  fresh->state_is_fresh[0] = 0;
  EXPECT_EQ(engine_->Step(*fresh, &out).code(), absl::StatusCode::kInvalidArgument);

  // The sequence's state was untouched: continuing gives what a clean run gives.
  ASSERT_TRUE(engine_->Step(*good, &out).ok());
  std::vector<int32_t> longer = ids;
  longer.push_back(5);
  const std::vector<float> clean = RunChunked(longer, longer.size());
  EXPECT_EQ(0, std::memcmp(out.logits.data(), clean.data() + (longer.size() - 1) * vocab_,
                           vocab_ * sizeof(float)));
}

std::vector<std::string> ConsistencyFixtures() {
  std::vector<std::string> names;
  for (const std::string& n : testing::GoldenFixtureNames()) {
    if (n == "mamba2_f32_g2_chunk16_tied" || n == "mamba2_bf16_g4" ||
        n.rfind("bamba_", 0) == 0 || n.rfind("mamba_", 0) == 0) {
      names.push_back(n);
    }
  }
  return names;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SsmConsistencyTest, ::testing::ValuesIn(ConsistencyFixtures()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace hybridserve::engine
