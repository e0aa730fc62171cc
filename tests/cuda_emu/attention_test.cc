// paged_attention.cu under the CPU emulator against its CPU twin,
// CpuBackend::PagedAttention: ragged batches mixing prefill and decode,
// shuffled block tables, GQA / MQA / MHA, head_dim 8 .. 256, the split-K
// (flash-decoding) path with its combine kernel, and the bf16 / f16
// tensor-core (WMMA) kernel for sequences of more than 16 new tokens. For
// 16-bit types the CPU op runs in f32 on the rounded inputs. Cache rows no
// sequence owns (spare blocks, the tail of a sequence's last block) hold 300,
// so a kernel that reads past a context changes the result; outputs start as
// NaN.
//
// Tolerances (atol, rtol): f32 (1e-4, 1e-4); bf16 and f16 (2e-2, 2e-2), as
// tests/gpu (16-bit operands of the tensor-core products, 16-bit outputs).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cuda_emu/emu_test_util.h"
#include "engine/backend/cuda/paged_attention.h"

namespace hybridserve::cuda_emu_testing {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct AttnCase {
  const char* name;
  ElemType elem;
  int heads, kv_heads, head_dim, block_tokens;
  std::vector<std::pair<int, int>> seqs;  // {new tokens, context incl. new}
  int num_sms;                            // drives the split decision
  int min_launches;                       // 2: split + combine, or scalar + WMMA
};

void RunAttention(const AttnCase& c, uint32_t seed) {
  SCOPED_TRACE(absl::StrCat(c.name, " (", ElemName(c.elem), ")"));
  engine::CpuBackend cpu(engine::CpuBackendOptions{.num_threads = 1});
  const int num_seqs = static_cast<int>(c.seqs.size());
  const int bt = c.block_tokens, kv_row = c.kv_heads * c.head_dim;
  int tokens = 0, max_q = 0, max_ctx = 0, used_blocks = 0, width = 0;
  for (const auto& [n, ctx] : c.seqs) {
    tokens += n;
    max_q = std::max(max_q, n);
    max_ctx = std::max(max_ctx, ctx);
    used_blocks += (ctx + bt - 1) / bt;
    width = std::max(width, (ctx + bt - 1) / bt + 1);  // one spare entry
  }
  const int num_blocks = used_blocks + 2;
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(num_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  // Entries past a sequence's blocks name a block no sequence owns.
  std::vector<int32_t> table(static_cast<size_t>(num_seqs) * width, ids.back());
  std::vector<int32_t> query_start(num_seqs + 1, 0), context_len(num_seqs);
  int next = 0;
  for (int s = 0; s < num_seqs; ++s) {
    query_start[s + 1] = query_start[s] + c.seqs[s].first;
    context_len[s] = c.seqs[s].second;
    for (int b = 0; b < (context_len[s] + bt - 1) / bt; ++b) table[s * width + b] = ids[next++];
  }
  std::vector<float> k_vals = RandomNormal(static_cast<size_t>(num_blocks) * bt * kv_row, seed + 1);
  std::vector<float> v_vals = RandomNormal(static_cast<size_t>(num_blocks) * bt * kv_row, seed + 2);
  std::vector<char> owned(static_cast<size_t>(num_blocks) * bt, 0);
  for (int s = 0; s < num_seqs; ++s) {
    for (int pos = 0; pos < context_len[s]; ++pos) {
      owned[static_cast<size_t>(table[s * width + pos / bt]) * bt + pos % bt] = 1;
    }
  }
  for (size_t r = 0; r < owned.size(); ++r) {
    if (owned[r]) continue;
    std::fill_n(k_vals.begin() + r * kv_row, kv_row, 300.0f);
    std::fill_n(v_vals.begin() + r * kv_row, kv_row, 300.0f);
  }
  ElemBuffer q(c.elem, RandomNormal(static_cast<size_t>(tokens) * c.heads * c.head_dim,
                                    seed + 3, 1.5f));
  ElemBuffer k_cache(c.elem, std::move(k_vals));
  ElemBuffer v_cache(c.elem, std::move(v_vals));
  ElemBuffer out(c.elem, Filled(static_cast<size_t>(tokens) * c.heads * c.head_dim, kNaN));
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  // CPU twin on the (rounded) values.
  std::vector<float> qv = q.values(), kv = k_cache.values(), vv = v_cache.values();
  std::vector<float> ref(qv.size(), kNaN);
  engine::AttentionBatch batch;
  batch.query_start = I32(query_start, {num_seqs + 1});
  batch.context_len = I32(context_len, {num_seqs});
  batch.block_table = I32(table, {num_seqs, width});
  batch.num_seqs = num_seqs;
  batch.max_context_len = max_ctx;
  batch.max_query_len = max_q;
  const std::initializer_list<int64_t> cache_shape = {num_blocks, bt, c.kv_heads, c.head_dim};
  ASSERT_TRUE(cpu.PagedAttention(F32(qv, {tokens, c.heads, c.head_dim}), F32(kv, cache_shape),
                                 F32(vv, cache_shape), batch, scale,
                                 F32(ref, {tokens, c.heads, c.head_dim})).ok());

  std::vector<float> scratch(engine::cuda::PagedAttentionScratchBytes(c.head_dim) / 4, kNaN);
  engine::cuda::PagedAttentionParams p;
  p.q = q.data();
  p.k_cache = k_cache.data();
  p.v_cache = v_cache.data();
  p.query_start = query_start.data();
  p.context_len = context_len.data();
  p.block_table = table.data();
  p.out = out.data();
  p.scratch = scratch.data();
  p.num_tokens = tokens;
  p.num_seqs = num_seqs;
  p.max_blocks_per_seq = width;
  p.max_query_len = max_q;
  p.max_context_len = max_ctx;
  p.num_heads = c.heads;
  p.num_kv_heads = c.kv_heads;
  p.head_dim = c.head_dim;
  p.block_tokens = bt;
  p.num_sms = c.num_sms;
  p.scale = scale;
  p.elem = c.elem;
  const long long launches_before = emu::launches;
  ASSERT_EQ(engine::cuda::LaunchPagedAttention(p, nullptr), cudaSuccess);
  const long long launches = emu::launches - launches_before;
  EXPECT_GE(launches, c.min_launches) << "the path under test was not taken";
  const bool half = c.elem != ElemType::kF32;
  EXPECT_TRUE(AllClose(out.Read(), ref, half ? 2e-2 : 1e-4, half ? 2e-2 : 1e-4))
      << launches << " launches";
}

TEST(EmuPagedAttentionTest, DecodeAndSplitK) {
  const AttnCase cases[] = {
      {"decode_gqa4_d128", ElemType::kF32, 8, 2, 128, 16, {{1, 100}, {1, 17}, {1, 1}, {1, 300}}, 1, 1},
      {"decode_split_d128", ElemType::kF32, 8, 2, 128, 16, {{1, 1000}, {1, 17}, {1, 600}}, 100, 2},
      {"mixed_split_bf16_d64", ElemType::kBF16, 8, 2, 64, 16,
       {{1, 700}, {5, 5}, {1, 2}, {12, 300}}, 100, 2},
      {"mqa_split_d32_bt32", ElemType::kF32, 4, 1, 32, 32, {{3, 70}, {1, 1}, {9, 9}, {1, 400}}, 50, 2},
      // Llama-3-8B's attention: 32 query heads, 8 KV heads of 128; an H100's SMs.
      {"llama3_8b_decode_split_bf16", ElemType::kBF16, 32, 8, 128, 16, {{1, 513}, {1, 77}}, 132, 2},
  };
  uint32_t seed = 1000;
  for (const AttnCase& c : cases) RunAttention(c, seed += 10);
}

TEST(EmuPagedAttentionTest, RaggedPrefillAndDecode) {
  const AttnCase cases[] = {
      {"prefill_h6_kv2_d64", ElemType::kF32, 6, 2, 64, 16,
       {{5, 5}, {1, 2}, {20, 40}, {1, 33}, {17, 17}}, 1, 1},
      {"prefill_h6_kv2_d64_bf16", ElemType::kBF16, 6, 2, 64, 16,
       {{5, 5}, {1, 2}, {16, 40}, {1, 33}}, 1, 1},  // at most 16 new: scalar kernel
      {"d8_h8_kv2", ElemType::kF32, 8, 2, 8, 16, {{7, 7}, {1, 20}, {2, 18}}, 1, 1},
  };
  uint32_t seed = 2000;
  for (const AttnCase& c : cases) RunAttention(c, seed += 10);
}

TEST(EmuPagedAttentionTest, OddShapes) {
  const AttnCase cases[] = {
      {"d96_mha_bt8_split_bf16", ElemType::kBF16, 3, 3, 96, 8, {{4, 10}, {1, 300}}, 64, 2},
      {"d256_g1", ElemType::kF32, 2, 2, 256, 16, {{3, 3}, {1, 40}}, 1, 1},
      {"g16_d16", ElemType::kF32, 16, 1, 16, 16, {{3, 30}, {1, 5}}, 1, 1},
      {"d24_bt1", ElemType::kF32, 4, 2, 24, 1, {{2, 9}, {1, 3}}, 1, 1},
  };
  uint32_t seed = 3000;
  for (const AttnCase& c : cases) RunAttention(c, seed += 10);
}

TEST(EmuPagedAttentionTest, TensorCoreBf16) {
  RunAttention({"tc_bf16_d128_mixed", ElemType::kBF16, 8, 2, 128, 16,
                {{1, 300}, {37, 37}, {1, 1}, {70, 133}, {17, 17}}, 1, 2},
               4000);
  RunAttention({"tc_bf16_d64_mqa_bt32", ElemType::kBF16, 4, 1, 64, 32,
                {{90, 90}, {1, 65}, {20, 150}}, 1, 2},
               4010);
}

TEST(EmuPagedAttentionTest, TensorCoreF16WithSplitDecode) {
  RunAttention({"tc_f16_d64_split", ElemType::kF16, 6, 2, 64, 16,
                {{1, 700}, {100, 100}, {2, 2}, {33, 200}}, 200, 3},
               5000);
}

}  // namespace
}  // namespace hybridserve::cuda_emu_testing
