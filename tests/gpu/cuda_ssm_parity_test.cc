// The CUDA backend's SSM ops (CausalConv1d, Mamba2Scan, Mamba1Scan,
// GatedRmsNorm) against their CPU twins on the same seeded random inputs, for
// act dtypes f32 and bf16, with the f32 state pools compared too (every slot:
// slots of no sequence must stay as they were). Batches are ragged (prefill and
// decode mixed), slots are shuffled, has_initial_state mixes 0 and 1 (a fresh
// sequence's slot holds garbage that must be ignored), and Mamba-2 lengths
// cross the chunk boundaries of chunk sizes 64, 128 and 256. A second call
// continues every sequence from the state each backend left in its own pool.
//
// Tolerances (atol, rtol), for outputs of order 1:
//   CausalConv1d out:    f32 (1e-5, 1e-4)  bf16 (1e-2, 1e-2); conv state exact
//   Mamba2Scan y, state: f32 (1e-3, 1e-3)  bf16 (3e-2, 3e-2)
//     (the chunked SSD algorithm reorders the sums of the sequential CPU scan)
//   Mamba1Scan y, state: f32 (1e-4, 1e-3)  bf16 (2e-2, 2e-2)
//   GatedRmsNorm:        f32 (1e-5, 1e-4)  bf16 (1e-2, 1e-2)
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/backend/backend.h"
#include "gtest/gtest.h"
#include "tests/gpu/gpu_test_util.h"

