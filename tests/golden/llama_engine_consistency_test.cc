// Incremental decode, chunked prefill and batching on a transformers-written
// Llama checkpoint: each must reproduce one full forward pass. On the CPU
// backend every row is computed independently of the batch (class (b)), so
// batched vs alone is checked bitwise; incremental and chunked prefill are
// class (c) and checked within the f32 tolerance (and reported).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "engine/runtime/engine.h"
#include "engine/runtime/plan_builder.h"
#include "gtest/gtest.h"
#include "tests/testing/golden.h"

namespace hybridserve::engine {
namespace {

constexpr double kTolerance = 1e-3;

class EngineConsistencyTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto fixture = testing::LoadGoldenFixture(GetParam());
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    fixture_ = *std::move(fixture);
    EngineOptions o;
    o.model_dir = fixture_.dir;
    o.device = "cpu";
    o.num_threads = 2;
    o.kv_cache_bytes = 16 << 20;
    o.block_tokens = 16;
    o.max_num_tokens = 512;
    o.max_num_seqs = 16;
    auto e = Engine::Create(o);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = *std::move(e);
    vocab_ = engine_->config().vocab_size;
  }

  // Runs `chunks` of sequence 0 (fresh) and returns the logits of every token.
  std::vector<float> RunChunked(const std::vector<int32_t>& ids, size_t chunk) {
    PlanBuilder builder(engine_->memory_plan().num_blocks, engine_->memory_plan().block_tokens);
    std::vector<float> all;
    StepOutput out;
    for (size_t first = 0; first < ids.size(); first += chunk) {
      const size_t n = std::min(chunk, ids.size() - first);
      auto plan = builder.Build({{.seq_id = 0,
                                  .tokens = {ids.begin() + first, ids.begin() + first + n},
                                  .all_logits = true}});
      EXPECT_TRUE(plan.ok()) << plan.status();
      absl::Status st = engine_->Step(*plan, &out);
      EXPECT_TRUE(st.ok()) << st;
      all.insert(all.end(), out.logits.begin(), out.logits.end());
    }
    return all;
  }

  double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double m = 0.0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      m = std::max(m, std::abs(double(a[i]) - b[i]));
    }
    return m;
  }

  testing::GoldenFixture fixture_;
  std::unique_ptr<Engine> engine_;
  int64_t vocab_ = 0;
};

TEST_P(EngineConsistencyTest, IncrementalDecodeMatchesFullForward) {
  for (const auto& gc : fixture_.cases) {
    const std::vector<float> full = RunChunked(gc.full_ids, gc.full_ids.size());
    // Prefill the prompt, then one token per step.
    PlanBuilder builder(engine_->memory_plan().num_blocks, engine_->memory_plan().block_tokens);
    StepOutput out;
    auto plan = builder.Build({{.seq_id = 0, .tokens = gc.prompt_ids, .all_logits = true}});
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(engine_->Step(*plan, &out).ok());
    std::vector<float> incremental = out.logits;
    for (size_t p = gc.prompt_ids.size(); p < gc.full_ids.size(); ++p) {
      plan = builder.Build({{.seq_id = 0, .tokens = {gc.full_ids[p]}}});
      ASSERT_TRUE(plan.ok());
      ASSERT_TRUE(engine_->Step(*plan, &out).ok());
      incremental.insert(incremental.end(), out.logits.begin(), out.logits.end());
    }
    const double gap = MaxAbsDiff(incremental, full);
    std::printf("[consistency] %s incremental vs full: max |diff| = %.3g\n", GetParam().c_str(), gap);
    EXPECT_LE(gap, kTolerance);
  }
}

TEST_P(EngineConsistencyTest, ChunkedPrefillMatchesFullForward) {
  const auto& ids = fixture_.cases.back().full_ids;  // the longest case
  const std::vector<float> full = RunChunked(ids, ids.size());
  for (size_t chunk : {1, 7, 64}) {
    const double gap = MaxAbsDiff(RunChunked(ids, chunk), full);
    std::printf("[consistency] %s chunks of %zu vs full: max |diff| = %.3g\n",
                GetParam().c_str(), chunk, gap);
    EXPECT_LE(gap, kTolerance) << "chunk " << chunk;
  }
}

TEST_P(EngineConsistencyTest, BatchedSequencesAreBitwiseIdenticalToAlone) {
  // 8 sequences of different lengths, mixing a long prefill, short prompts and
  // sequences that are decoding (prefilled in an earlier step).
  const int lengths[8] = {1, 3, 5, 16, 17, 33, 64, 100};
  std::mt19937 gen(7);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab_ - 1));
  std::vector<std::vector<int32_t>> prompts;
  for (int len : lengths) {
    std::vector<int32_t> p(len);
    for (auto& t : p) t = token(gen);
    prompts.push_back(p);
  }
  // Alone: each sequence's prefill logits, then one decode step (token 42).
  std::vector<std::vector<float>> alone_prefill, alone_decode;
  for (const auto& p : prompts) {
    PlanBuilder builder(engine_->memory_plan().num_blocks, engine_->memory_plan().block_tokens);
    StepOutput out;
    auto plan = builder.Build({{.seq_id = 0, .tokens = p, .all_logits = true}});
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(engine_->Step(*plan, &out).ok());
    alone_prefill.push_back(out.logits);
    plan = builder.Build({{.seq_id = 0, .tokens = {42}}});
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(engine_->Step(*plan, &out).ok());
    alone_decode.push_back(out.logits);
  }
  // Together: all 8 prefills in one plan, then all 8 decodes in one plan.
  PlanBuilder builder(engine_->memory_plan().num_blocks, engine_->memory_plan().block_tokens);
  std::vector<PlanBuilder::Chunk> chunks;
  for (size_t i = 0; i < prompts.size(); ++i) {
    chunks.push_back({.seq_id = static_cast<int64_t>(i), .tokens = prompts[i], .all_logits = true});
  }
  auto plan = builder.Build(chunks);
  ASSERT_TRUE(plan.ok());
  StepOutput out;
  ASSERT_TRUE(engine_->Step(*plan, &out).ok());
  size_t offset = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_EQ(0, std::memcmp(out.logits.data() + offset, alone_prefill[i].data(),
                             alone_prefill[i].size() * sizeof(float)))
        << "prefill of sequence " << i << " (length " << lengths[i] << ")";
    offset += alone_prefill[i].size();
  }
  chunks.clear();
  for (size_t i = 0; i < prompts.size(); ++i) {
    chunks.push_back({.seq_id = static_cast<int64_t>(i), .tokens = {42}});
  }
  plan = builder.Build(chunks);
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(engine_->Step(*plan, &out).ok());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(out.logits.data() + i * vocab_, alone_decode[i].data(),
                             vocab_ * sizeof(float)))
        << "decode of sequence " << i;
  }
}

TEST_P(EngineConsistencyTest, InvalidPlansAreRejectedWithoutSideEffects) {
  const auto& ids = fixture_.cases[0].full_ids;
  const std::vector<float> before = RunChunked(ids, ids.size());
  PlanBuilder builder(engine_->memory_plan().num_blocks, engine_->memory_plan().block_tokens);
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
  const std::vector<float> after = RunChunked(ids, ids.size());
  EXPECT_EQ(0, std::memcmp(before.data(), after.data(), before.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineConsistencyTest,
                         ::testing::Values("llama_f32_gqa_tied", "llama_bf16_linear_bias",
                                           "llama_f32_headdim_llama3"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace hybridserve::engine
