// The SSM kernels (causal_conv1d.cu, mamba2_ssd.cu, mamba1_scan.cu) under the
// CPU emulator against their CPU twins, CpuBackend::CausalConv1d, Mamba2Scan
// and Mamba1Scan, f32, bf16 and f16 (the CPU op on the rounded inputs; state
// pools f32). Batches are ragged (prefill and decode mixed, and sequences of
// zero new tokens), slots shuffled, has_initial_state mixes 0 and 1 (a fresh
// sequence's slot holds garbage that must be ignored), and Mamba-2 lengths
// cross the chunk boundaries. Every slot of the pool is compared (slots of no
// sequence must stay as they were). A second step then continues every
// sequence by one token from the state each side left in its own pool.
//
// Tolerances (atol, rtol), as tests/gpu:
//   CausalConv1d out:    f32 (1e-5, 1e-4)  bf16, f16 (1e-2, 1e-2); conv state exact
//   Mamba2Scan y, state: f32 (1e-3, 1e-3)  bf16, f16 (3e-2, 3e-2)
//     (the chunked SSD algorithm reorders the sums of the sequential CPU scan)
//   Mamba1Scan y, state: f32 (1e-4, 1e-3)  bf16, f16 (2e-2, 2e-2)
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cuda_emu/emu_test_util.h"
#include "engine/backend/cuda/causal_conv1d.h"
#include "engine/backend/cuda/mamba1_scan.h"
#include "engine/backend/cuda/mamba2_ssd.h"

namespace hybridserve::cuda_emu_testing {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// One step's sequences: new tokens, has_initial_state, and a state slot each
// (distinct, shuffled, out of a pool with spare slots).
struct Batch {
  std::vector<int32_t> query_start, slot, has_init;
  int64_t num_seqs = 0, tokens = 0, max_query_len = 0;

  Batch(const std::vector<int>& lens, const std::vector<int>& init,
        const std::vector<int32_t>& slots)
      : query_start(lens.size() + 1, 0), slot(slots), has_init(init.begin(), init.end()),
        num_seqs(static_cast<int64_t>(lens.size())) {
    for (size_t s = 0; s < lens.size(); ++s) {
      query_start[s + 1] = query_start[s] + lens[s];
      max_query_len = std::max<int64_t>(max_query_len, lens[s]);
    }
    tokens = query_start.back();
  }
  engine::SsmBatch Cpu() {
    engine::SsmBatch b;
    b.query_start = I32(query_start, {num_seqs + 1});
    b.state_slot = I32(slot, {num_seqs});
    b.has_initial_state = I32(has_init, {num_seqs});
    b.num_seqs = num_seqs;
    b.max_query_len = max_query_len;
    return b;
  }
  // The batch fields every SSM kernel's params share.
  template <typename Params>
  void SetFields(Params& p) {
    p.query_start = query_start.data();
    p.state_slot = slot.data();
    p.has_initial_state = has_init.data();
    p.num_tokens = tokens;
    p.num_seqs = num_seqs;
  }
  // The next step: one new token per sequence, continuing from its state.
  Batch Decode() const {
    return Batch(std::vector<int>(num_seqs, 1), std::vector<int>(num_seqs, 1), slot);
  }
};

std::vector<int32_t> ShuffledSlots(int64_t num_seqs, int64_t num_slots, uint32_t seed) {
  std::vector<int32_t> slots(num_slots);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), std::mt19937(seed));
  slots.resize(num_seqs);
  return slots;
}

class EmuSsmKernelsTest : public EmuTest {};

// ------------------------------------------------------------------ conv1d

struct ConvCase {
  int channels, kernel;
  std::vector<int> lens, init;
  bool bias, silu, in_place;
};