namespace hybridserve::gpu_testing {
namespace {

using engine::DType;
using engine::Mamba2ScanParams;
using engine::SsmBatch;
using engine::Tensor;

// Sequences of one SSM call: lengths, slots (distinct, shuffled among
// num_slots) and has_initial_state.
struct SeqLayout {
  std::vector<int32_t> query_start, slot, has_init;
  int64_t num_slots = 0;
  int64_t num_tokens() const { return query_start.back(); }
  int64_t max_len() const {
    int64_t m = 0;
    for (size_t s = 0; s + 1 < query_start.size(); ++s) {
      m = std::max<int64_t>(m, query_start[s + 1] - query_start[s]);
    }
    return m;
  }
};

SeqLayout MakeLayout(const std::vector<int32_t>& lengths, const std::vector<int32_t>& has_init,
                     int64_t num_slots, uint32_t seed) {
  SeqLayout l;
  l.num_slots = num_slots;
  l.query_start = {0};
  for (int32_t n : lengths) l.query_start.push_back(l.query_start.back() + n);
  std::vector<int32_t> slots(num_slots);
  std::iota(slots.begin(), slots.end(), 0);
  std::mt19937 gen(seed);
  std::shuffle(slots.begin(), slots.end(), gen);
  l.slot.assign(slots.begin(), slots.begin() + lengths.size());
  l.has_init = has_init;
  return l;
}

// The same sequences, one more call of `n` tokens each, continuing from the slots.
SeqLayout Continue(const SeqLayout& l, int32_t n) {
  SeqLayout c = l;
  c.query_start = {0};
  for (size_t s = 0; s < l.slot.size(); ++s) c.query_start.push_back(c.query_start.back() + n);
  std::fill(c.has_init.begin(), c.has_init.end(), 1);
  return c;
}

// The layout's index tensors on the host and on the GPU.
struct BatchTensors {
  HostTensor qs, slot, init;
  DeviceTensor dqs, dslot, dinit;
  SsmBatch Host(int64_t max_len) {
    return {.query_start = qs.HostView(), .state_slot = slot.HostView(),
            .has_initial_state = init.HostView(),
            .num_seqs = static_cast<int64_t>(slot.numel()), .max_query_len = max_len};
  }
  SsmBatch Device(int64_t max_len) const {
    return {.query_start = dqs.view, .state_slot = dslot.view, .has_initial_state = dinit.view,
            .num_seqs = static_cast<int64_t>(slot.numel()), .max_query_len = max_len};
  }
};

class SsmParityTest : public BackendParityTest {
 protected:
  void MakeBatch(const SeqLayout& l, BatchTensors* b) {
    const int64_t s = static_cast<int64_t>(l.slot.size());
    b->qs = HostTensor(l.query_start, {s + 1});
    b->slot = HostTensor(l.slot, {s});
    b->init = HostTensor(l.has_init, {s});
    HS_GPU_ASSIGN(b->dqs, Dev(b->qs));
    HS_GPU_ASSIGN(b->dslot, Dev(b->slot));
    HS_GPU_ASSIGN(b->dinit, Dev(b->init));
  }
  void AddLayout(FailureDump& dump, BatchTensors& b) {
    dump.Add("query_start", b.qs);
    dump.Add("state_slot", b.slot);
    dump.Add("has_initial_state", b.init);
  }
};

// dt_bias values whose softplus is log-uniform in [0.001, 0.1] (Mamba's init).
std::vector<float> DtBias(int64_t n, uint32_t seed) {
  std::vector<float> u = RandomUniform(n, seed, std::log(0.001f), std::log(0.1f));
  for (float& v : u) {
    const double dt = std::exp(double(v));
    v = static_cast<float>(dt + std::log(-std::expm1(-dt)));
  }
  return u;
}

// ---- CausalConv1d

struct ConvCase {
  std::string name;
  int64_t channels, kernel;
  std::vector<int32_t> lengths, has_init;
  bool bias, silu, in_place;
};

class CausalConv1dParityTest : public SsmParityTest {};

TEST_P(CausalConv1dParityTest, RaggedBatchesWithWindows) {
  const ConvCase cases[] = {
      // Bamba-9B: d_inner 8192 + 2 x 1 group x 128 states, d_conv 4.
      {"bamba9b", 8448, 4, {1, 1, 37, 1, 300, 1}, {1, 0, 1, 1, 0, 1}, true, true, false},
      {"odd_c77_k3", 77, 3, {2, 1, 5, 1}, {0, 1, 1, 0}, false, false, true},
      {"fixture_c256_k3", 256, 3, {1, 70, 2}, {1, 0, 1}, true, true, true},
  };
  uint32_t seed = 2000;
  for (const ConvCase& c : cases) {
    const std::string tag = absl::StrCat("conv_", c.name);
    SCOPED_TRACE(tag);
    const int64_t ch = c.channels, k = c.kernel, num_slots = 16;
    const SeqLayout l1 = MakeLayout(c.lengths, c.has_init, num_slots, ++seed);
    const SeqLayout l2 = Continue(l1, 1);
    const float a = 1.0f / std::sqrt(static_cast<float>(k));
    HostTensor w = In(RandomUniform(ch * k, ++seed, -a, a), {ch, k});
    HostTensor bias = In(RandomNormal(ch, ++seed, 0.1f), {ch});
    HostTensor state(RandomNormal(num_slots * ch * (k - 1), ++seed), {num_slots, ch, k - 1});
    HS_GPU_ASSIGN(DeviceTensor dw, Dev(w));
    HS_GPU_ASSIGN(DeviceTensor dbias, Dev(bias));
    HS_GPU_ASSIGN(DeviceTensor dstate, DevF32(state));
    HostTensor state_ref = state;
    FailureDump dump(tag);
    dump.Add("weight", w);
    if (c.bias) dump.Add("bias", bias);
    dump.Add("conv_state_before", state);
    int call = 0;
    for (const SeqLayout* l : {&l1, &l2}) {
      ++call;
      const int64_t t = l->num_tokens();
      BatchTensors b;
      ASSERT_NO_FATAL_FAILURE(MakeBatch(*l, &b));
      HostTensor x = In(RandomNormal(t * ch, ++seed), {t, ch});
      HostTensor ref(std::vector<float>(t * ch), {t, ch});
      absl::Status st = cpu_.CausalConv1d(x.HostView(), w.HostView(),
                                          c.bias ? bias.HostView() : Tensor(),
                                          state_ref.HostView(), b.Host(l->max_len()), c.silu,
                                          ref.HostView());
      ASSERT_TRUE(st.ok()) << st;
      HS_GPU_ASSIGN(DeviceTensor dx, Dev(x));
      HS_GPU_ASSIGN(DeviceTensor dout, Dev(Poison({t, ch})));
      const Tensor out_view = c.in_place ? dx.view : dout.view;
      st = gpu_->CausalConv1d(dx.view, dw.view, c.bias ? dbias.view : Tensor(), dstate.view,
                              b.Device(l->max_len()), c.silu, out_view);
      ASSERT_TRUE(st.ok()) << st;
      HS_GPU_ASSIGN(std::vector<float> got, Download(*gpu_, out_view));
      HS_GPU_ASSIGN(std::vector<float> got_state, Get(dstate));
      dump.Add(absl::StrCat("x_call", call), x);
      AddLayout(dump, b);
      dump.Check(absl::StrCat("out_call", call), got, ref.values(), {t, ch},
                 Tol({1e-5, 1e-4}, {1e-2, 1e-2}));
      dump.Check(absl::StrCat("conv_state_call", call), got_state, state_ref.values(),
                 {num_slots, ch, k - 1}, {0.0, 0.0});
    }
  }
}

// ---- Mamba2Scan

struct ScanCase {
  std::string name;
  int64_t heads, head_dim, groups, d_state;
  std::vector<int32_t> lengths, has_init;
  float dt_min = 0.0f, dt_max = std::numeric_limits<float>::infinity();
};

class Mamba2ScanParityTest : public SsmParityTest {
 protected:
  void Run(const ScanCase& c, uint32_t seed);
};

void Mamba2ScanParityTest::Run(const ScanCase& c, uint32_t seed) {
  const std::string tag = absl::StrCat("mamba2_", c.name);
  SCOPED_TRACE(tag);
  const int64_t h = c.heads, p = c.head_dim, n = c.d_state, g = c.groups;
  const int64_t di = h * p, width = di + 2 * g * n, num_slots = 12;
  const Mamba2ScanParams params{.num_heads = h, .head_dim = p, .n_groups = g, .d_state = n,
                                .dt_min = c.dt_min, .dt_max = c.dt_max};
  const SeqLayout l1 = MakeLayout(c.lengths, c.has_init, num_slots, seed);
  const SeqLayout l2 = Continue(l1, 1);   // a decode step for everyone
  const SeqLayout l3 = Continue(l1, 37);  // then a chunk each
  std::vector<float> a_log = RandomUniform(h, seed + 1, 1.0f, 16.0f);
  for (float& v : a_log) v = std::log(v);
  HostTensor ha = In(a_log, {h});
  HostTensor hbias = In(DtBias(h, seed + 2), {h});
  HostTensor hd = In(RandomUniform(h, seed + 3, 0.5f, 1.5f), {h});
  HostTensor state(RandomNormal(num_slots * di * n, seed + 4, 0.5f), {num_slots, h, p, n});
  HS_GPU_ASSIGN(DeviceTensor da, Dev(ha));
  HS_GPU_ASSIGN(DeviceTensor dbias, Dev(hbias));
  HS_GPU_ASSIGN(DeviceTensor dd, Dev(hd));
  HS_GPU_ASSIGN(DeviceTensor dstate, DevF32(state));
  HostTensor state_ref = state;
  FailureDump dump(tag);
  dump.Add("a_log", ha);
  dump.Add("dt_bias", hbias);
  dump.Add("d", hd);
  dump.Add("ssm_state_before", state);
  const Tolerance tol = Tol({1e-3, 1e-3}, {3e-2, 3e-2});
  int call = 0;
  uint32_t s = seed + 10;
  for (const SeqLayout* l : {&l1, &l2, &l3}) {
    ++call;
    const int64_t t = l->num_tokens();
    BatchTensors b;
    ASSERT_NO_FATAL_FAILURE(MakeBatch(*l, &b));
    HostTensor xbc = In(RandomNormal(t * width, ++s), {t, width});
    HostTensor dt = In(RandomNormal(t * h, ++s, 0.5f), {t, h});
    HostTensor ref(std::vector<float>(t * di), {t, di});
    absl::Status st = cpu_.Mamba2Scan(xbc.HostView(), dt.HostView(), ha.HostView(),
                                      hbias.HostView(), hd.HostView(), state_ref.HostView(),
                                      b.Host(l->max_len()), params, ref.HostView());
    ASSERT_TRUE(st.ok()) << st;
    HS_GPU_ASSIGN(DeviceTensor dxbc, Dev(xbc));
    HS_GPU_ASSIGN(DeviceTensor ddt, Dev(dt));
    HS_GPU_ASSIGN(DeviceTensor dy, Dev(Poison({t, di})));
    st = gpu_->Mamba2Scan(dxbc.view, ddt.view, da.view, dbias.view, dd.view, dstate.view,
                          b.Device(l->max_len()), params, dy.view);
    ASSERT_TRUE(st.ok()) << st;
    HS_GPU_ASSIGN(std::vector<float> got, Get(dy));
    HS_GPU_ASSIGN(std::vector<float> got_state, Get(dstate));
    dump.Add(absl::StrCat("xbc_call", call), xbc);
    dump.Add(absl::StrCat("dt_call", call), dt);
    AddLayout(dump, b);
    dump.Check(absl::StrCat("y_call", call), got, ref.values(), {t, di}, tol);
    dump.Check(absl::StrCat("ssm_state_call", call), got_state, state_ref.values(),
               {num_slots, h, p, n}, tol);
  }
}

TEST_P(Mamba2ScanParityTest, Bamba9bLayer) {
  // 128 heads of 64, d_state 128, one group; prefill and decode mixed, lengths
  // crossing chunk boundaries (256, 257, 600), fresh and continuing sequences.
  Run({.name = "bamba9b", .heads = 128, .head_dim = 64, .groups = 1, .d_state = 128,
       .lengths = {1, 1, 37, 1, 300, 1, 256, 257, 600},
       .has_init = {1, 0, 1, 1, 0, 1, 0, 1, 1}},
      3000);
}

TEST_P(Mamba2ScanParityTest, OddShapesAndDtLimits) {
  Run({.name = "odd_h6_p10_g3_n17", .heads = 6, .head_dim = 10, .groups = 3, .d_state = 17,
       .lengths = {1, 5, 33, 1, 130}, .has_init = {0, 1, 1, 1, 0}},
      3100);
  Run({.name = "fixture_h8_p16_g4_n16_dtlimit", .heads = 8, .head_dim = 16, .groups = 4,
       .d_state = 16, .lengths = {1, 70, 2, 129}, .has_init = {1, 0, 1, 1},
       .dt_min = 0.01f, .dt_max = 0.05f},
      3200);
  Run({.name = "decode_only_h128_p64_n128", .heads = 128, .head_dim = 64, .groups = 1,
       .d_state = 128, .lengths = {1, 1, 1, 1, 1, 1, 1, 1}, .has_init = {1, 1, 1, 1, 1, 1, 1, 0}},
      3300);
}

// ---- Mamba1Scan

class Mamba1ScanParityTest : public SsmParityTest {};

TEST_P(Mamba1ScanParityTest, RaggedBatches) {
  struct Case {
    std::string name;
    int64_t d, n;
    std::vector<int32_t> lengths, has_init;
  };
  const Case cases[] = {
      {"d5120_n16", 5120, 16, {1, 1, 37, 1, 300, 1}, {1, 0, 1, 1, 0, 1}},
      {"odd_d77_n8", 77, 8, {3, 1, 9}, {0, 1, 1}},
  };
  uint32_t seed = 4000;
  for (const Case& c : cases) {
    const std::string tag = absl::StrCat("mamba1_", c.name);
    SCOPED_TRACE(tag);
    const int64_t d = c.d, n = c.n, num_slots = 8;
    const SeqLayout l1 = MakeLayout(c.lengths, c.has_init, num_slots, ++seed);
    const SeqLayout l2 = Continue(l1, 1);
    std::vector<float> a_log(d * n);
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j < n; ++j) a_log[i * n + j] = std::log(float(j + 1));
    }
    HostTensor ha = In(a_log, {d, n});
    HostTensor hbias = In(DtBias(d, ++seed), {d});
    HostTensor hd = In(RandomUniform(d, ++seed, 0.5f, 1.5f), {d});
    HostTensor state(RandomNormal(num_slots * d * n, ++seed, 0.5f), {num_slots, d, n});
    HS_GPU_ASSIGN(DeviceTensor da, Dev(ha));
    HS_GPU_ASSIGN(DeviceTensor dbias, Dev(hbias));
    HS_GPU_ASSIGN(DeviceTensor dd, Dev(hd));
    HS_GPU_ASSIGN(DeviceTensor dstate, DevF32(state));
    HostTensor state_ref = state;
    FailureDump dump(tag);
    dump.Add("a_log", ha);
    dump.Add("dt_bias", hbias);
    dump.Add("d", hd);
    dump.Add("ssm_state_before", state);
    const Tolerance tol = Tol({1e-4, 1e-3}, {2e-2, 2e-2});
    int call = 0;
    for (const SeqLayout* l : {&l1, &l2}) {
      ++call;
      const int64_t t = l->num_tokens();
      BatchTensors b;
      ASSERT_NO_FATAL_FAILURE(MakeBatch(*l, &b));
      HostTensor x = In(RandomNormal(t * d, ++seed), {t, d});
      HostTensor dt = In(RandomNormal(t * d, ++seed, 0.5f), {t, d});
      HostTensor bc = In(RandomNormal(t * 2 * n, ++seed), {t, 2 * n});
      HostTensor z = In(RandomNormal(t * d, ++seed), {t, d});
      HostTensor ref(std::vector<float>(t * d), {t, d});
      absl::Status st = cpu_.Mamba1Scan(x.HostView(), dt.HostView(), bc.HostView(), z.HostView(),
                                        ha.HostView(), hbias.HostView(), hd.HostView(),
                                        state_ref.HostView(), b.Host(l->max_len()),
                                        ref.HostView());
      ASSERT_TRUE(st.ok()) << st;
      HS_GPU_ASSIGN(DeviceTensor dx, Dev(x));
      HS_GPU_ASSIGN(DeviceTensor ddt, Dev(dt));
      HS_GPU_ASSIGN(DeviceTensor dbc, Dev(bc));
      HS_GPU_ASSIGN(DeviceTensor dz, Dev(z));
      HS_GPU_ASSIGN(DeviceTensor dy, Dev(Poison({t, d})));
      st = gpu_->Mamba1Scan(dx.view, ddt.view, dbc.view, dz.view, da.view, dbias.view, dd.view,
                            dstate.view, b.Device(l->max_len()), dy.view);
      ASSERT_TRUE(st.ok()) << st;
      HS_GPU_ASSIGN(std::vector<float> got, Get(dy));
      HS_GPU_ASSIGN(std::vector<float> got_state, Get(dstate));
      dump.Add(absl::StrCat("x_call", call), x);
      dump.Add(absl::StrCat("dt_call", call), dt);
      dump.Add(absl::StrCat("bc_call", call), bc);
      dump.Add(absl::StrCat("z_call", call), z);
      AddLayout(dump, b);
      dump.Check(absl::StrCat("y_call", call), got, ref.values(), {t, d}, tol);
      dump.Check(absl::StrCat("ssm_state_call", call), got_state, state_ref.values(),
                 {num_slots, d, n}, tol);
    }
  }
}

