// Incremental decode, chunked prefill and batching on a transformers-written
// Llama checkpoint: each must reproduce one full forward pass. On the CPU
// backend every row is computed independently of the batch (class (b)), so
// batched vs alone is checked bitwise; incremental and chunked prefill are
// class (c) and checked within the f32 tolerance (and reported).
#include <cstring>
#include <vector>

#include "engine/runtime/engine.h"
#include "engine/runtime/plan_builder.h"
#include "gtest/gtest.h"
#include "tests/testing/engine_test_util.h"

namespace hybridserve::engine {
namespace {

class EngineConsistencyTest : public testing::GoldenEngineTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(LoadFixtureAndEngine(testing::CpuEngineOptions(
        {.kv_cache_bytes = 16 << 20, .max_num_tokens = 512, .max_num_seqs = 16})));
  }
};

TEST_P(EngineConsistencyTest, IncrementalDecodeIsBitwiseIdenticalToFullForward) {
  testing::ExpectIncrementalDecodeBitwiseEqualsFullForward(*engine_, fixture_);
}

TEST_P(EngineConsistencyTest, ChunkedPrefillIsBitwiseIdenticalToWhole) {
  testing::ExpectChunkedPrefillBitwiseEqualsWhole(*engine_, fixture_);
}

TEST_P(EngineConsistencyTest, RandomBatchMatesChangeNothing) {
  testing::ExpectRandomBatchMatesChangeNothing(*engine_, 70, 12, {11u, 12u});
}

TEST_P(EngineConsistencyTest, ThreadCountChangesNothing) {
  testing::ExpectThreadCountChangesNothing(*engine_, engine_options_, fixture_);
}

TEST_P(EngineConsistencyTest, BatchedSequencesAreBitwiseIdenticalToAlone) {
  // 8 sequences of different lengths, mixing a long prefill, short prompts and
  // sequences that are decoding (prefilled in an earlier step).
  const int lengths[8] = {1, 3, 5, 16, 17, 33, 64, 100};
  const std::vector<std::vector<int32_t>> prompts = testing::RandomPrompts(lengths, vocab_, 7);
  // Alone: each sequence's prefill logits, then one decode step (token 42).
  std::vector<std::vector<std::vector<float>>> alone;  // [sequence][step]
  ASSERT_NO_FATAL_FAILURE(testing::RunEachAlone(*engine_, prompts, {{.tokens = {42}}}, &alone));
  // Together: all 8 prefills in one plan, then all 8 decodes in one plan.
  PlanBuilder builder = testing::NewPlanBuilder(*engine_);
  testing::ExpectBatchedEqualsAlone(*engine_, builder, prompts, {{.tokens = {42}}}, alone);
}

TEST_P(EngineConsistencyTest, InvalidPlansAreRejectedWithoutSideEffects) {
  const auto& ids = fixture_.cases[0].full_ids;
  const std::vector<float> before = testing::RunChunked(*engine_, ids, ids.size());
  PlanBuilder builder = testing::NewPlanBuilder(*engine_);
  auto good = builder.Build({{.seq_id = 0, .tokens = ids}});
  ASSERT_TRUE(good.ok());
  StepOutput out;
  StepPlan bad = *good;
  bad.token_ids[0] = static_cast<int32_t>(vocab_);  // out of vocabulary
  EXPECT_EQ(engine_->Step(bad, &out).code(), absl::StatusCode::kInvalidArgument);
  bad = *good;
  bad.positions[1] += 1;
  EXPECT_EQ(engine_->Step(bad, &out).code(), absl::StatusCode::kInvalidArgument);
  bad = *good;
  bad.block_table[0] = static_cast<int32_t>(engine_->memory_plan().num_blocks);
  EXPECT_EQ(engine_->Step(bad, &out).code(), absl::StatusCode::kInvalidArgument);
  bad = *good;
  bad.logits_indices = {static_cast<int32_t>(ids.size())};
  EXPECT_EQ(engine_->Step(bad, &out).code(), absl::StatusCode::kInvalidArgument);
  // The engine still computes the same thing afterwards.
  const std::vector<float> after = testing::RunChunked(*engine_, ids, ids.size());
  EXPECT_EQ(0, std::memcmp(before.data(), after.data(), before.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineConsistencyTest,
                         ::testing::Values("llama_f32_gqa_tied", "llama_bf16_linear_bias",
                                           "qwen3_f32_gqa_headdim", "qwen3_bf16_bias_mqa",
                                           "qwen2_f32_gqa", "mistral_bf16_headdim",
                                           "llama_f32_headdim_llama3"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace hybridserve::engine
