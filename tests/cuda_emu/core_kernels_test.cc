// The core kernels (norm_kernels.cu, elementwise_kernels.cu,
// rope_kv_kernels.cu) run under the CPU emulator against their CPU twins
// (CpuBackend::RmsNorm, AddRmsNorm, GatedRmsNorm, GatedAct, Embedding,
// GatherRows, Rope, KvWrite, FillUniform) on seeded random inputs, f32, bf16
// and f16. For 16-bit types the CPU op runs in f32 on the rounded inputs. Outputs start as NaN, so
// an element a kernel does not write fails.
//
// Tolerances (atol, rtol), outputs of order 1 (as tests/gpu):
//   RmsNorm, AddRmsNorm, GatedRmsNorm, GatedAct, Rope:
//                          f32 (1e-5, 1e-4)   bf16, f16 (1e-2, 1e-2)
//   GatherRows / Embedding, KvWrite, FillUniform: exact (bitwise); KvWrite
//   compares the whole cache
// BroadcastRow has no CPU twin: checked against its definition, bitwise.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/dtype.h"
#include "tests/cuda_emu/emu_test_util.h"
#include "engine/backend/cuda/elementwise_kernels.h"
#include "engine/backend/cuda/norm_kernels.h"
#include "engine/backend/cuda/rope_kv_kernels.h"

namespace hybridserve::cuda_emu_testing {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

class EmuCoreKernelsTest : public EmuTest {
 protected:
  double Atol() const { return half() ? 1e-2 : 1e-5; }
  double Rtol() const { return half() ? 1e-2 : 1e-4; }
};

TEST_P(EmuCoreKernelsTest, RmsNormAndAddRmsNorm) {
  struct Case {
    int64_t rows, h;
    bool in_place;
  };
  // 4096: 1024 threads a row (the block maximum); odd sizes leave lanes idle.
  const Case cases[] = {{3, 4096, false}, {7, 333, true}, {1, 1, false},
                        {5, 31, false},   {2, 2049, true}};
  uint32_t seed = 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("rows ", c.rows, " h ", c.h, c.in_place ? " in place" : ""));
    const float eps = 1e-5f;
    ElemBuffer x(elem(), RandomNormal(c.rows * c.h, ++seed, 2.0f));
    ElemBuffer w(elem(), RandomNormal(c.h, ++seed, 0.5f, 1.0f));
    ElemBuffer res(elem(), RandomNormal(c.rows * c.h, ++seed));
    ElemBuffer out(elem(), Filled(c.rows * c.h, kNaN));

    // RmsNorm.
    std::vector<float> xv = x.values(), wv = w.values(), ref(xv.size());
    ASSERT_TRUE(cpu_.RmsNorm(F32(xv, {c.rows, c.h}), F32(wv, {c.h}), eps,
                             F32(ref, {c.rows, c.h})).ok());
    ElemBuffer x_copy(elem(), x.values());
    engine::cuda::RmsNormParams p;
    p.x = x_copy.data();
    p.w = w.data();
    p.out = c.in_place ? x_copy.data() : out.data();
    p.rows = c.rows;
    p.h = c.h;
    p.eps = eps;
    p.elem = elem();
    ASSERT_EQ(engine::cuda::LaunchRmsNorm(p, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(c.in_place ? x_copy.Read() : out.Read(), ref, Atol(), Rtol()))
        << "RmsNorm";

    // AddRmsNorm: residual += x, out = norm(residual).
    std::vector<float> rv = res.values(), ref_out(xv.size());
    ASSERT_TRUE(cpu_.AddRmsNorm(F32(rv, {c.rows, c.h}), F32(xv, {c.rows, c.h}),
                                F32(wv, {c.h}), eps, F32(ref_out, {c.rows, c.h})).ok());
    ElemBuffer out2(elem(), Filled(c.rows * c.h, kNaN));
    p.x = x.data();
    p.residual = res.data();
    p.out = c.in_place ? x.data() : out2.data();
    ASSERT_EQ(engine::cuda::LaunchRmsNorm(p, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(res.Read(), rv, Atol(), Rtol())) << "AddRmsNorm residual";
    EXPECT_TRUE(AllClose(c.in_place ? x.Read() : out2.Read(), ref_out, Atol(), Rtol()))
        << "AddRmsNorm out";
  }
}

TEST_P(EmuCoreKernelsTest, GatedRmsNorm) {
  struct Case {
    int64_t rows, d, group;
    bool in_place;
  };
  const Case cases[] = {{3, 1024, 128, false},  // 8 groups (Mamba-2: n_groups)
                        {2, 333, 111, true},
                        {2, 64, 64, false},
                        {1, 6, 1, false},
                        {4, 2048, 2048, true}};  // one group of 512 threads
  uint32_t seed = 50;
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("rows ", c.rows, " d ", c.d, " group ", c.group));
    ElemBuffer x(elem(), RandomNormal(c.rows * c.d, ++seed, 2.0f));
    ElemBuffer z(elem(), RandomNormal(c.rows * c.d, ++seed, 2.0f));
    ElemBuffer w(elem(), RandomNormal(c.d, ++seed, 0.5f, 1.0f));
    ElemBuffer out(elem(), Filled(c.rows * c.d, kNaN));
    std::vector<float> xv = x.values(), zv = z.values(), wv = w.values(), ref(xv.size());
    ASSERT_TRUE(cpu_.GatedRmsNorm(F32(xv, {c.rows, c.d}), F32(zv, {c.rows, c.d}),
                                  F32(wv, {c.d}), c.group, 1e-6f,
                                  F32(ref, {c.rows, c.d})).ok());
    engine::cuda::GatedRmsNormParams p;
    p.x = x.data();
    p.z = z.data();
    p.w = w.data();
    p.out = c.in_place ? x.data() : out.data();
    p.rows = c.rows;
    p.d = c.d;
    p.group_size = c.group;
    p.eps = 1e-6f;
    p.elem = elem();
    ASSERT_EQ(engine::cuda::LaunchGatedRmsNorm(p, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(c.in_place ? x.Read() : out.Read(), ref, Atol(), Rtol()));
  }
}