TEST_P(EmuSsmKernelsTest, CausalConv1d) {
  const ConvCase cases[] = {
      {77, 4, {2, 1, 5, 1, 0}, {0, 1, 1, 0, 1}, true, true, false},
      {40, 3, {1, 70, 2, 300, 17}, {1, 0, 1, 1, 0}, false, false, true},
      {33, 4, {129, 1, 16, 0}, {1, 1, 0, 0}, true, true, true},
      {20, 7, {200, 3}, {1, 1}, true, false, true},
      {10, 1, {5, 40}, {1, 0}, true, true, true},
      {10, 16, {50, 3}, {1, 0}, false, true, false},
  };
  const double atol = half() ? 1e-2 : 1e-5, rtol = half() ? 1e-2 : 1e-4;
  uint32_t seed = 100;
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(absl::StrCat("channels ", c.channels, " kernel ", c.kernel, " seqs ",
                              c.lens.size(), c.in_place ? " in place" : ""));
    const int64_t ch = c.channels, k = c.kernel, w = k - 1;
    const int64_t slots = static_cast<int64_t>(c.lens.size()) + 3;
    Batch b(c.lens, c.init, ShuffledSlots(c.lens.size(), slots, ++seed));
    ElemBuffer weight(elem(), RandomNormal(ch * k, ++seed, 0.5f));
    ElemBuffer bias(elem(), RandomNormal(ch, ++seed, 0.1f));
    std::vector<float> state = RandomNormal(slots * ch * w, ++seed);  // f32 pool
    std::vector<float> ref_state = state;
    std::vector<float> wv = weight.values(), bv = bias.values();

    for (int step = 0; step < 2; ++step) {
      SCOPED_TRACE(step == 0 ? "step 1 (batch)" : "step 2 (one token each)");
      Batch cur = step == 0 ? b : b.Decode();
      ElemBuffer x(elem(), RandomNormal(cur.tokens * ch, ++seed));
      ElemBuffer out_buf(elem(), Filled(cur.tokens * ch, kNaN));
      std::vector<float> xv = x.values(), ref(cur.tokens * ch, kNaN);
      engine::SsmBatch cb = cur.Cpu();
      ASSERT_TRUE(cpu_.CausalConv1d(F32(xv, {cur.tokens, ch}), F32(wv, {ch, k}),
                                    c.bias ? F32(bv, {ch}) : engine::Tensor(),
                                    F32(ref_state, {slots, ch, w}), cb, c.silu,
                                    F32(ref, {cur.tokens, ch})).ok());
      ElemBuffer& out = c.in_place ? x : out_buf;
      engine::cuda::CausalConv1dParams p;
      p.x = x.data();
      p.weight = weight.data();
      p.bias = c.bias ? bias.data() : nullptr;
      p.conv_state = state.data();
      cur.SetFields(p);
      p.out = out.data();
      p.channels = ch;
      p.max_query_len = cur.max_query_len;
      p.kernel_size = c.kernel;
      p.silu = c.silu;
      p.elem = elem();
      ASSERT_EQ(engine::cuda::LaunchCausalConv1d(p, nullptr), cudaSuccess);
      EXPECT_TRUE(AllClose(out.Read(), ref, atol, rtol)) << "out";
      EXPECT_TRUE(AllClose(state, ref_state, 0, 0)) << "conv_state";
    }
  }
}

// ------------------------------------------------------------------ Mamba-2

struct Mamba2Case {
  const char* name;
  int heads, head_dim, groups, d_state;
  std::vector<int> lens, init;
  int num_sms;
  float dt_min = 0.0f, dt_max = INFINITY;
  int smem_optin = 232448;  // the device's shared memory per block (H100)
};

