// The CPU backend's SSM ops (CausalConv1d, Mamba2Scan, GatedRmsNorm) against
// plain double-precision references written from the formulas in backend.h,
// plus the properties the engine relies on: a sequence's result and final
// state do not depend on the rest of the batch (class (b), bitwise); running a
// sequence in two steps through its slot equals running it in one; a fresh
// sequence ignores whatever its slot held.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/backend/cpu/cpu_backend.h"
#include "gtest/gtest.h"

namespace hybridserve::engine {
namespace {

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

Tensor F(std::vector<float>& v, std::initializer_list<int64_t> shape) {
  return Tensor(v.data(), DType::kF32, shape);
}
Tensor I(std::vector<int32_t>& v) {
  return Tensor(v.data(), DType::kI32, {static_cast<int64_t>(v.size())});
}

// Host-side batch description.
struct Batch {
  std::vector<int32_t> query_start, slot, has_init;
  SsmBatch View() {
    return {.query_start = I(query_start), .state_slot = I(slot),
            .has_initial_state = I(has_init),
            .num_seqs = static_cast<int64_t>(slot.size())};
  }
};

double SiluD(double v) { return v / (1.0 + std::exp(-v)); }

class SsmOpsTest : public ::testing::Test {
 protected:
  CpuBackend backend_{CpuBackendOptions{.num_threads = 2}};
};

// ---- CausalConv1d

TEST_F(SsmOpsTest, CausalConv1dMatchesReferenceWithWindows) {
  const int64_t c = 10, k = 4, slots = 3;
  Batch b{{0, 5, 6, 13}, {2, 0, 1}, {1, 0, 1}};
  const int64_t t = 13;
  auto x = Random(t * c, 1), w = Random(c * k, 2), bias = Random(c, 3);
  auto state = Random(slots * c * (k - 1), 4);
  const std::vector<float> state0 = state;
  std::vector<float> out(t * c);
  ASSERT_TRUE(backend_.CausalConv1d(F(x, {t, c}), F(w, {c, k}), F(bias, {c}),
                                    F(state, {slots, c, k - 1}), b.View(), true,
                                    F(out, {t, c})).ok());
  for (int64_t s = 0; s < 3; ++s) {
    for (int64_t ch = 0; ch < c; ++ch) {
      std::vector<double> u;
      for (int64_t i = 0; i < k - 1; ++i) {
        u.push_back(b.has_init[s] ? state0[(b.slot[s] * c + ch) * (k - 1) + i] : 0.0);
      }
      for (int64_t i = b.query_start[s]; i < b.query_start[s + 1]; ++i) u.push_back(x[i * c + ch]);
      for (int64_t i = b.query_start[s]; i < b.query_start[s + 1]; ++i) {
        const int64_t j0 = i - b.query_start[s];  // u index of the oldest tap
        double acc = bias[ch];
        for (int64_t j = 0; j < k; ++j) acc += double(w[ch * k + j]) * u[j0 + j];
        EXPECT_NEAR(out[i * c + ch], SiluD(acc), 1e-5) << s << " " << ch << " " << i;
      }
      for (int64_t i = 0; i < k - 1; ++i) {
        EXPECT_EQ(state[(b.slot[s] * c + ch) * (k - 1) + i], float(u[u.size() - (k - 1) + i]));
      }
    }
  }
}

TEST_F(SsmOpsTest, CausalConv1dInPlaceAndWithoutBiasOrSilu) {
  const int64_t c = 6, k = 3, t = 7;
  Batch b{{0, t}, {0}, {0}};
  auto x = Random(t * c, 5), w = Random(c * k, 6);
  std::vector<float> state(c * (k - 1), 123.0f), state2 = state;  // ignored: fresh
  std::vector<float> out(t * c);
  ASSERT_TRUE(backend_.CausalConv1d(F(x, {t, c}), F(w, {c, k}), Tensor(),
                                    F(state, {1, c, k - 1}), b.View(), false,
                                    F(out, {t, c})).ok());
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t i = 0; i < t; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t src = i - (k - 1) + j;
        if (src >= 0) acc += double(w[ch * k + j]) * x[src * c + ch];
      }
      EXPECT_NEAR(out[i * c + ch], acc, 1e-5);
    }
  }
  std::vector<float> inplace = x;
  ASSERT_TRUE(backend_.CausalConv1d(F(inplace, {t, c}), F(w, {c, k}), Tensor(),
                                    F(state2, {1, c, k - 1}), b.View(), false,
                                    F(inplace, {t, c})).ok());
  EXPECT_EQ(0, std::memcmp(inplace.data(), out.data(), out.size() * sizeof(float)));
  EXPECT_EQ(state, state2);
}