TEST_P(EmuCoreKernelsTest, GatedAct) {
  struct Case {
    int64_t rows, inter;
  };
  uint32_t seed = 80;
  for (engine::Activation act : {engine::Activation::kSilu, engine::Activation::kGeluTanh,
                                 engine::Activation::kRelu2}) {
    for (const Case& c : {Case{3, 1000}, Case{5, 7}, Case{1, 257}, Case{2, 1}}) {
      SCOPED_TRACE(absl::StrCat("act ", static_cast<int>(act), " rows ", c.rows, " inter ",
                                c.inter));
      ElemBuffer gate_up(elem(), RandomNormal(c.rows * 2 * c.inter, ++seed, 3.0f));
      ElemBuffer out(elem(), Filled(c.rows * c.inter, kNaN));
      std::vector<float> gv = gate_up.values(), ref(c.rows * c.inter);
      ASSERT_TRUE(cpu_.GatedAct(F32(gv, {c.rows, 2 * c.inter}), act,
                                F32(ref, {c.rows, c.inter})).ok());
      engine::cuda::GatedActParams p;
      p.gate_up = gate_up.data();
      p.out = out.data();
      p.rows = c.rows;
      p.inter = c.inter;
      p.act = static_cast<int>(act);
      p.elem = elem();
      ASSERT_EQ(engine::cuda::LaunchGatedAct(p, nullptr), cudaSuccess);
      EXPECT_TRUE(AllClose(out.Read(), ref, Atol(), Rtol()));
    }
  }
}

// The CUDA backend's Embedding and GatherRows both launch the row gather.
TEST_P(EmuCoreKernelsTest, EmbeddingAndGatherRows) {
  struct Case {
    int64_t src_rows, h, rows;
  };
  uint32_t seed = 100;
  for (const Case& c : {Case{1000, 333, 37}, Case{64, 4096, 3}, Case{256, 64, 1}}) {
    SCOPED_TRACE(absl::StrCat("src_rows ", c.src_rows, " h ", c.h, " rows ", c.rows));
    ElemBuffer table(elem(), RandomNormal(c.src_rows * c.h, ++seed));
    std::vector<int32_t> ids(c.rows);
    std::mt19937 rng(++seed);
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % c.src_rows);
    ids.back() = static_cast<int32_t>(c.src_rows - 1);
    std::vector<float> tv = table.values(), ref_emb(c.rows * c.h), ref_gather(c.rows * c.h);
    ASSERT_TRUE(cpu_.Embedding(I32(ids, {c.rows}), F32(tv, {c.src_rows, c.h}),
                               F32(ref_emb, {c.rows, c.h})).ok());
    ASSERT_TRUE(cpu_.GatherRows(F32(tv, {c.src_rows, c.h}), I32(ids, {c.rows}),
                                F32(ref_gather, {c.rows, c.h})).ok());
    ElemBuffer out(elem(), Filled(c.rows * c.h, kNaN));
    engine::cuda::GatherRowsParams p;
    p.src = table.data();
    p.index = ids.data();
    p.out = out.data();
    p.src_rows = c.src_rows;
    p.rows = c.rows;
    p.h = c.h;
    p.elem = elem();
    ASSERT_EQ(engine::cuda::LaunchGatherRows(p, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(out.Read(), ref_emb, 0, 0)) << "Embedding";
    EXPECT_TRUE(AllClose(out.Read(), ref_gather, 0, 0)) << "GatherRows";
  }
}

