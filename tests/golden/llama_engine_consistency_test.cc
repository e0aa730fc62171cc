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
  for (uint32_t seed : {11u, 12u}) {
    ASSERT_NO_FATAL_FAILURE(
        testing::ExpectRandomBatchMatesChangeNothing(*engine_, 70, 12, seed));
  }
}

TEST_P(EngineConsistencyTest, ThreadCountChangesNothing) {
  // The longest case whole and in chunks of 5, and a batch of mixed prompts,
  // on this 2-thread engine and on a 1-thread one: bitwise equal.
  const std::vector<int32_t>& ids = fixture_.cases.back().full_ids;
  const int lengths[4] = {1, 9, 33, 100};
  const auto prompts = testing::RandomPrompts(lengths, vocab_, 5);
  auto run = [&](Engine& e, std::vector<float>* whole, std::vector<float>* chunked,
                 std::vector<std::vector<std::vector<float>>>* batch) {
    *whole = testing::RunChunked(e, ids, ids.size());
    *chunked = testing::RunChunked(e, ids, 5);
    ASSERT_NO_FATAL_FAILURE(testing::RunEachAlone(e, prompts, {{.tokens = {3}}}, batch));
  };
  std::vector<float> whole2, chunked2, whole1, chunked1;
  std::vector<std::vector<std::vector<float>>> batch2, batch1;
  ASSERT_NO_FATAL_FAILURE(run(*engine_, &whole2, &chunked2, &batch2));
  EngineOptions one = engine_options_;
  one.num_threads = 1;
  auto e1 = Engine::Create(one);
  ASSERT_TRUE(e1.ok()) << e1.status();
  ASSERT_NO_FATAL_FAILURE(run(**e1, &whole1, &chunked1, &batch1));
  EXPECT_TRUE(whole1 == whole2) << "whole prefill, 1 vs 2 threads";
  EXPECT_TRUE(chunked1 == chunked2) << "chunked prefill, 1 vs 2 threads";
  EXPECT_TRUE(chunked1 == whole1) << "chunked vs whole, 1 thread";
  EXPECT_TRUE(batch1 == batch2) << "prompts and a decode step, 1 vs 2 threads";
  // Together on the 1-thread engine equals alone on the 2-thread one.
  PlanBuilder builder = testing::NewPlanBuilder(**e1);
  testing::ExpectBatchedEqualsAlone(**e1, builder, prompts, {{.tokens = {3}}}, batch2);
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
