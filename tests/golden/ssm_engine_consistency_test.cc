// Incremental decode, chunked prefill and batching on transformers-written SSM
// and hybrid checkpoints: each must reproduce one full forward pass. The SSM
// state travels between steps in the engine's state slots, so these check the
// slot plumbing as much as the ops. Batched vs alone is class (b), bitwise;
// incremental and chunked prefill are class (c), within the f32 tolerance.
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

class SsmConsistencyTest : public ::testing::TestWithParam<std::string> {
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
    o.max_model_len = 256;
    auto e = Engine::Create(o);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = *std::move(e);
    vocab_ = engine_->config().vocab_size;
  }

  PlanBuilder NewBuilder() const {
    const MemoryPlan& m = engine_->memory_plan();
    return PlanBuilder(m.num_blocks, m.block_tokens, m.num_state_slots);
  }

  // Runs `ids` as sequence 0 (fresh) in chunks; returns every token's logits.
  std::vector<float> RunChunked(const std::vector<int32_t>& ids, size_t chunk) {
    PlanBuilder builder = NewBuilder();
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

TEST_P(SsmConsistencyTest, MemoryPlanHasStateSlots) {
  const MemoryPlan& m = engine_->memory_plan();
  EXPECT_GT(m.state_bytes_per_slot, 0u);
  EXPECT_EQ(m.num_state_slots, 16);  // min(max_num_seqs, budget)
  EXPECT_EQ(m.state_cache_bytes, m.num_state_slots * m.state_bytes_per_slot);
  EXPECT_EQ(m.state_bytes_per_slot, engine_->config().state_bytes_per_seq());
  EXPECT_LE(m.state_cache_bytes + m.kv_cache_bytes, 16u << 20);
  std::printf("[plan] %s: %s\n", GetParam().c_str(), m.ToString().c_str());
}

TEST_P(SsmConsistencyTest, IncrementalDecodeMatchesFullForward) {
  for (const auto& gc : fixture_.cases) {
    const std::vector<float> full = RunChunked(gc.full_ids, gc.full_ids.size());
    PlanBuilder builder = NewBuilder();
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
    std::printf("[consistency] %s incremental vs full: max |diff| = %.3g\n",
                GetParam().c_str(), gap);
    EXPECT_LE(gap, kTolerance);
  }
}

TEST_P(SsmConsistencyTest, ChunkedPrefillMatchesFullForward) {
  const auto& ids = fixture_.cases.back().full_ids;  // the longest case
  const std::vector<float> full = RunChunked(ids, ids.size());
  for (size_t chunk : {1, 7, 64}) {
    const double gap = MaxAbsDiff(RunChunked(ids, chunk), full);
    std::printf("[consistency] %s chunks of %zu vs full: max |diff| = %.3g\n",
                GetParam().c_str(), chunk, gap);
    EXPECT_LE(gap, kTolerance) << "chunk " << chunk;
  }
}

TEST_P(SsmConsistencyTest, BatchedSequencesAreBitwiseIdenticalToAlone) {
  // 8 sequences of different lengths: prefills in one plan, then decodes in
  // one plan, then a mixed plan (a new prefill among decodes).
  const int lengths[8] = {1, 3, 5, 16, 17, 33, 64, 100};
  std::mt19937 gen(7);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab_ - 1));
  std::vector<std::vector<int32_t>> prompts;
  for (int len : lengths) {
    std::vector<int32_t> p(len);
    for (auto& t : p) t = token(gen);
    prompts.push_back(p);
  }
  std::vector<std::vector<float>> alone_prefill, alone_decode, alone_second;
  for (const auto& p : prompts) {
    PlanBuilder builder = NewBuilder();
    StepOutput out;
    auto plan = builder.Build({{.seq_id = 0, .tokens = p, .all_logits = true}});
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(engine_->Step(*plan, &out).ok());
    alone_prefill.push_back(out.logits);
    plan = builder.Build({{.seq_id = 0, .tokens = {42}}});
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(engine_->Step(*plan, &out).ok());
    alone_decode.push_back(out.logits);
    plan = builder.Build({{.seq_id = 0, .tokens = {7, 8, 9}, .all_logits = true}});
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(engine_->Step(*plan, &out).ok());
    alone_second.push_back(out.logits);
  }
  // Together, in a builder whose slots are handed out in a different order
  // (a throwaway sequence takes slot 0 first).
  PlanBuilder builder = NewBuilder();
  ASSERT_TRUE(builder.Build({{.seq_id = 99, .tokens = {1}}}).ok());
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
  // Mixed: every sequence continues with 3 tokens, plus a fresh prefill.
  chunks.clear();
  for (size_t i = 0; i < prompts.size(); ++i) {
    chunks.push_back({.seq_id = static_cast<int64_t>(i), .tokens = {7, 8, 9}, .all_logits = true});
  }
  chunks.push_back({.seq_id = 100, .tokens = prompts[6], .all_logits = true});
  plan = builder.Build(chunks);
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(engine_->Step(*plan, &out).ok());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(out.logits.data() + i * 3 * vocab_, alone_second[i].data(),
                             3 * vocab_ * sizeof(float)))
        << "continuation of sequence " << i;
  }
  EXPECT_EQ(0, std::memcmp(out.logits.data() + 8 * 3 * vocab_, alone_prefill[6].data(),
                           alone_prefill[6].size() * sizeof(float)))
      << "fresh prefill among continuations";
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
