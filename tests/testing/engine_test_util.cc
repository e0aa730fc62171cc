#include "tests/testing/engine_test_util.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/testing/golden_checks.h"

namespace hybridserve::testing {

using engine::Engine;
using engine::PlanBuilder;
using engine::StepOutput;

engine::EngineOptions CpuEngineOptions(const CpuEngineSizes& sizes) {
  engine::EngineOptions o;
  o.device = "cpu";
  o.num_threads = 2;
  o.block_tokens = 16;
  if (sizes.kv_cache_bytes > 0) o.kv_cache_bytes = sizes.kv_cache_bytes;
  if (sizes.max_num_tokens > 0) o.max_num_tokens = sizes.max_num_tokens;
  if (sizes.max_num_seqs > 0) o.max_num_seqs = sizes.max_num_seqs;
  if (sizes.max_model_len > 0) o.max_model_len = sizes.max_model_len;
  return o;
}

void GoldenEngineTest::LoadFixtureAndEngine(engine::EngineOptions options) {
  auto fixture = LoadGoldenFixture(GetParam());
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  fixture_ = *std::move(fixture);
  options.model_dir = fixture_.dir;
  auto e = Engine::Create(options);
  ASSERT_TRUE(e.ok()) << e.status();
  engine_ = *std::move(e);
  vocab_ = engine_->config().vocab_size;
}

PlanBuilder NewPlanBuilder(const Engine& e) {
  const engine::MemoryPlan& m = e.memory_plan();
  return PlanBuilder(m.num_blocks, m.block_tokens, m.num_state_slots);
}

std::vector<float> RunChunked(Engine& e, const std::vector<int32_t>& ids, size_t chunk) {
  PlanBuilder builder = NewPlanBuilder(e);
  std::vector<float> all;
  StepOutput out;
  for (size_t first = 0; first < ids.size(); first += chunk) {
    const size_t n = std::min(chunk, ids.size() - first);
    auto plan = builder.Build({{.seq_id = 0,
                                .tokens = {ids.begin() + first, ids.begin() + first + n},
                                .all_logits = true}});
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return {};
    absl::Status st = e.Step(*plan, &out);
    EXPECT_TRUE(st.ok()) << st;
    all.insert(all.end(), out.logits.begin(), out.logits.end());
  }
  return all;
}

void RunIncremental(Engine& e, const std::vector<int32_t>& prompt,
                    const std::vector<int32_t>& full_ids, std::vector<float>* logits) {
  PlanBuilder builder = NewPlanBuilder(e);
  StepOutput out;
  auto plan = builder.Build({{.seq_id = 0, .tokens = prompt, .all_logits = true}});
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(e.Step(*plan, &out).ok());
  *logits = out.logits;
  for (size_t p = prompt.size(); p < full_ids.size(); ++p) {
    plan = builder.Build({{.seq_id = 0, .tokens = {full_ids[p]}}});
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(e.Step(*plan, &out).ok());
    logits->insert(logits->end(), out.logits.begin(), out.logits.end());
  }
}

void ExpectIncrementalDecodeMatchesFullForward(Engine& e, const GoldenFixture& f,
                                               double tolerance) {
  for (const GoldenCase& gc : f.cases) {
    const std::vector<float> full = RunChunked(e, gc.full_ids, gc.full_ids.size());
    std::vector<float> incremental;
    ASSERT_NO_FATAL_FAILURE(RunIncremental(e, gc.prompt_ids, gc.full_ids, &incremental));
    const double gap = MaxAbsDiff(incremental, full);
    std::printf("[consistency] %s incremental vs full: max |diff| = %.3g\n", f.name.c_str(),
                gap);
    EXPECT_LE(gap, tolerance);
  }
}

void ExpectChunkedPrefillMatchesFullForward(Engine& e, const GoldenFixture& f,
                                            double tolerance) {
  const std::vector<int32_t>& ids = f.cases.back().full_ids;  // the longest case
  const std::vector<float> full = RunChunked(e, ids, ids.size());
  for (size_t chunk : {1, 7, 64}) {
    const double gap = MaxAbsDiff(RunChunked(e, ids, chunk), full);
    std::printf("[consistency] %s chunks of %zu vs full: max |diff| = %.3g\n", f.name.c_str(),
                chunk, gap);
    EXPECT_LE(gap, tolerance) << "chunk " << chunk;
  }
}

std::vector<std::vector<int32_t>> RandomPrompts(absl::Span<const int> lengths, int64_t vocab,
                                                uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::vector<std::vector<int32_t>> prompts;
  for (int len : lengths) {
    std::vector<int32_t> p(len);
    for (auto& t : p) t = token(gen);
    prompts.push_back(p);
  }
  return prompts;
}

void RunEachAlone(Engine& e, const std::vector<std::vector<int32_t>>& prompts,
                  absl::Span<const PlanBuilder::Chunk> continuations,
                  std::vector<std::vector<std::vector<float>>>* logits) {
  logits->clear();
  for (const std::vector<int32_t>& p : prompts) {
    PlanBuilder builder = NewPlanBuilder(e);
    StepOutput out;
    auto plan = builder.Build({{.seq_id = 0, .tokens = p, .all_logits = true}});
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(e.Step(*plan, &out).ok());
    logits->push_back({out.logits});
    for (PlanBuilder::Chunk next : continuations) {
      next.seq_id = 0;
      plan = builder.Build({next});
      ASSERT_TRUE(plan.ok());
      ASSERT_TRUE(e.Step(*plan, &out).ok());
      logits->back().push_back(out.logits);
    }
  }
}

void ExpectStepBitwiseEqual(Engine& e, PlanBuilder& builder,
                            absl::Span<const PlanBuilder::Chunk> chunks,
                            absl::Span<const std::vector<float>* const> expected,
                            const std::string& what) {
  ASSERT_EQ(chunks.size(), expected.size());
  auto plan = builder.Build(chunks);
  ASSERT_TRUE(plan.ok());
  StepOutput out;
  ASSERT_TRUE(e.Step(*plan, &out).ok());
  size_t total = 0;
  for (const std::vector<float>* x : expected) total += x->size();
  ASSERT_EQ(out.logits.size(), total) << what;
  size_t offset = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(out.logits.data() + offset, expected[i]->data(),
                             expected[i]->size() * sizeof(float)))
        << what << " of sequence " << chunks[i].seq_id << " (" << chunks[i].tokens.size()
        << " tokens)";
    offset += expected[i]->size();
  }
}

