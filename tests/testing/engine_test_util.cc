#include "tests/testing/engine_test_util.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
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
  engine_options_ = options;
  auto e = Engine::Create(options);
  ASSERT_TRUE(e.ok()) << e.status();
  engine_ = *std::move(e);
  vocab_ = engine_->config().vocab_size;
}

PlanBuilder NewPlanBuilder(const Engine& e) {
  const engine::MemoryPlan& m = e.memory_plan();
  return PlanBuilder(m.num_blocks, m.block_tokens, m.num_state_slots);
}

std::vector<float> RunSplits(Engine& e, const std::vector<int32_t>& ids,
                             absl::Span<const size_t> sizes) {
  PlanBuilder builder = NewPlanBuilder(e);
  std::vector<float> all;
  StepOutput out;
  size_t first = 0;
  for (size_t n : sizes) {
    EXPECT_LE(first + n, ids.size());
    if (n == 0 || first + n > ids.size()) return {};
    auto plan = builder.Build({{.seq_id = 0,
                                .tokens = {ids.begin() + first, ids.begin() + first + n},
                                .all_logits = true}});
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return {};
    absl::Status st = e.Step(*plan, &out);
    EXPECT_TRUE(st.ok()) << st;
    all.insert(all.end(), out.logits.begin(), out.logits.end());
    first += n;
  }
  EXPECT_EQ(first, ids.size());
  return all;
}

std::vector<float> RunChunked(Engine& e, const std::vector<int32_t>& ids, size_t chunk) {
  std::vector<size_t> sizes;
  for (size_t first = 0; first < ids.size(); first += chunk) {
    sizes.push_back(std::min(chunk, ids.size() - first));
  }
  return RunSplits(e, ids, sizes);
}

std::vector<size_t> RandomSplit(size_t len, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<size_t> sizes;
  for (size_t done = 0; done < len;) {
    // Mostly short chunks, now and then a long one.
    std::uniform_int_distribution<size_t> short_or_long(0, 3);
    const size_t most = short_or_long(gen) == 0 ? len - done : std::min<size_t>(len - done, 9);
    std::uniform_int_distribution<size_t> size(1, most);
    sizes.push_back(size(gen));
    done += sizes.back();
  }
  return sizes;
}

namespace {

// Bitwise comparison of two logits arrays of the same length, naming the
// first position (row of `vocab`) that differs and the largest gap.
void ExpectBitwiseEqual(const std::vector<float>& got, const std::vector<float>& want,
                        int64_t vocab, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  if (std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0) return;
  size_t first = 0;
  while (std::memcmp(&got[first], &want[first], sizeof(float)) == 0) ++first;
  ADD_FAILURE() << what << ": not bitwise identical; first difference at position "
                << first / vocab << " (" << got[first] << " vs " << want[first]
                << "), max |diff| " << MaxAbsDiff(got, want);
}

}  // namespace

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

void ExpectIncrementalDecodeBitwiseEqualsFullForward(Engine& e, const GoldenFixture& f) {
  const int64_t vocab = e.config().vocab_size;
  for (const GoldenCase& gc : f.cases) {
    const std::vector<float> full = RunChunked(e, gc.full_ids, gc.full_ids.size());
    std::vector<float> incremental;
    ASSERT_NO_FATAL_FAILURE(RunIncremental(e, gc.prompt_ids, gc.full_ids, &incremental));
    ExpectBitwiseEqual(incremental, full, vocab,
                       absl::StrCat(f.name, " incremental decode vs full forward"));
  }
}

void ExpectChunkedPrefillBitwiseEqualsWhole(Engine& e, const GoldenFixture& f) {
  const int64_t vocab = e.config().vocab_size;
  const std::vector<int32_t>& ids = f.cases.back().full_ids;  // the longest case
  const std::vector<float> full = RunChunked(e, ids, ids.size());
  for (size_t chunk : {1, 7, 64}) {
    ExpectBitwiseEqual(RunChunked(e, ids, chunk), full, vocab,
                       absl::StrCat(f.name, " chunks of ", chunk, " vs whole"));
  }
  for (uint32_t seed : {1u, 2u, 3u}) {
    const std::vector<size_t> sizes = RandomSplit(ids.size(), seed);
    ExpectBitwiseEqual(RunSplits(e, ids, sizes), full, vocab,
                       absl::StrCat(f.name, " random split ", seed, " (",
                                    sizes.size(), " steps) vs whole"));
  }
}