TEST_P(EmuSsmKernelsTest, Mamba2Scan) {
  const Mamba2Case cases[] = {
      {"decode_only", 4, 16, 1, 16, {1, 1, 1, 0, 0}, {1, 0, 1, 0, 1}, 1},
      {"mixed_chunk_boundaries", 4, 16, 2, 16, {1, 70, 2, 129, 0, 64, 65}, {1, 0, 1, 1, 0, 1, 0}, 1},
      {"odd_h6_p10_g3_n17", 6, 10, 3, 17, {2, 1, 33, 5}, {0, 1, 1, 0}, 1000},
      {"dt_limits", 4, 8, 1, 12, {1, 100, 2}, {1, 0, 1}, 1, 0.1f, 0.5f},
      {"head_dim_split_z", 2, 64, 1, 32, {40, 3, 90}, {1, 1, 0}, 1000},
      {"small_smem_n256", 2, 16, 1, 256, {40, 1}, {1, 1}, 1, 0.0f, INFINITY, 100000},
      {"bamba_like_p64_n128", 2, 64, 1, 128, {1, 130, 1, 64}, {1, 1, 0, 0}, 1},
  };
  const double tol = half() ? 3e-2 : 1e-3;
  uint32_t seed = 200;
  for (const Mamba2Case& c : cases) {
    SCOPED_TRACE(c.name);
    const int64_t nh = c.heads, hd = c.head_dim, g = c.groups, n = c.d_state;
    const int64_t d_inner = nh * hd, width = d_inner + 2 * g * n;
    const int64_t slots = static_cast<int64_t>(c.lens.size()) + 2;
    Batch b(c.lens, c.init, ShuffledSlots(c.lens.size(), slots, ++seed));
    ElemBuffer a_log(elem(), RandomNormal(nh, ++seed, 0.5f));
    ElemBuffer dt_bias(elem(), RandomNormal(nh, ++seed, 0.3f));
    ElemBuffer d(elem(), RandomNormal(nh, ++seed));
    std::vector<float> state = RandomNormal(slots * nh * hd * n, ++seed);
    std::vector<float> ref_state = state;
    std::vector<float> av = a_log.values(), dbv = dt_bias.values(), dv = d.values();
    engine::Mamba2ScanParams mp;
    mp.num_heads = nh;
    mp.head_dim = hd;
    mp.n_groups = g;
    mp.d_state = n;
    mp.dt_min = c.dt_min;
    mp.dt_max = c.dt_max;

    for (int step = 0; step < 2; ++step) {
      SCOPED_TRACE(step == 0 ? "step 1 (batch)" : "step 2 (one token each)");
      Batch cur = step == 0 ? b : b.Decode();
      ElemBuffer xbc(elem(), RandomNormal(cur.tokens * width, ++seed));
      ElemBuffer dt(elem(), RandomNormal(cur.tokens * nh, ++seed, 1.0f, -1.0f));
      ElemBuffer y(elem(), Filled(cur.tokens * d_inner, kNaN));
      std::vector<float> xv = xbc.values(), dtv = dt.values(), ref(cur.tokens * d_inner, kNaN);
      engine::SsmBatch cb = cur.Cpu();
      ASSERT_TRUE(cpu_.Mamba2Scan(F32(xv, {cur.tokens, width}), F32(dtv, {cur.tokens, nh}),
                                  F32(av, {nh}), F32(dbv, {nh}), F32(dv, {nh}),
                                  F32(ref_state, {slots, nh, hd, n}), cb, mp,
                                  F32(ref, {cur.tokens, d_inner})).ok());
      engine::cuda::Mamba2SsdParams p;
      p.xbc = xbc.data();
      p.dt = dt.data();
      p.a_log = a_log.data();
      p.dt_bias = dt_bias.data();
      p.d = d.data();
      p.ssm_state = state.data();
      cur.SetFields(p);
      p.y = y.data();
      p.max_query_len = cur.max_query_len;
      p.num_heads = c.heads;
      p.head_dim = c.head_dim;
      p.n_groups = c.groups;
      p.d_state = c.d_state;
      p.dt_min = c.dt_min;
      p.dt_max = c.dt_max;
      p.num_sms = c.num_sms;
      p.elem = elem();
      emu::smem_optin = c.smem_optin;
      const cudaError_t err = engine::cuda::LaunchMamba2Ssd(p, nullptr);
      emu::smem_optin = 232448;
      ASSERT_EQ(err, cudaSuccess);
      EXPECT_TRUE(AllClose(y.Read(), ref, tol, tol)) << "y";
      EXPECT_TRUE(AllClose(state, ref_state, tol, tol)) << "ssm_state";
    }
  }
}

// ------------------------------------------------------------------ Mamba-1

struct Mamba1Case {
  int channels, d_state;
  std::vector<int> lens, init;
};