void ExpectBatchedEqualsAlone(Engine& e, PlanBuilder& builder,
                              const std::vector<std::vector<int32_t>>& prompts,
                              absl::Span<const PlanBuilder::Chunk> continuations,
                              const std::vector<std::vector<std::vector<float>>>& alone) {
  ASSERT_EQ(alone.size(), prompts.size());
  std::vector<PlanBuilder::Chunk> chunks;
  std::vector<const std::vector<float>*> expected;
  for (size_t i = 0; i < prompts.size(); ++i) {
    chunks.push_back({.seq_id = static_cast<int64_t>(i), .tokens = prompts[i], .all_logits = true});
    expected.push_back(&alone[i][0]);
  }
  ASSERT_NO_FATAL_FAILURE(ExpectStepBitwiseEqual(e, builder, chunks, expected, "prefill"));
  for (size_t k = 0; k < continuations.size(); ++k) {
    for (size_t i = 0; i < prompts.size(); ++i) {
      ASSERT_GT(alone[i].size(), k + 1);
      chunks[i] = continuations[k];
      chunks[i].seq_id = static_cast<int64_t>(i);
      expected[i] = &alone[i][k + 1];
    }
    ASSERT_NO_FATAL_FAILURE(ExpectStepBitwiseEqual(e, builder, chunks, expected,
                                                   absl::StrCat("continuation ", k)));
  }
}

void ExpectGreedyThroughEngine(Engine& e, const std::vector<int32_t>& prompt,
                               const std::vector<int32_t>& expected) {
  PlanBuilder builder = NewPlanBuilder(e);
  StepOutput out;
  auto plan = builder.Build({{.seq_id = 0, .tokens = prompt}});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(e.Step(*plan, &out).ok());
  for (size_t i = 0; i < expected.size(); ++i) {
    const int32_t next = static_cast<int32_t>(
        std::max_element(out.logits.begin(), out.logits.end()) - out.logits.begin());
    EXPECT_EQ(expected[i], next) << "token " << i;
    plan = builder.Build({{.seq_id = 0, .tokens = {next}}});
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(e.Step(*plan, &out).ok());
  }
}

}  // namespace hybridserve::testing
