// Each CPU op against a plain double-precision reference, and each op's
// batch invariance: a row computed alone is bitwise identical to the same row
// computed inside a larger batch (DESIGN.md section 7, class (b)).
#include "engine/backend/cpu/cpu_backend.h"

#include <cmath>
#include <functional>
#include <cstring>
#include <random>
#include <vector>

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

Tensor T2(std::vector<float>& v, int64_t rows, int64_t cols) {
  return Tensor(v.data(), DType::kF32, {rows, cols});
}

class CpuBackendTest : public ::testing::Test {
 protected:
  CpuBackend backend_{CpuBackendOptions{.num_threads = 2}};
};

TEST_F(CpuBackendTest, GemmMatchesReference) {
  const int64_t t = 5, k = 70, n = 33;
  auto x = Random(t * k, 1), w = Random(n * k, 2), bias = Random(n, 3);
  std::vector<float> y(t * n);
  ASSERT_TRUE(backend_.Gemm(T2(x, t, k), T2(w, n, k),
                            Tensor(bias.data(), DType::kF32, {n}), T2(y, t, n)).ok());
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      double ref = bias[j];
      for (int64_t i = 0; i < k; ++i) ref += double(x[r * k + i]) * w[j * k + i];
      EXPECT_NEAR(y[r * n + j], ref, 1e-4 * (1 + std::abs(ref))) << r << "," << j;
    }
  }
}