// ---- GatedRmsNorm

class GatedRmsNormParityTest : public SsmParityTest {};

TEST_P(GatedRmsNormParityTest, GroupsAndInPlace) {
  struct Case {
    int64_t t, d, group;
  };
  uint32_t seed = 5000;
  for (const Case& c : {Case{37, 8192, 8192}, Case{300, 8192, 2048}, Case{1, 8192, 8192},
                        Case{5, 80, 16}, Case{3, 128, 32}}) {
    const std::string tag = absl::StrCat("gated_rmsnorm_T", c.t, "_D", c.d, "_G", c.group);
    SCOPED_TRACE(tag);
    HostTensor x = In(RandomNormal(c.t * c.d, ++seed), {c.t, c.d});
    HostTensor z = In(RandomNormal(c.t * c.d, ++seed, 2.0f), {c.t, c.d});
    HostTensor w = In(RandomUniform(c.d, ++seed, 0.5f, 1.5f), {c.d});
    HostTensor ref(std::vector<float>(c.t * c.d), {c.t, c.d});
    const float eps = 1e-6f;
    ASSERT_TRUE(cpu_.GatedRmsNorm(x.HostView(), z.HostView(), w.HostView(), c.group, eps,
                                  ref.HostView()).ok());
    HS_GPU_ASSIGN(DeviceTensor dx, Dev(x));
    HS_GPU_ASSIGN(DeviceTensor dz, Dev(z));
    HS_GPU_ASSIGN(DeviceTensor dw, Dev(w));
    HS_GPU_ASSIGN(DeviceTensor dout, Dev(Poison({c.t, c.d})));
    FailureDump dump(tag);
    dump.Add("x", x);
    dump.Add("z", z);
    dump.Add("w", w);
    const Tolerance tol = Tol({1e-5, 1e-4}, {1e-2, 1e-2});
    absl::Status st = gpu_->GatedRmsNorm(dx.view, dz.view, dw.view, c.group, eps, dout.view);
    ASSERT_TRUE(st.ok()) << st;
    HS_GPU_ASSIGN(std::vector<float> got, Get(dout));
    dump.Check("out", got, ref.values(), {c.t, c.d}, tol);
    st = gpu_->GatedRmsNorm(dx.view, dz.view, dw.view, c.group, eps, dx.view);
    ASSERT_TRUE(st.ok()) << st;
    HS_GPU_ASSIGN(std::vector<float> inplace, Get(dx));
    dump.Check("out_in_place", inplace, ref.values(), {c.t, c.d}, tol);
  }
}

INSTANTIATE_TEST_SUITE_P(ActDtypes, CausalConv1dParityTest,
                         ::testing::Values(DType::kF32, DType::kBF16), DTypeTestName);
INSTANTIATE_TEST_SUITE_P(ActDtypes, Mamba2ScanParityTest,
                         ::testing::Values(DType::kF32, DType::kBF16), DTypeTestName);
INSTANTIATE_TEST_SUITE_P(ActDtypes, Mamba1ScanParityTest,
                         ::testing::Values(DType::kF32, DType::kBF16), DTypeTestName);
INSTANTIATE_TEST_SUITE_P(ActDtypes, GatedRmsNormParityTest,
                         ::testing::Values(DType::kF32, DType::kBF16), DTypeTestName);

}  // namespace
}  // namespace hybridserve::gpu_testing