TEST_P(EmuSsmKernelsTest, Mamba1Scan) {
  const Mamba1Case cases[] = {
      {70, 16, {1, 40, 0, 3}, {1, 0, 0, 1}},  // released models: d_state 16
      {9, 5, {33, 1}, {0, 1}},
      {11, 40, {10, 1}, {1, 1}},
      {5, 130, {7, 2}, {1, 0}},
      {3, 512, {3, 1}, {1, 0}},  // the largest d_state taken
      {7, 128, {40, 1, 2}, {1, 0, 1}},
      {130, 3, {1, 45}, {1, 1}},
  };
  const double atol = half() ? 2e-2 : 1e-4, rtol = half() ? 2e-2 : 1e-3;
  uint32_t seed = 300;
  for (const Mamba1Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("channels ", c.channels, " d_state ", c.d_state, " seqs ",
                              c.lens.size()));
    const int64_t ch = c.channels, n = c.d_state;
    const int64_t slots = static_cast<int64_t>(c.lens.size()) + 2;
    Batch b(c.lens, c.init, ShuffledSlots(c.lens.size(), slots, ++seed));
    ElemBuffer a_log(elem(), RandomNormal(ch * n, ++seed, 0.5f));
    ElemBuffer dt_bias(elem(), RandomNormal(ch, ++seed, 0.3f));
    ElemBuffer d(elem(), RandomNormal(ch, ++seed));
    std::vector<float> state = RandomNormal(slots * ch * n, ++seed);
    std::vector<float> ref_state = state;
    std::vector<float> av = a_log.values(), dbv = dt_bias.values(), dv = d.values();

    for (int step = 0; step < 2; ++step) {
      SCOPED_TRACE(step == 0 ? "step 1 (batch)" : "step 2 (one token each)");
      Batch cur = step == 0 ? b : b.Decode();
      ElemBuffer x(elem(), RandomNormal(cur.tokens * ch, ++seed));
      ElemBuffer dt(elem(), RandomNormal(cur.tokens * ch, ++seed, 1.0f, -1.0f));
      ElemBuffer bc(elem(), RandomNormal(cur.tokens * 2 * n, ++seed));
      ElemBuffer z(elem(), RandomNormal(cur.tokens * ch, ++seed));
      ElemBuffer y(elem(), Filled(cur.tokens * ch, kNaN));
      std::vector<float> xv = x.values(), dtv = dt.values(), bcv = bc.values(),
                         zv = z.values(), ref(cur.tokens * ch, kNaN);
      engine::SsmBatch cb = cur.Cpu();
      ASSERT_TRUE(cpu_.Mamba1Scan(F32(xv, {cur.tokens, ch}), F32(dtv, {cur.tokens, ch}),
                                  F32(bcv, {cur.tokens, 2 * n}), F32(zv, {cur.tokens, ch}),
                                  F32(av, {ch, n}), F32(dbv, {ch}), F32(dv, {ch}),
                                  F32(ref_state, {slots, ch, n}), cb,
                                  F32(ref, {cur.tokens, ch})).ok());
      engine::cuda::Mamba1ScanParams p;
      p.x = x.data();
      p.dt = dt.data();
      p.bc = bc.data();
      p.z = z.data();
      p.a_log = a_log.data();
      p.dt_bias = dt_bias.data();
      p.d = d.data();
      p.ssm_state = state.data();
      cur.SetFields(p);
      p.y = y.data();
      p.channels = ch;
      p.d_state = n;
      p.elem = elem();
      ASSERT_EQ(engine::cuda::LaunchMamba1Scan(p, nullptr), cudaSuccess);
      EXPECT_TRUE(AllClose(y.Read(), ref, atol, rtol)) << "y";
      EXPECT_TRUE(AllClose(state, ref_state, atol, rtol)) << "ssm_state";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Elem, EmuSsmKernelsTest,
                         ::testing::Values(ElemType::kF32, ElemType::kBF16, ElemType::kF16),
                         ElemParamName);

}  // namespace
}  // namespace hybridserve::cuda_emu_testing
