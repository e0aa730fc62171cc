// Helpers for tests that drive an Engine directly on the CPU backend (no
// scheduler): engines made for golden fixtures, prompts run whole, in chunks
// or token by token, and batched runs compared with runs alone. Failures are
// gtest failures; helpers returning void report fatal ones, so call them
// inside ASSERT_NO_FATAL_FAILURE where the test must stop.
#ifndef HYBRIDSERVE_TESTS_TESTING_ENGINE_TEST_UTIL_H_
#define HYBRIDSERVE_TESTS_TESTING_ENGINE_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/plan_builder.h"
#include "gtest/gtest.h"
#include "tests/testing/golden.h"

namespace hybridserve::testing {

// What CpuEngineOptions sizes; 0 keeps EngineOptions' default.
struct CpuEngineSizes {
  uint64_t kv_cache_bytes = 0;
  int64_t max_num_tokens = 0;
  int64_t max_num_seqs = 0;
  int64_t max_model_len = 0;
};
// CPU engine options for tests: 2 threads, 16-token blocks and `sizes`;
// model_dir left empty.
engine::EngineOptions CpuEngineOptions(const CpuEngineSizes& sizes);

// A test parameterized by a golden fixture's name, with the fixture and a CPU
// engine on its checkpoint.
class GoldenEngineTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Loads fixture GetParam() into fixture_ and creates engine_ from `options`
  // (model_dir set to the fixture's checkpoint). Fatal failure on error.
  void LoadFixtureAndEngine(engine::EngineOptions options);

  GoldenFixture fixture_;
  engine::EngineOptions engine_options_;  // what engine_ was made with
  std::unique_ptr<engine::Engine> engine_;
  int64_t vocab_ = 0;
};

// A PlanBuilder over all of the engine's KV blocks and state slots.
engine::PlanBuilder NewPlanBuilder(const engine::Engine& e);

// Runs `ids` as a fresh sequence 0 of a new PlanBuilder, `chunk` tokens per
// step, and returns the logits of every token ([ids.size(), vocab]).
std::vector<float> RunChunked(engine::Engine& e, const std::vector<int32_t>& ids,
                              size_t chunk);

// Prefills `prompt` as a fresh sequence 0 (logits of every token), then feeds
// full_ids[prompt.size()...] one token per step; *logits gets every step's
// logits in order ([full_ids.size(), vocab]).
void RunIncremental(engine::Engine& e, const std::vector<int32_t>& prompt,
                    const std::vector<int32_t>& full_ids, std::vector<float>* logits);

// Runs `ids` as a fresh sequence 0 of a new PlanBuilder in steps of
// `sizes[0]`, `sizes[1]`, ... tokens (the sizes must sum to ids.size()) and
// returns the logits of every token ([ids.size(), vocab]).
std::vector<float> RunSplits(engine::Engine& e, const std::vector<int32_t>& ids,
                             absl::Span<const size_t> sizes);

// Step sizes that split `len` tokens at random points (each at least 1), from
// a std::mt19937 seeded with `seed`.
std::vector<size_t> RandomSplit(size_t len, uint32_t seed);

// Class (b) checks against one full forward pass, bitwise (DESIGN.md section
// 7): every case's incremental decode (RunIncremental); the longest case
// prefilled in chunks of 1, 7 and 64 tokens and split at random points.
void ExpectIncrementalDecodeBitwiseEqualsFullForward(engine::Engine& e, const GoldenFixture& f);
void ExpectChunkedPrefillBitwiseEqualsWhole(engine::Engine& e, const GoldenFixture& f);

// Class (b) under load: a target sequence (a random prompt of `prompt_len`
// tokens, then `decode_len` teacher-forced tokens) is run alone in one
// prefill and one step per decode token, then again among random batch mates
// — fresh prefills, prompt chunks and decodes of other sequences, in random
// number and order, the target's own prompt split at random points — and
// every logit of the target must be bitwise equal to the run alone.
void ExpectRandomBatchMatesChangeNothing(engine::Engine& e, int prompt_len, int decode_len,
                                         std::initializer_list<uint32_t> seeds);

// Class (b) across thread counts: the longest case of `f` whole and in chunks
// of 5, and a batch of mixed prompts with a decode step, on `e` and on a
// 1-thread engine made from `options`: bitwise equal, alone and batched.
void ExpectThreadCountChangesNothing(engine::Engine& e, const engine::EngineOptions& options,
                                     const GoldenFixture& f);

// One prompt of uniformly random tokens in [0, vocab) per length, from a
// std::mt19937 seeded with `seed`.
std::vector<std::vector<int32_t>> RandomPrompts(absl::Span<const int> lengths, int64_t vocab,
                                                uint32_t seed);

// Runs each prompt alone, as a fresh sequence 0 of its own PlanBuilder: its
// prefill (logits of every token), then each of `continuations` as one step
// (their seq_id is ignored). (*logits)[i][0] is prompt i's prefill logits,
// (*logits)[i][k] those of continuation k - 1.
void RunEachAlone(engine::Engine& e, const std::vector<std::vector<int32_t>>& prompts,
                  absl::Span<const engine::PlanBuilder::Chunk> continuations,
                  std::vector<std::vector<std::vector<float>>>* logits);

// Runs `chunks` as one plan of `builder` and expects the logits of chunk i
// (in plan order) to be bitwise equal to *expected[i]; `what` names the step
// in messages.
void ExpectStepBitwiseEqual(engine::Engine& e, engine::PlanBuilder& builder,
                            absl::Span<const engine::PlanBuilder::Chunk> chunks,
                            absl::Span<const std::vector<float>* const> expected,
                            const std::string& what);

// Runs `prompts` together in `builder` as sequences 0..n-1: their prefills in
// one plan, then each of `continuations` for all of them in one plan each,
// expecting every sequence's logits bitwise equal to alone[i][step] (as
// RunEachAlone returns them).
void ExpectBatchedEqualsAlone(engine::Engine& e, engine::PlanBuilder& builder,
                              const std::vector<std::vector<int32_t>>& prompts,
                              absl::Span<const engine::PlanBuilder::Chunk> continuations,
                              const std::vector<std::vector<std::vector<float>>>& alone);

// Runs `prompt` as a fresh sequence 0 and then greedy decoding straight
// through Engine::Step, expecting token i of `expected` to be the argmax of
// step i's logits.
void ExpectGreedyThroughEngine(engine::Engine& e, const std::vector<int32_t>& prompt,
                               const std::vector<int32_t>& expected);

}  // namespace hybridserve::testing

#endif  // HYBRIDSERVE_TESTS_TESTING_ENGINE_TEST_UTIL_H_