// ---- Mamba2Scan

struct ScanCase {
  int64_t heads = 4, head_dim = 3, groups = 2, d_state = 5;
  float dt_min = 0.0f, dt_max = INFINITY;
  Mamba2ScanParams Params() const {
    return {heads, head_dim, groups, d_state, dt_min, dt_max};
  }
  int64_t width() const { return heads * head_dim + 2 * groups * d_state; }
};

// The recurrence in double, for one sequence starting from `state` ([heads,
// head_dim, d_state]), updated in place.
void ReferenceScan(const ScanCase& sc, const float* xbc, const float* dt, int64_t n,
                   const std::vector<float>& a_log, const std::vector<float>& dt_bias,
                   const std::vector<float>& d, std::vector<double>& state,
                   std::vector<double>& y) {
  const int64_t di = sc.heads * sc.head_dim, w = sc.width();
  y.assign(n * di, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t h = 0; h < sc.heads; ++h) {
      const int64_t g = h / (sc.heads / sc.groups);
      double raw = double(dt[i * sc.heads + h]) + dt_bias[h];
      double delta = raw > 20 ? raw : std::log1p(std::exp(raw));
      delta = std::min<double>(std::max<double>(delta, sc.dt_min), sc.dt_max);
      const double decay = std::exp(-std::exp(double(a_log[h])) * delta);
      for (int64_t p = 0; p < sc.head_dim; ++p) {
        const double x = xbc[i * w + h * sc.head_dim + p];
        double acc = 0;
        for (int64_t j = 0; j < sc.d_state; ++j) {
          double& s = state[(h * sc.head_dim + p) * sc.d_state + j];
          s = s * decay + delta * x * xbc[i * w + di + g * sc.d_state + j];
          acc += s * xbc[i * w + di + sc.groups * sc.d_state + g * sc.d_state + j];
        }
        y[i * di + h * sc.head_dim + p] = acc + d[h] * x;
      }
    }
  }
}

TEST_F(SsmOpsTest, Mamba2ScanMatchesSequentialReference) {
  for (ScanCase sc : {ScanCase{}, ScanCase{.groups = 1}, ScanCase{.groups = 4, .dt_min = 0.3f, .dt_max = 0.9f}}) {
    const int64_t slots = 4, t = 12, di = sc.heads * sc.head_dim;
    const int64_t per_slot = sc.heads * sc.head_dim * sc.d_state;
    Batch b{{0, 1, 7, 12}, {3, 1, 0}, {1, 0, 1}};
    auto xbc = Random(t * sc.width(), 10), dt = Random(t * sc.heads, 11);
    auto a_log = Random(sc.heads, 12, 0.5f), dt_bias = Random(sc.heads, 13, 0.5f);
    auto d = Random(sc.heads, 14);
    auto state = Random(slots * per_slot, 15);
    const std::vector<float> state0 = state;
    std::vector<float> y(t * di);
    ASSERT_TRUE(backend_.Mamba2Scan(F(xbc, {t, sc.width()}), F(dt, {t, sc.heads}),
                                    F(a_log, {sc.heads}), F(dt_bias, {sc.heads}),
                                    F(d, {sc.heads}),
                                    F(state, {slots, sc.heads, sc.head_dim, sc.d_state}),
                                    b.View(), sc.Params(), F(y, {t, di})).ok());
    for (int64_t s = 0; s < 3; ++s) {
      std::vector<double> st(per_slot, 0.0), ref;
      if (b.has_init[s]) {
        for (int64_t i = 0; i < per_slot; ++i) st[i] = state0[b.slot[s] * per_slot + i];
      }
      const int64_t first = b.query_start[s], n = b.query_start[s + 1] - first;
      ReferenceScan(sc, &xbc[first * sc.width()], &dt[first * sc.heads], n, a_log, dt_bias,
                    d, st, ref);
      for (int64_t i = 0; i < n * di; ++i) {
        EXPECT_NEAR(y[first * di + i], ref[i], 1e-4 * (1 + std::abs(ref[i]))) << s << " " << i;
      }
      for (int64_t i = 0; i < per_slot; ++i) {
        EXPECT_NEAR(state[b.slot[s] * per_slot + i], st[i], 1e-4 * (1 + std::abs(st[i])));
      }
    }
    // Slot 2 belongs to no sequence: untouched.
    EXPECT_EQ(0, std::memcmp(&state[2 * per_slot], &state0[2 * per_slot], per_slot * sizeof(float)));
  }
}

