// The Engine's memory plan for models with SSM layers (DESIGN.md 2.1): state
// slots = min(max_num_seqs, what the budget holds after a KV reserve of one
// max_model_len sequence), KV blocks = the rest; plans that fit no sequence
// are refused with the numbers. Uses the transformers-written fixtures.
#include <string>

#include "engine/runtime/engine.h"
#include "gtest/gtest.h"
#include "tests/testing/golden.h"

namespace hybridserve::engine {
namespace {

absl::StatusOr<std::unique_ptr<Engine>> Make(const std::string& fixture, uint64_t budget,
                                             int64_t max_num_seqs) {
  EngineOptions o;
  o.model_dir = testing::LoadGoldenFixture(fixture)->dir;
  o.device = "cpu";
  o.num_threads = 1;
  o.kv_cache_bytes = budget;
  o.block_tokens = 16;
  o.max_num_tokens = 64;
  o.max_num_seqs = max_num_seqs;
  o.max_model_len = 256;
  return Engine::Create(o);
}

TEST(SsmMemoryPlanTest, HybridSplitsBudgetIntoSlotsThenBlocks) {
  auto big = Make("bamba_f32_attn1", 64 << 20, 8);
  ASSERT_TRUE(big.ok()) << big.status();
  const MemoryPlan ref = (*big)->memory_plan();
  EXPECT_EQ(ref.num_state_slots, 8);  // capped by max_num_seqs
  // 3 Mamba layers: conv window [128 + 2*16, 3] + state [8, 16, 16], f32.
  EXPECT_EQ(ref.state_bytes_per_slot, 3u * ((160 * 3) + 8 * 16 * 16) * 4);
  // 1 attention layer: K and V of 2 kv heads x 16 dims, f32, 16 tokens.
  EXPECT_EQ(ref.kv_bytes_per_block, 2u * 2 * 16 * 4 * 16);
  const uint64_t reserve = 16 * ref.kv_bytes_per_block;  // 256 tokens
  const uint64_t budget = reserve + 3 * ref.state_bytes_per_slot + 5 * ref.kv_bytes_per_block + 100;
  auto e = Make("bamba_f32_attn1", budget, 8);
  ASSERT_TRUE(e.ok()) << e.status();
  const MemoryPlan& m = (*e)->memory_plan();
  EXPECT_EQ(m.num_state_slots, 3);
  EXPECT_EQ(m.num_blocks, 21);  // the reserve's 16 + what the slots left
  EXPECT_LE(m.kv_cache_bytes + m.state_cache_bytes, budget);
  EXPECT_EQ((*e)->limits().num_state_slots, 3);
  EXPECT_NE(m.ToString().find("3 slots"), std::string::npos) << m.ToString();
}

TEST(SsmMemoryPlanTest, RefusesPlansThatFitNoSequence) {
  auto big = Make("bamba_f32_attn1", 64 << 20, 8);
  ASSERT_TRUE(big.ok());
  const MemoryPlan ref = (*big)->memory_plan();
  // The KV reserve fits but no slot after it.
  auto e = Make("bamba_f32_attn1", 16 * ref.kv_bytes_per_block + ref.state_bytes_per_slot - 1, 8);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("SSM state slot"), std::string::npos) << e.status();
  EXPECT_NE(e.status().message().find("--kv-cache-bytes"), std::string::npos) << e.status();
  // A pure SSM model: no KV reserve, no blocks; one slot is the minimum.
  auto mamba = Make("mamba2_f32_g1_chunk8", 64 << 20, 4);
  ASSERT_TRUE(mamba.ok()) << mamba.status();
  const MemoryPlan mp = (*mamba)->memory_plan();
  EXPECT_EQ(mp.num_blocks, 0);
  EXPECT_EQ(mp.kv_cache_bytes, 0u);
  EXPECT_EQ(mp.num_state_slots, 4);
  auto tiny = Make("mamba2_f32_g1_chunk8", mp.state_bytes_per_slot - 1, 4);
  ASSERT_FALSE(tiny.ok());
  EXPECT_NE(tiny.status().message().find("SSM state slot"), std::string::npos) << tiny.status();
  auto one = Make("mamba2_f32_g1_chunk8", mp.state_bytes_per_slot, 4);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ((*one)->memory_plan().num_state_slots, 1);
}

TEST(SsmMemoryPlanTest, PureSsmModelWithoutMaxPositionsGetsDefaultLength) {
  EngineOptions o;
  o.model_dir = testing::LoadGoldenFixture("mamba2_f32_g1_chunk8")->dir;
  o.device = "cpu";
  o.num_threads = 1;
  o.max_num_tokens = 64;
  auto e = Engine::Create(o);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->max_model_len(), kDefaultSsmMaxModelLen);
}

}  // namespace
}  // namespace hybridserve::engine
