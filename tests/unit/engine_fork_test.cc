// Forking a sequence: PlanBuilder::Fork hands the copy its own blocks and
// slot, Engine::CopyKvBlocks / CopyStateSlot copy the cache, and the fork then
// decodes exactly as the original does (bitwise, class (b)), for every
// architecture.
#include <filesystem>
#include <memory>
#include <vector>

#include "engine/runtime/engine.h"
#include "engine/runtime/plan_builder.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"
#include "tools/lib/tiny_model.h"

namespace hybridserve::engine {
namespace {

using tools::TinyArchitecture;

std::unique_ptr<Engine> MakeEngine(TinyArchitecture a) {
  auto o = tools::TinyModelPreset(a, "tiny");
  EXPECT_TRUE(o.ok());
  o->seed = 21;
  const auto dir = testing::MakeTempDir() / "model";
  EXPECT_TRUE(tools::WriteTinyModel(*o, dir).ok());
  EngineOptions eo;
  eo.model_dir = dir;
  eo.device = "cpu";
  eo.num_threads = testing::TestCpuThreads();
  eo.kv_cache_bytes = 8 << 20;
  eo.max_num_tokens = 128;
  eo.max_num_seqs = 8;
  eo.max_model_len = 256;
  auto e = Engine::Create(eo);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : nullptr;
}

PlanBuilder MakeBuilder(const Engine& e) {
  return PlanBuilder(e.memory_plan().num_blocks, e.memory_plan().block_tokens,
                     e.memory_plan().num_state_slots);
}

absl::Status Fork(Engine& e, PlanBuilder& builder, int64_t src, int64_t dst) {
  auto copies = builder.Fork(src, dst);
  if (!copies.ok()) return copies.status();
  if (absl::Status s = e.CopyKvBlocks(copies->src_blocks, copies->dst_blocks); !s.ok()) {
    return s;
  }
  if (copies->src_slot >= 0) return e.CopyStateSlot(copies->src_slot, copies->dst_slot);
  return absl::OkStatus();
}

class EngineForkTest : public ::testing::TestWithParam<TinyArchitecture> {};

TEST_P(EngineForkTest, ForksDecodeLikeTheOriginal) {
  auto e = MakeEngine(GetParam());
  ASSERT_NE(e, nullptr);
  PlanBuilder builder = MakeBuilder(*e);
  std::vector<int32_t> prompt(37);  // 37: the last block is partly filled
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(i * 7 % 256);
  StepOutput out;
  auto plan = builder.Build({{.seq_id = 0, .tokens = prompt}});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(e->Step(*plan, &out).ok());

  const int64_t free_blocks = builder.num_free_blocks();
  const int64_t free_slots = builder.num_free_state_slots();
  for (int64_t f = 1; f <= 3; ++f) ASSERT_TRUE(Fork(*e, builder, 0, f).ok());
  EXPECT_EQ(builder.context_len(3), 37);
  const bool has_kv = e->memory_plan().num_blocks > 0;
  const bool has_slots = e->memory_plan().num_state_slots > 0;
  EXPECT_EQ(builder.num_free_blocks(), free_blocks - (has_kv ? 3 * 3 : 0));  // 3 blocks of 16
  EXPECT_EQ(builder.num_free_state_slots(), free_slots - (has_slots ? 3 : 0));

  // Three decode steps of the same tokens on the original and its forks, in
  // one batch: every row bitwise equal to the original's row.
  for (int32_t token : {5, 77, 300}) {
    std::vector<PlanBuilder::Chunk> chunks;
    for (int64_t s = 0; s <= 3; ++s) chunks.push_back({.seq_id = s, .tokens = {token}});
    plan = builder.Build(chunks);
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(e->Step(*plan, &out).ok());
    const size_t vocab = static_cast<size_t>(out.vocab_size);
    const std::vector<float> first(out.logits.begin(), out.logits.begin() + vocab);
    for (size_t s = 1; s <= 3; ++s) {
      EXPECT_EQ(std::vector<float>(out.logits.begin() + s * vocab,
                                   out.logits.begin() + (s + 1) * vocab),
                first)
          << "fork " << s << " token " << token;
    }
  }
  // A fork of a fork decodes like the original too, alone.
  ASSERT_TRUE(Fork(*e, builder, 2, 9).ok());
  plan = builder.Build({{.seq_id = 0, .tokens = {1}}, {.seq_id = 9, .tokens = {1}}});
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(e->Step(*plan, &out).ok());
  const size_t vocab = static_cast<size_t>(out.vocab_size);
  EXPECT_EQ(std::vector<float>(out.logits.begin(), out.logits.begin() + vocab),
            std::vector<float>(out.logits.begin() + vocab, out.logits.end()));
  for (int64_t s : {0, 1, 2, 3, 9}) builder.Free(s);
  EXPECT_EQ(builder.num_free_blocks(), e->memory_plan().num_blocks);
  EXPECT_EQ(builder.num_free_state_slots(), e->memory_plan().num_state_slots);
}

TEST_P(EngineForkTest, BadForksAndCopiesChangeNothing) {
  auto e = MakeEngine(GetParam());
  ASSERT_NE(e, nullptr);
  PlanBuilder builder = MakeBuilder(*e);
  ASSERT_TRUE(builder.Build({{.seq_id = 0, .tokens = {1, 2, 3}}}).ok());
  const int64_t free_blocks = builder.num_free_blocks();
  const int64_t free_slots = builder.num_free_state_slots();
  EXPECT_EQ(builder.Fork(7, 8).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(builder.Fork(0, 0).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(builder.num_free_blocks(), free_blocks);
  EXPECT_EQ(builder.num_free_state_slots(), free_slots);

  const int32_t blocks = static_cast<int32_t>(e->memory_plan().num_blocks);
  const int32_t slots = static_cast<int32_t>(e->memory_plan().num_state_slots);
  const std::vector<int32_t> one = {0}, two = {0, 1}, out_of_range = {blocks};
  EXPECT_EQ(e->CopyKvBlocks(one, two).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->CopyKvBlocks(out_of_range, one).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(e->CopyKvBlocks({}, {}).ok());
  EXPECT_EQ(e->CopyStateSlot(0, slots).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->CopyStateSlot(-1, 0).code(), absl::StatusCode::kInvalidArgument);

  // Out of slots (SSM models) or blocks: the fork is refused whole.
  int64_t forks = 0;
  absl::Status s;
  while ((s = builder.Fork(0, 100 + forks).status()).ok()) ++forks;
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_GT(forks, 0);
  EXPECT_FALSE(builder.context_len(100 + forks) > 0);
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, EngineForkTest,
    ::testing::Values(TinyArchitecture::kLlama, TinyArchitecture::kMamba2,
                      TinyArchitecture::kBamba, TinyArchitecture::kMamba),
    [](const ::testing::TestParamInfo<TinyArchitecture>& info) {
      return std::string(tools::TinyArchitectureName(info.param));
    });

}  // namespace
}  // namespace hybridserve::engine