// One sequence of 9 tokens: alone in one call, in two calls through its slot,
// and inside a larger batch at another slot — the outputs must be bitwise equal.
TEST_F(SsmOpsTest, ScanAndConvAreBatchInvariantAndContinueThroughSlots) {
  const ScanCase sc;
  const int64_t n = 9, c = sc.width(), k = 4, di = sc.heads * sc.head_dim;
  const int64_t slots = 5, per_slot = di * sc.d_state;
  auto xbc_seq = Random(n * c, 20), dt_seq = Random(n * sc.heads, 21);
  auto w = Random(c * k, 22), bias = Random(c, 23);
  auto a_log = Random(sc.heads, 24, 0.5f), dt_bias = Random(sc.heads, 25, 0.5f);
  auto d = Random(sc.heads, 26);
  // Runs conv + scan over `xbc`/`dt` with batch `b`; returns y.
  auto run = [&](std::vector<float> xbc, std::vector<float>& dt, Batch& b,
                 std::vector<float>& conv_state, std::vector<float>& ssm_state) {
    const int64_t t = static_cast<int64_t>(dt.size()) / sc.heads;
    std::vector<float> y(t * di);
    EXPECT_TRUE(backend_.CausalConv1d(F(xbc, {t, c}), F(w, {c, k}), F(bias, {c}),
                                      F(conv_state, {slots, c, k - 1}), b.View(), true,
                                      F(xbc, {t, c})).ok());
    EXPECT_TRUE(backend_.Mamba2Scan(F(xbc, {t, c}), F(dt, {t, sc.heads}), F(a_log, {sc.heads}),
                                    F(dt_bias, {sc.heads}), F(d, {sc.heads}),
                                    F(ssm_state, {slots, sc.heads, sc.head_dim, sc.d_state}),
                                    b.View(), sc.Params(), F(y, {t, di})).ok());
    return y;
  };
  std::vector<float> conv_a(slots * c * (k - 1), 9.0f), ssm_a(slots * per_slot, 9.0f);
  Batch alone{{0, int32_t(n)}, {1}, {0}};
  const std::vector<float> y_alone = run(xbc_seq, dt_seq, alone, conv_a, ssm_a);

  // Two calls: 4 tokens fresh, then 5 continuing from the slot.
  std::vector<float> conv_b(slots * c * (k - 1), -3.0f), ssm_b(slots * per_slot, -3.0f);
  std::vector<float> x1(xbc_seq.begin(), xbc_seq.begin() + 4 * c), x2(xbc_seq.begin() + 4 * c, xbc_seq.end());
  std::vector<float> d1(dt_seq.begin(), dt_seq.begin() + 4 * sc.heads), d2(dt_seq.begin() + 4 * sc.heads, dt_seq.end());
  Batch first{{0, 4}, {3}, {0}}, second{{0, 5}, {3}, {1}};
  std::vector<float> y_split = run(x1, d1, first, conv_b, ssm_b);
  const std::vector<float> y2 = run(x2, d2, second, conv_b, ssm_b);
  y_split.insert(y_split.end(), y2.begin(), y2.end());
  // Split at any point: bitwise the same outputs and states (class (b)).
  EXPECT_EQ(0, std::memcmp(y_split.data(), y_alone.data(), y_alone.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(&ssm_b[3 * per_slot], &ssm_a[1 * per_slot], per_slot * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(&conv_b[3 * c * (k - 1)], &conv_a[1 * c * (k - 1)],
                           c * (k - 1) * sizeof(float)));

  // Batched with two other sequences, ours in the middle at slot 4.
  auto xo1 = Random(3 * c, 30), xo2 = Random(6 * c, 31);
  auto do1 = Random(3 * sc.heads, 32), do2 = Random(6 * sc.heads, 33);
  std::vector<float> xbc_all = xo1, dt_all = do1;
  xbc_all.insert(xbc_all.end(), xbc_seq.begin(), xbc_seq.end());
  xbc_all.insert(xbc_all.end(), xo2.begin(), xo2.end());
  dt_all.insert(dt_all.end(), dt_seq.begin(), dt_seq.end());
  dt_all.insert(dt_all.end(), do2.begin(), do2.end());
  std::vector<float> conv_c(slots * c * (k - 1), 1.0f), ssm_c(slots * per_slot, 1.0f);
  Batch all{{0, 3, 3 + int32_t(n), 9 + int32_t(n)}, {0, 4, 2}, {1, 0, 1}};
  const std::vector<float> y_all = run(xbc_all, dt_all, all, conv_c, ssm_c);
  EXPECT_EQ(0, std::memcmp(&y_all[3 * di], y_alone.data(), y_alone.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(&ssm_c[4 * per_slot], &ssm_a[1 * per_slot], per_slot * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(&conv_c[4 * c * (k - 1)], &conv_a[1 * c * (k - 1)],
                           c * (k - 1) * sizeof(float)));
}

TEST_F(SsmOpsTest, ScanRejectsBadShapesAndSlots) {
  const ScanCase sc;
  const int64_t t = 2, di = sc.heads * sc.head_dim;
  auto xbc = Random(t * sc.width(), 1), dt = Random(t * sc.heads, 2);
  auto v = Random(sc.heads, 3);
  std::vector<float> state(2 * di * sc.d_state), y(t * di);
  Batch b{{0, t}, {2}, {1}};  // slot 2 of 2
  Tensor st = F(state, {2, sc.heads, sc.head_dim, sc.d_state});
  EXPECT_EQ(backend_.Mamba2Scan(F(xbc, {t, sc.width()}), F(dt, {t, sc.heads}), F(v, {sc.heads}),
                                F(v, {sc.heads}), F(v, {sc.heads}), st, b.View(), sc.Params(),
                                F(y, {t, di})).code(),
            absl::StatusCode::kInvalidArgument);
  b.slot = {0};
  ScanCase wrong = sc;
  wrong.groups = 3;  // does not divide heads
  EXPECT_EQ(backend_.Mamba2Scan(F(xbc, {t, sc.width()}), F(dt, {t, sc.heads}), F(v, {sc.heads}),
                                F(v, {sc.heads}), F(v, {sc.heads}), st, b.View(), wrong.Params(),
                                F(y, {t, di})).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<float> conv_state(2 * 3), w(3 * 4);
  EXPECT_EQ(backend_.CausalConv1d(F(xbc, {t, 3}), F(w, {3, 4}), Tensor(),
                                  F(conv_state, {2, 3, 1}), b.View(), true, F(xbc, {t, 3})).code(),
            absl::StatusCode::kInvalidArgument);  // window must be K - 1 = 3
}

// ---- Mamba1Scan

TEST_F(SsmOpsTest, Mamba1ScanMatchesReferenceAndIsBatchInvariant) {
  const int64_t ch = 6, n = 4, slots = 3, t = 10;
  Batch b{{0, 4, 10}, {2, 0}, {1, 0}};
  auto x = Random(t * ch, 50), dt = Random(t * ch, 51), bc = Random(t * 2 * n, 52);
  auto z = Random(t * ch, 53), a_log = Random(ch * n, 54, 0.5f);
  auto dt_bias = Random(ch, 55, 0.5f), d = Random(ch, 56);
  auto state = Random(slots * ch * n, 57);
  const std::vector<float> state0 = state;
  std::vector<float> y(t * ch);
  ASSERT_TRUE(backend_.Mamba1Scan(F(x, {t, ch}), F(dt, {t, ch}), F(bc, {t, 2 * n}),
                                  F(z, {t, ch}), F(a_log, {ch, n}), F(dt_bias, {ch}),
                                  F(d, {ch}), F(state, {slots, ch, n}), b.View(),
                                  F(y, {t, ch})).ok());
  for (int64_t s = 0; s < 2; ++s) {
    for (int64_t c = 0; c < ch; ++c) {
      std::vector<double> st(n, 0.0);
      if (b.has_init[s]) {
        for (int64_t j = 0; j < n; ++j) st[j] = state0[(b.slot[s] * ch + c) * n + j];
      }
      for (int64_t i = b.query_start[s]; i < b.query_start[s + 1]; ++i) {
        const double raw = double(dt[i * ch + c]) + dt_bias[c];
        const double delta = raw > 20 ? raw : std::log1p(std::exp(raw));
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) {
          st[j] = std::exp(-std::exp(double(a_log[c * n + j])) * delta) * st[j] +
                  delta * x[i * ch + c] * bc[i * 2 * n + j];
          acc += st[j] * bc[i * 2 * n + n + j];
        }
        const double ref = (acc + d[c] * x[i * ch + c]) * SiluD(z[i * ch + c]);
        EXPECT_NEAR(y[i * ch + c], ref, 1e-4 * (1 + std::abs(ref))) << s << " " << c << " " << i;
      }
      for (int64_t j = 0; j < n; ++j) {
        EXPECT_NEAR(state[(b.slot[s] * ch + c) * n + j], st[j], 1e-4 * (1 + std::abs(st[j])));
      }
    }
  }
  // The second sequence alone (rows 4..9) at another slot: bitwise the same.
  std::vector<float> x2(x.begin() + 4 * ch, x.end()), dt2(dt.begin() + 4 * ch, dt.end());
  std::vector<float> bc2(bc.begin() + 4 * 2 * n, bc.end()), z2(z.begin() + 4 * ch, z.end());
  std::vector<float> state2(slots * ch * n, 5.0f), y2(6 * ch);
  Batch alone{{0, 6}, {1}, {0}};
  ASSERT_TRUE(backend_.Mamba1Scan(F(x2, {6, ch}), F(dt2, {6, ch}), F(bc2, {6, 2 * n}),
                                  F(z2, {6, ch}), F(a_log, {ch, n}), F(dt_bias, {ch}),
                                  F(d, {ch}), F(state2, {slots, ch, n}), alone.View(),
                                  F(y2, {6, ch})).ok());
  EXPECT_EQ(0, std::memcmp(y2.data(), &y[4 * ch], 6 * ch * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(&state2[ch * n], &state[0], ch * n * sizeof(float)));
}

// ---- GatedRmsNorm

TEST_F(SsmOpsTest, GatedRmsNormNormalizesPerGroup) {
  const int64_t t = 3, dim = 12;
  auto x = Random(t * dim, 40), z = Random(t * dim, 41), w = Random(dim, 42);
  for (int64_t group : {12, 4, 3}) {
    std::vector<float> out(t * dim);
    ASSERT_TRUE(backend_.GatedRmsNorm(F(x, {t, dim}), F(z, {t, dim}), F(w, {dim}), group,
                                      1e-5f, F(out, {t, dim})).ok());
    for (int64_t r = 0; r < t; ++r) {
      for (int64_t g0 = 0; g0 < dim; g0 += group) {
        double ss = 0;
        for (int64_t j = g0; j < g0 + group; ++j) {
          const double h = x[r * dim + j] * SiluD(z[r * dim + j]);
          ss += h * h;
        }
        const double inv = 1.0 / std::sqrt(ss / group + 1e-5);
        for (int64_t j = g0; j < g0 + group; ++j) {
          const double ref = w[j] * x[r * dim + j] * SiluD(z[r * dim + j]) * inv;
          EXPECT_NEAR(out[r * dim + j], ref, 1e-5 * (1 + std::abs(ref)));
        }
      }
    }
    // Rows are independent: row 1 alone is bitwise row 1 of the batch.
    std::vector<float> x1(x.begin() + dim, x.begin() + 2 * dim), z1(z.begin() + dim, z.begin() + 2 * dim);
    std::vector<float> o1(dim);
    ASSERT_TRUE(backend_.GatedRmsNorm(F(x1, {1, dim}), F(z1, {1, dim}), F(w, {dim}), group,
                                      1e-5f, F(o1, {1, dim})).ok());
    EXPECT_EQ(0, std::memcmp(o1.data(), &out[dim], dim * sizeof(float)));
  }
  std::vector<float> out(t * dim);
  EXPECT_EQ(backend_.GatedRmsNorm(F(x, {t, dim}), F(z, {t, dim}), F(w, {dim}), 5, 1e-5f,
                                  F(out, {t, dim})).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hybridserve::engine