TEST_F(CpuBackendTest, GemmRejectsMismatchedShapes) {
  std::vector<float> x(4 * 8), w(3 * 7), y(4 * 3);
  absl::Status s = backend_.Gemm(T2(x, 4, 8), T2(w, 3, 7), Tensor(), T2(y, 4, 3));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

// A row's GEMM result must not depend on how many rows share the call, for
// the shapes of tiny test models through to 100M-parameter ones.
TEST_F(CpuBackendTest, GemmRowsAreBatchInvariant) {
  const std::pair<int64_t, int64_t> shapes[] = {
      {64, 64}, {64, 256}, {32, 96}, {128, 344}, {64, 8}, {768, 2048}, {2048, 768}};
  for (auto [k, n] : shapes) {
    auto w = Random(n * k, 7);
    auto row = Random(k, 8);
    std::vector<float> alone(n);
    ASSERT_TRUE(backend_.Gemm(T2(row, 1, k), T2(w, n, k), Tensor(), T2(alone, 1, n)).ok());
    for (int64_t t : {2, 3, 7, 16, 61, 200, 301}) {
      auto x = Random(t * k, 100 + t);
      const int64_t at = t / 2;
      std::memcpy(&x[at * k], row.data(), k * sizeof(float));
      std::vector<float> y(t * n);
      ASSERT_TRUE(backend_.Gemm(T2(x, t, k), T2(w, n, k), Tensor(), T2(y, t, n)).ok());
      EXPECT_EQ(0, std::memcmp(&y[at * n], alone.data(), n * sizeof(float)))
          << "K=" << k << " N=" << n << " T=" << t;
    }
  }
}

TEST_F(CpuBackendTest, EmbeddingCopiesRowsAndRejectsBadIds) {
  auto table = Random(10 * 4, 3);
  std::vector<int32_t> ids = {3, 0, 9};
  std::vector<float> out(3 * 4);
  ASSERT_TRUE(backend_.Embedding(Tensor(ids.data(), DType::kI32, {3}), T2(table, 10, 4),
                                 T2(out, 3, 4)).ok());
  EXPECT_EQ(0, std::memcmp(&out[4], &table[0], 16));
  EXPECT_EQ(0, std::memcmp(&out[8], &table[36], 16));
  ids[1] = 10;
  EXPECT_EQ(backend_.Embedding(Tensor(ids.data(), DType::kI32, {3}), T2(table, 10, 4),
                               T2(out, 3, 4)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CpuBackendTest, RmsNormAndAddRmsNormMatchReference) {
  const int64_t t = 3, h = 37;
  auto x = Random(t * h, 4, 3.0f), w = Random(h, 5), res = Random(t * h, 6);
  std::vector<float> out(t * h), res2 = res, out2(t * h);
  ASSERT_TRUE(backend_.RmsNorm(T2(x, t, h), Tensor(w.data(), DType::kF32, {h}), 1e-5f,
                               T2(out, t, h)).ok());
  ASSERT_TRUE(backend_.AddRmsNorm(T2(res2, t, h), T2(x, t, h),
                                  Tensor(w.data(), DType::kF32, {h}), 1e-5f,
                                  T2(out2, t, h)).ok());
  for (int64_t r = 0; r < t; ++r) {
    double ss = 0, ss2 = 0;
    for (int64_t j = 0; j < h; ++j) {
      ss += double(x[r * h + j]) * x[r * h + j];
      const double s = double(res[r * h + j]) + x[r * h + j];
      ss2 += s * s;
    }
    for (int64_t j = 0; j < h; ++j) {
      const double ref = x[r * h + j] / std::sqrt(ss / h + 1e-5) * w[j];
      EXPECT_NEAR(out[r * h + j], ref, 1e-5 * (1 + std::abs(ref)));
      const double s = double(res[r * h + j]) + x[r * h + j];
      EXPECT_NEAR(res2[r * h + j], s, 1e-6 * (1 + std::abs(s)));
      const double ref2 = s / std::sqrt(ss2 / h + 1e-5) * w[j];
      EXPECT_NEAR(out2[r * h + j], ref2, 1e-5 * (1 + std::abs(ref2)));
    }
  }
}

TEST_F(CpuBackendTest, GatedActMatchesReference) {
  const int64_t t = 2, inter = 5;
  auto gu = Random(t * 2 * inter, 9, 2.0f);
  const double pi = std::acos(-1.0);
  auto silu = [](double g) { return g / (1 + std::exp(-g)); };
  auto gelu_tanh = [&](double g) {
    return 0.5 * g * (1 + std::tanh(std::sqrt(2 / pi) * (g + 0.044715 * g * g * g)));
  };
  auto relu2 = [](double g) { return g > 0 ? g * g : 0.0; };
  const std::pair<Activation, std::function<double(double)>> cases[] = {
      {Activation::kSilu, silu}, {Activation::kGeluTanh, gelu_tanh}, {Activation::kRelu2, relu2}};
  for (const auto& [act, ref] : cases) {
    std::vector<float> out(t * inter);
    ASSERT_TRUE(backend_.GatedAct(T2(gu, t, 2 * inter), act, T2(out, t, inter)).ok());
    for (int64_t r = 0; r < t; ++r) {
      for (int64_t j = 0; j < inter; ++j) {
        const double g = gu[r * 2 * inter + j], u = gu[r * 2 * inter + inter + j];
        EXPECT_NEAR(out[r * inter + j], ref(g) * u, 1e-5 * (1 + std::abs(ref(g) * u)))
            << static_cast<int>(act);
      }
    }
  }
}

TEST_F(CpuBackendTest, RopeRotatesPairsHalfApart) {
  const int64_t t = 3, nh = 2, nkv = 1, d = 8, rot = 6;
  auto q = Random(t * nh * d, 10), k = Random(t * nkv * d, 11);
  const auto q0 = q, k0 = k;
  std::vector<float> inv_freq = {1.0f, 0.1f, 0.01f};
  std::vector<int32_t> pos = {0, 5, 1000};
  RopeParams rope{.inv_freq = Tensor(inv_freq.data(), DType::kF32, {rot / 2}),
                  .rotary_dim = rot,
                  .attention_scaling = 1.0f};
  ASSERT_TRUE(backend_.Rope(Tensor(q.data(), DType::kF32, {t, nh, d}),
                            Tensor(k.data(), DType::kF32, {t, nkv, d}),
                            Tensor(pos.data(), DType::kI32, {t}), rope).ok());
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t h = 0; h < nh; ++h) {
      const float* in = &q0[(r * nh + h) * d];
      const float* got = &q[(r * nh + h) * d];
      for (int64_t i = 0; i < rot / 2; ++i) {
        const double a = double(float(pos[r]) * inv_freq[i]);
        EXPECT_NEAR(got[i], in[i] * std::cos(a) - in[i + 3] * std::sin(a), 1e-5);
        EXPECT_NEAR(got[i + 3], in[i + 3] * std::cos(a) + in[i] * std::sin(a), 1e-5);
      }
      for (int64_t i = rot; i < d; ++i) EXPECT_EQ(got[i], in[i]) << "pass-through dim";
    }
  }
}

// A small paged-attention world: S sequences with given context and new-token
// counts, K/V written through KvWrite into scattered blocks.
struct AttnCase {
  int64_t nh = 4, nkv = 2, d = 16, bt = 4, num_blocks = 64;
  std::vector<float> k_cache, v_cache;
  CpuBackend* backend;

  explicit AttnCase(CpuBackend* b) : backend(b) {
    k_cache.assign(num_blocks * bt * nkv * d, 0.0f);
    v_cache = k_cache;
  }
  Tensor K() { return Tensor(k_cache.data(), DType::kF32, {num_blocks, bt, nkv, d}); }
  Tensor V() { return Tensor(v_cache.data(), DType::kF32, {num_blocks, bt, nkv, d}); }

  // Fills the cache of a sequence of `ctx` tokens whose blocks are `blocks`,
  // with keys/values drawn from `seed` (same seed → same content).
  void Fill(const std::vector<int32_t>& blocks, int64_t ctx, uint32_t seed) {
    auto k = Random(ctx * nkv * d, seed), v = Random(ctx * nkv * d, seed + 1);
    std::vector<int32_t> slots(ctx);
    for (int64_t p = 0; p < ctx; ++p) slots[p] = blocks[p / bt] * bt + p % bt;
    ASSERT_TRUE(backend->KvWrite(Tensor(k.data(), DType::kF32, {ctx, nkv, d}),
                                 Tensor(v.data(), DType::kF32, {ctx, nkv, d}),
                                 Tensor(slots.data(), DType::kI32, {ctx}), K(), V()).ok());
  }

  // Attention for sequences (blocks, ctx, n_new, q seed) in one batch.
  struct Seq {
    std::vector<int32_t> blocks;
    int32_t ctx;
    int32_t n_new;
    uint32_t seed;
  };
  std::vector<float> Run(const std::vector<Seq>& seqs) {
    std::vector<int32_t> qs = {0}, ctx, table;
    int64_t width = 0;
    for (const Seq& s : seqs) width = std::max<int64_t>(width, s.blocks.size());
    std::vector<float> q;
    for (const Seq& s : seqs) {
      qs.push_back(qs.back() + s.n_new);
      ctx.push_back(s.ctx);
      auto qs_vals = Random(s.n_new * nh * d, s.seed);
      q.insert(q.end(), qs_vals.begin(), qs_vals.end());
      for (int64_t b = 0; b < width; ++b) {
        table.push_back(b < static_cast<int64_t>(s.blocks.size()) ? s.blocks[b] : 0);
      }
    }
    const int64_t t = qs.back(), ns = seqs.size();
    std::vector<float> out(t * nh * d);
    AttentionBatch batch{.query_start = Tensor(qs.data(), DType::kI32, {ns + 1}),
                         .context_len = Tensor(ctx.data(), DType::kI32, {ns}),
                         .block_table = Tensor(table.data(), DType::kI32, {ns, width}),
                         .num_seqs = ns,
                         .max_context_len = 0};
    absl::Status st = backend->PagedAttention(Tensor(q.data(), DType::kF32, {t, nh, d}), K(),
                                              V(), batch, 0.25f,
                                              Tensor(out.data(), DType::kF32, {t, nh, d}));
    EXPECT_TRUE(st.ok()) << st;
    return out;
  }
};

TEST_F(CpuBackendTest, PagedAttentionMatchesDenseCausalReference) {
  AttnCase c(&backend_);
  const std::vector<int32_t> blocks = {7, 2, 30, 11};  // scattered on purpose
  const int64_t ctx = 14, n_new = 5;
  c.Fill(blocks, ctx, 42);
  auto out = c.Run({{blocks, ctx, n_new, 99}});
  auto k = Random(ctx * c.nkv * c.d, 42), v = Random(ctx * c.nkv * c.d, 43);
  auto q = Random(n_new * c.nh * c.d, 99);
  for (int64_t j = 0; j < n_new; ++j) {
    const int64_t pos = ctx - n_new + j;
    for (int64_t h = 0; h < c.nh; ++h) {
      const int64_t kvh = h / (c.nh / c.nkv);
      std::vector<double> w(pos + 1);
      double mx = -1e30, sum = 0;
      for (int64_t p = 0; p <= pos; ++p) {
        double dot = 0;
        for (int64_t i = 0; i < c.d; ++i) {
          dot += double(q[(j * c.nh + h) * c.d + i]) * k[(p * c.nkv + kvh) * c.d + i];
        }
        w[p] = dot * 0.25;
        mx = std::max(mx, w[p]);
      }
      for (auto& x : w) sum += (x = std::exp(x - mx));
      for (int64_t i = 0; i < c.d; ++i) {
        double ref = 0;
        for (int64_t p = 0; p <= pos; ++p) ref += w[p] / sum * v[(p * c.nkv + kvh) * c.d + i];
        EXPECT_NEAR(out[(j * c.nh + h) * c.d + i], ref, 1e-5);
      }
    }
  }
}

TEST_F(CpuBackendTest, PagedAttentionIsBatchInvariant) {
  AttnCase c(&backend_);
  std::vector<AttnCase::Seq> seqs = {
      {{0, 1, 2}, 9, 9, 1},      // whole prefill
      {{5}, 1, 1, 2},            // first token
      {{8, 9, 10, 11}, 13, 1, 3},  // decode
      {{20, 21}, 8, 3, 4},       // chunk
  };
  for (size_t i = 0; i < seqs.size(); ++i) c.Fill(seqs[i].blocks, seqs[i].ctx, 50 + i);
  auto batched = c.Run(seqs);
  int64_t offset = 0;
  for (const auto& s : seqs) {
    auto alone = c.Run({s});
    ASSERT_EQ(0, std::memcmp(alone.data(), &batched[offset], alone.size() * sizeof(float)))
        << "sequence with seed " << s.seed;
    offset += alone.size();
  }
}

TEST_F(CpuBackendTest, PagedAttentionRejectsBlockOutOfRange) {
  AttnCase c(&backend_);
  std::vector<int32_t> qs = {0, 1}, ctx = {5}, table = {0, 64};
  std::vector<float> q(c.nh * c.d), out(c.nh * c.d);
  AttentionBatch batch{.query_start = Tensor(qs.data(), DType::kI32, {2}),
                       .context_len = Tensor(ctx.data(), DType::kI32, {1}),
                       .block_table = Tensor(table.data(), DType::kI32, {1, 2}),
                       .num_seqs = 1,
                       .max_context_len = 5};
  EXPECT_EQ(backend_.PagedAttention(Tensor(q.data(), DType::kF32, {1, c.nh, c.d}), c.K(),
                                    c.V(), batch, 1.0f,
                                    Tensor(out.data(), DType::kF32, {1, c.nh, c.d})).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CpuBackendTest, KvWriteRejectsSlotOutOfRange) {
  AttnCase c(&backend_);
  std::vector<float> k(c.nkv * c.d), v(c.nkv * c.d);
  std::vector<int32_t> slots = {static_cast<int32_t>(c.num_blocks * c.bt)};
  EXPECT_EQ(backend_.KvWrite(Tensor(k.data(), DType::kF32, {1, c.nkv, c.d}),
                             Tensor(v.data(), DType::kF32, {1, c.nkv, c.d}),
                             Tensor(slots.data(), DType::kI32, {1}), c.K(), c.V()).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CpuBackendTest, GatherRowsPicksRows) {
  auto x = Random(6 * 3, 12);
  std::vector<int32_t> rows = {5, 0};
  std::vector<float> out(2 * 3);
  ASSERT_TRUE(backend_.GatherRows(T2(x, 6, 3), Tensor(rows.data(), DType::kI32, {2}),
                                  T2(out, 2, 3)).ok());
  EXPECT_EQ(0, std::memcmp(&out[0], &x[15], 12));
  EXPECT_EQ(0, std::memcmp(&out[3], &x[0], 12));
}

}  // namespace
}  // namespace hybridserve::engine