namespace {

void ExpectRandomBatchMatesChangeNothingOnce(Engine& e, int prompt_len, int decode_len,
                                             uint32_t seed) {
  const int64_t vocab = e.config().vocab_size;
  std::mt19937 gen(seed);
  const int lengths[] = {prompt_len + decode_len};
  const std::vector<int32_t> ids = RandomPrompts(lengths, vocab, seed)[0];
  // Alone: the prompt whole, then one step per decode token.
  std::vector<float> alone;
  ASSERT_NO_FATAL_FAILURE(
      RunIncremental(e, {ids.begin(), ids.begin() + prompt_len}, ids, &alone));

  // Together. Mates are sequences 1.., each with its own random prompt and a
  // random remaining budget of decode steps; the target is sequence 0.
  struct Mate {
    std::vector<int32_t> tokens;  // prompt, then decode tokens
    size_t fed = 0;               // tokens given to the engine so far
    size_t prompt_len = 0;
  };
  std::uniform_int_distribution<int> coin(0, 3);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::map<int64_t, Mate> mates;  // ordered: the same seed, the same run
  int64_t next_mate = 1;
  PlanBuilder builder = NewPlanBuilder(e);
  const int64_t max_seqs = std::min<int64_t>(8, e.max_num_seqs());
  std::vector<float> together;
  StepOutput out;
  size_t target_fed = 0;
  int step = 0;
  while (target_fed < ids.size()) {
    // New mates: a fresh prompt of 1..40 tokens and 1..12 decode tokens.
    while (static_cast<int64_t>(mates.size()) + 1 < max_seqs && coin(gen) != 0) {
      Mate m;
      m.prompt_len = std::uniform_int_distribution<size_t>(1, 40)(gen);
      m.tokens.resize(m.prompt_len + std::uniform_int_distribution<size_t>(1, 12)(gen));
      for (int32_t& t : m.tokens) t = token(gen);
      mates.emplace(next_mate++, std::move(m));
    }
    std::vector<PlanBuilder::Chunk> chunks;
    // The target's next piece: a random part of its prompt, else one token.
    const size_t target_n =
        target_fed < static_cast<size_t>(prompt_len)
            ? std::uniform_int_distribution<size_t>(1, prompt_len - target_fed)(gen)
            : 1;
    chunks.push_back({.seq_id = 0,
                      .tokens = {ids.begin() + target_fed, ids.begin() + target_fed + target_n},
                      .all_logits = true});
    for (auto& [id, m] : mates) {
      if (coin(gen) == 0) continue;  // this mate sits the step out
      const size_t n = m.fed < m.prompt_len
                           ? std::uniform_int_distribution<size_t>(1, m.prompt_len - m.fed)(gen)
                           : 1;
      chunks.push_back({.seq_id = id,
                        .tokens = {m.tokens.begin() + m.fed, m.tokens.begin() + m.fed + n},
                        .all_logits = coin(gen) == 0});
    }
    // The target at a random place in the plan.
    const size_t at = std::uniform_int_distribution<size_t>(0, chunks.size() - 1)(gen);
    std::swap(chunks[0], chunks[at]);
    auto plan = builder.Build(chunks);
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(e.Step(*plan, &out).ok()) << "step " << step;
    size_t row = 0;  // logits rows come in chunk order
    for (const PlanBuilder::Chunk& c : chunks) {
      const size_t rows = c.all_logits ? c.tokens.size() : 1;
      if (c.seq_id == 0) {
        together.insert(together.end(), out.logits.begin() + row * vocab,
                        out.logits.begin() + (row + rows) * vocab);
      } else {
        Mate& m = mates[c.seq_id];
        m.fed += c.tokens.size();
        if (m.fed == m.tokens.size()) {
          builder.Free(c.seq_id);
          mates.erase(c.seq_id);
        }
      }
      row += rows;
    }
    ASSERT_EQ(row * vocab, out.logits.size()) << "step " << step;
    target_fed += target_n;
    ++step;
  }
  ExpectBitwiseEqual(together, alone, vocab,
                     absl::StrCat("target among random batch mates (", step, " steps, seed ",
                                  seed, ") vs alone"));
}

}  // namespace

void ExpectRandomBatchMatesChangeNothing(Engine& e, int prompt_len, int decode_len,
                                         std::initializer_list<uint32_t> seeds) {
  for (uint32_t seed : seeds) {
    ASSERT_NO_FATAL_FAILURE(
        ExpectRandomBatchMatesChangeNothingOnce(e, prompt_len, decode_len, seed));
  }
}

void ExpectThreadCountChangesNothing(Engine& e, const engine::EngineOptions& options,
                                     const GoldenFixture& f) {
  const std::vector<int32_t>& ids = f.cases.back().full_ids;
  const int lengths[4] = {1, 9, 33, 100};
  const auto prompts = RandomPrompts(lengths, e.config().vocab_size, 5);
  auto run = [&](Engine& engine, std::vector<float>* whole, std::vector<float>* chunked,
                 std::vector<std::vector<std::vector<float>>>* batch) {
    *whole = RunChunked(engine, ids, ids.size());
    *chunked = RunChunked(engine, ids, 5);
    ASSERT_NO_FATAL_FAILURE(RunEachAlone(engine, prompts, {{.tokens = {3}}}, batch));
  };
  std::vector<float> whole_n, chunked_n, whole1, chunked1;
  std::vector<std::vector<std::vector<float>>> batch_n, batch1;
  ASSERT_NO_FATAL_FAILURE(run(e, &whole_n, &chunked_n, &batch_n));
  engine::EngineOptions one = options;
  one.num_threads = 1;
  auto e1 = Engine::Create(one);
  ASSERT_TRUE(e1.ok()) << e1.status();
  ASSERT_NO_FATAL_FAILURE(run(**e1, &whole1, &chunked1, &batch1));
  EXPECT_TRUE(whole1 == whole_n) << "whole prefill, 1 vs " << options.num_threads << " threads";
  EXPECT_TRUE(chunked1 == chunked_n) << "chunked prefill, 1 vs " << options.num_threads;
  EXPECT_TRUE(chunked1 == whole1) << "chunked vs whole, 1 thread";
  EXPECT_TRUE(batch1 == batch_n) << "prompts and a decode step, 1 vs " << options.num_threads;
  // Together on the 1-thread engine equals alone on the other one.
  PlanBuilder builder = NewPlanBuilder(**e1);
  ExpectBatchedEqualsAlone(**e1, builder, prompts, {{.tokens = {3}}}, batch_n);
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