TEST_P(EmuCoreKernelsTest, RopeFullAndPartial) {
  struct Case {
    int64_t tokens, heads, kv_heads, head_dim, rotary_dim;
    double theta;
    float scaling;
  };
  const Case cases[] = {
      {9, 4, 2, 128, 64, 10000.0, 1.0f},    // Bamba-9B: 64 of 128 dims
      {7, 4, 2, 128, 128, 500000.0, 1.0f},  // Llama-3-8B
      {5, 6, 2, 64, 32, 10000.0, 0.87f},    // odd heads, partial, scaled
      {3, 4, 1, 16, 16, 10000.0, 1.0f},     // fixture-sized
      {2, 3, 3, 18, 6, 10000.0, 1.0f},      // head_dim not a multiple of 8
  };
  uint32_t seed = 200;
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("tokens ", c.tokens, " heads ", c.heads, "/", c.kv_heads,
                              " head_dim ", c.head_dim, " rotary ", c.rotary_dim));
    const int64_t half_dim = c.rotary_dim / 2;
    std::vector<float> inv_freq(half_dim);
    for (int64_t i = 0; i < half_dim; ++i) {
      inv_freq[i] = static_cast<float>(
          1.0 / std::pow(c.theta, static_cast<double>(2 * i) / c.rotary_dim));
    }
    std::vector<int32_t> positions(c.tokens);
    std::mt19937 rng(++seed);
    for (int32_t& pos : positions) pos = static_cast<int32_t>(rng() % 5000);
    positions[0] = 0;
    ElemBuffer q(elem(), RandomNormal(c.tokens * c.heads * c.head_dim, ++seed));
    ElemBuffer k(elem(), RandomNormal(c.tokens * c.kv_heads * c.head_dim, ++seed));
    std::vector<float> ref_q = q.values(), ref_k = k.values();
    engine::RopeParams rope;
    rope.inv_freq = F32(inv_freq, {half_dim});
    rope.rotary_dim = c.rotary_dim;
    rope.attention_scaling = c.scaling;
    ASSERT_TRUE(cpu_.Rope(F32(ref_q, {c.tokens, c.heads, c.head_dim}),
                          F32(ref_k, {c.tokens, c.kv_heads, c.head_dim}),
                          I32(positions, {c.tokens}), rope).ok());
    engine::cuda::RopeParams p;
    p.q = q.data();
    p.k = k.data();
    p.positions = positions.data();
    p.inv_freq = inv_freq.data();
    p.tokens = c.tokens;
    p.num_heads = c.heads;
    p.num_kv_heads = c.kv_heads;
    p.head_dim = c.head_dim;
    p.rotary_dim = c.rotary_dim;
    p.attention_scaling = c.scaling;
    p.elem = elem();
    ASSERT_EQ(engine::cuda::LaunchRope(p, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(q.Read(), ref_q, Atol(), Rtol())) << "q";
    EXPECT_TRUE(AllClose(k.Read(), ref_k, Atol(), Rtol())) << "k";
  }
}

TEST_P(EmuCoreKernelsTest, KvWriteShuffledSlots) {
  struct Case {
    int64_t tokens, kv_heads, head_dim, blocks, block_tokens;
  };
  // {.., 1, 3, ..}: a 16-bit row of 6 bytes takes the 16-bit copy kernel.
  const Case cases[] = {{37, 2, 128, 5, 16}, {5, 1, 3, 4, 8}, {1, 3, 64, 2, 32}};
  uint32_t seed = 300;
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("tokens ", c.tokens, " row ", c.kv_heads, "x", c.head_dim,
                              " blocks ", c.blocks, "x", c.block_tokens));
    const int64_t row = c.kv_heads * c.head_dim, slots = c.blocks * c.block_tokens;
    std::vector<int32_t> slot_mapping(slots);
    std::iota(slot_mapping.begin(), slot_mapping.end(), 0);
    std::shuffle(slot_mapping.begin(), slot_mapping.end(), std::mt19937(++seed));
    slot_mapping.resize(c.tokens);
    ElemBuffer k(elem(), RandomNormal(c.tokens * row, ++seed));
    ElemBuffer v(elem(), RandomNormal(c.tokens * row, ++seed));
    ElemBuffer k_cache(elem(), RandomNormal(slots * row, ++seed));
    ElemBuffer v_cache(elem(), RandomNormal(slots * row, ++seed));
    std::vector<float> kv = k.values(), vv = v.values();
    std::vector<float> ref_k = k_cache.values(), ref_v = v_cache.values();
    const std::initializer_list<int64_t> cache_shape = {c.blocks, c.block_tokens,
                                                        c.kv_heads, c.head_dim};
    ASSERT_TRUE(cpu_.KvWrite(F32(kv, {c.tokens, c.kv_heads, c.head_dim}),
                             F32(vv, {c.tokens, c.kv_heads, c.head_dim}),
                             I32(slot_mapping, {c.tokens}), F32(ref_k, cache_shape),
                             F32(ref_v, cache_shape)).ok());
    engine::cuda::KvWriteParams p;
    p.k = k.data();
    p.v = v.data();
    p.slot_mapping = slot_mapping.data();
    p.k_cache = k_cache.data();
    p.v_cache = v_cache.data();
    p.tokens = c.tokens;
    p.row = row;
    p.num_slots = slots;
    p.elem = elem();
    ASSERT_EQ(engine::cuda::LaunchKvWrite(p, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(k_cache.Read(), ref_k, 0, 0)) << "k_cache";
    EXPECT_TRUE(AllClose(v_cache.Read(), ref_v, 0, 0)) << "v_cache";
  }
}

// Bitwise: both sides compute lo + span * u in f32 without FMA, then round.
TEST_P(EmuCoreKernelsTest, FillUniformIsBitwiseEqual) {
  struct Case {
    int64_t n;
    uint64_t seed;
    float lo, hi;
  };
  for (const Case& c : {Case{1000, 1, -1.0f, 1.0f}, Case{4099, 1234, -0.02f, 0.02f},
                        Case{1, 99, 0.5f, 1.5f}}) {
    SCOPED_TRACE(absl::StrCat("n ", c.n, " seed ", c.seed));
    std::vector<float> ref_f32(c.n);
    std::vector<uint16_t> ref_bits(c.n);
    const engine::DType dtype = elem() == ElemType::kBF16  ? engine::DType::kBF16
                                : elem() == ElemType::kF16 ? engine::DType::kF16
                                                           : engine::DType::kF32;
    const engine::Tensor t(half() ? static_cast<void*>(ref_bits.data()) : ref_f32.data(),
                           dtype, {c.n});
    ASSERT_TRUE(cpu_.FillUniform(t, c.seed, c.lo, c.hi).ok());
    std::vector<float> ref(c.n);
    for (int64_t i = 0; i < c.n; ++i) {
      ref[i] = elem() == ElemType::kBF16  ? engine::BF16ToF32(ref_bits[i])
               : elem() == ElemType::kF16 ? engine::F16ToF32(ref_bits[i])
                                          : ref_f32[i];
    }
    ElemBuffer out(elem(), Filled(c.n, kNaN));
    engine::cuda::FillUniformParams p;
    p.out = out.data();
    p.n = c.n;
    p.seed = c.seed;
    p.lo = c.lo;
    p.span = c.hi - c.lo;
    p.elem = elem();
    ASSERT_EQ(engine::cuda::LaunchFillUniform(p, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(out.Read(), ref, 0, 0));
  }
}

// No CPU twin (the CPU Gemm adds its bias itself): every row must equal the
// input row, bitwise.
TEST_P(EmuCoreKernelsTest, BroadcastRow) {
  struct Case {
    int64_t rows, n;
  };
  uint32_t seed = 400;
  for (const Case& c : {Case{5, 333}, Case{1, 4096}, Case{3, 1}}) {
    SCOPED_TRACE(absl::StrCat("rows ", c.rows, " n ", c.n));
    ElemBuffer row(elem(), RandomNormal(c.n, ++seed));
    ElemBuffer out(elem(), Filled(c.rows * c.n, kNaN));
    std::vector<float> want;
    for (int64_t r = 0; r < c.rows; ++r) {
      want.insert(want.end(), row.values().begin(), row.values().end());
    }
    engine::cuda::BroadcastRowParams p;
    p.row = row.data();
    p.out = out.data();
    p.rows = c.rows;
    p.n = c.n;
    p.elem = elem();
    ASSERT_EQ(engine::cuda::LaunchBroadcastRow(p, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(out.Read(), want, 0, 0));
  }
}

INSTANTIATE_TEST_SUITE_P(Elem, EmuCoreKernelsTest,
                         ::testing::Values(ElemType::kF32, ElemType::kBF16, ElemType::kF16),
                         ElemParamName);

}  // namespace
}  // namespace hybridserve::cuda_emu_testing
