// The CUDA backend's dense ops (everything of backend.h but the SSM ops) against
// their CPU twins on the same seeded random inputs, for act dtypes f32 and bf16
// (DESIGN.md section 7, class (c)): |gpu - ref| <= atol + rtol * |ref|. For bf16
// the inputs are rounded to bf16 first and the CPU op runs on those values in
// f32, so the difference is the GPU's own rounding (bf16 outputs, bf16 operands
// of tensor-core products) and nothing else. Outputs start as NaN on the GPU,
// so an element a kernel does not write fails.
//
// Tolerances (atol, rtol), for outputs of order 1:
//   copies (Embedding, GatherRows, KvWrite, Zero, FillUniform): exact
//   (bitwise) in both dtypes
//   Gemm:                f32 (1e-4, 1e-4)   bf16 (2e-2, 2e-2)
//   RmsNorm, AddRmsNorm, GatedAct (silu, gelu tanh, relu²), Rope:
//                        f32 (1e-5, 1e-4)   bf16 (1e-2, 1e-2)
//   PagedAttention:      f32 (1e-4, 1e-4)   bf16 (2e-2, 2e-2)
// f32 GEMMs must not use TF32 (that alone would miss 1e-4).
//
// Shapes: Bamba-9B / Llama-3-8B sizes (hidden 4096, 32 heads / 8 KV heads of
// 128, MLP 14336, vocabulary rows 128256 for the LM head), odd sizes, the
// fixtures' tiny heads, and ragged batches mixing prefill and decode with
// shuffled block tables.
#include <algorithm>
#include <cmath>
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

using engine::AttentionBatch;
using engine::DType;
using engine::RopeParams;
using engine::Tensor;

std::vector<float> Zeros(int64_t n) { return std::vector<float>(n, 0.0f); }

class DenseOpsParityTest : public BackendParityTest {};

TEST_P(DenseOpsParityTest, Gemm) {
  struct Case {
    int64_t t, n, k;
    bool bias;
  };
  const Case cases[] = {
      {1, 4096, 4096, false},     // decode, o_proj
      {7, 6144, 4096, false},     // fused qkv, 32 + 2 x 8 heads of 128
      {37, 333, 129, true},       // odd everything, with bias
      {300, 1000, 4096, true},
      {128, 16768, 4096, false},  // Bamba in_proj at batch 128
      {513, 4096, 14336, false},  // down_proj, odd rows
      {1, 128256, 4096, false},   // LM head of one row
      {5, 24, 64, false},         // fixture-sized
  };
  uint32_t seed = 100;
  for (const Case& c : cases) {
    const std::string tag = absl::StrCat("gemm_T", c.t, "_N", c.n, "_K", c.k, c.bias ? "_bias" : "");
    SCOPED_TRACE(tag);
    const float a = 1.0f / std::sqrt(static_cast<float>(c.k));
    HostTensor x = In(RandomNormal(c.t * c.k, ++seed), {c.t, c.k});
    HostTensor w = In(RandomUniform(c.n * c.k, ++seed, -a, a), {c.n, c.k});
    HostTensor bias = In(RandomNormal(c.n, ++seed, 0.1f), {c.n});
    HostTensor ref(Zeros(c.t * c.n), {c.t, c.n});
    ASSERT_TRUE(cpu_.Gemm(x.HostView(), w.HostView(), c.bias ? bias.HostView() : Tensor(),
                          ref.HostView()).ok());
    HS_GPU_ASSIGN(DeviceTensor dx, Dev(x));
    HS_GPU_ASSIGN(DeviceTensor dw, Dev(w));
    HS_GPU_ASSIGN(DeviceTensor db, Dev(bias));
    HS_GPU_ASSIGN(DeviceTensor dy, Dev(Poison({c.t, c.n})));
    absl::Status st = gpu_->Gemm(dx.view, dw.view, c.bias ? db.view : Tensor(), dy.view);
    ASSERT_TRUE(st.ok()) << st;
    HS_GPU_ASSIGN(std::vector<float> got, Get(dy));
    FailureDump dump(tag);
    dump.Add("x", x);
    dump.Add("w", w);
    if (c.bias) dump.Add("bias", bias);
    dump.Check("y", got, ref.values(), {c.t, c.n}, Tol({1e-4, 1e-4}, {2e-2, 2e-2}));
  }
}

TEST_P(DenseOpsParityTest, EmbeddingAndGatherRows) {
  struct Case {
    int64_t vocab, hidden, t;
  };
  uint32_t seed = 200;
  for (const Case& c : {Case{5000, 4096, 300}, Case{1000, 333, 37}, Case{256, 64, 1}}) {
    const std::string tag = absl::StrCat("embed_V", c.vocab, "_H", c.hidden, "_T", c.t);
    SCOPED_TRACE(tag);
    HostTensor table = In(RandomNormal(c.vocab * c.hidden, ++seed), {c.vocab, c.hidden});
    std::vector<int32_t> ids(c.t);
    std::mt19937 gen(++seed);
    for (auto& id : ids) id = static_cast<int32_t>(gen() % c.vocab);
    ids[0] = static_cast<int32_t>(c.vocab - 1);  // the last row too
    if (c.t > 1) ids[1] = 0;
    HostTensor hid(ids, {c.t});
    HostTensor ref(Zeros(c.t * c.hidden), {c.t, c.hidden});
    ASSERT_TRUE(cpu_.Embedding(hid.HostView(), table.HostView(), ref.HostView()).ok());
    HS_GPU_ASSIGN(DeviceTensor dtable, Dev(table));
    HS_GPU_ASSIGN(DeviceTensor dids, Dev(hid));
    HS_GPU_ASSIGN(DeviceTensor dout, Dev(Poison({c.t, c.hidden})));
    absl::Status st = gpu_->Embedding(dids.view, dtable.view, dout.view);
    ASSERT_TRUE(st.ok()) << st;
    HS_GPU_ASSIGN(std::vector<float> got, Get(dout));
    FailureDump dump(tag);
    dump.Add("ids", hid);
    dump.Check("embedding", got, ref.values(), {c.t, c.hidden}, {0.0, 0.0});

    // GatherRows: some rows of the embedding output, with repeats.
    const int64_t r = std::max<int64_t>(1, c.t / 3);
    std::vector<int32_t> rows(r);
    for (auto& x : rows) x = static_cast<int32_t>(gen() % c.t);
    rows.back() = static_cast<int32_t>(c.t - 1);
    HostTensor hrows(rows, {r});
    HostTensor gref(Zeros(r * c.hidden), {r, c.hidden});
    ASSERT_TRUE(cpu_.GatherRows(ref.HostView(), hrows.HostView(), gref.HostView()).ok());
    HS_GPU_ASSIGN(DeviceTensor drows, Dev(hrows));
    HS_GPU_ASSIGN(DeviceTensor dg, Dev(Poison({r, c.hidden})));
    st = gpu_->GatherRows(dout.view, drows.view, dg.view);
    ASSERT_TRUE(st.ok()) << st;
    HS_GPU_ASSIGN(std::vector<float> gathered, Get(dg));
    dump.Add("rows", hrows);
    dump.Check("gather_rows", gathered, gref.values(), {r, c.hidden}, {0.0, 0.0});
  }
}

TEST_P(DenseOpsParityTest, RmsNormAndAddRmsNorm) {
  uint32_t seed = 300;
  const Tolerance tol = Tol({1e-5, 1e-4}, {1e-2, 1e-2});
  for (int64_t t : {1, 37, 300}) {
    for (int64_t h : {4096, 333, 64}) {
      const std::string tag = absl::StrCat("rmsnorm_T", t, "_H", h);
      SCOPED_TRACE(tag);
      HostTensor x = In(RandomNormal(t * h, ++seed, 2.0f), {t, h});
      HostTensor w = In(RandomUniform(h, ++seed, 0.5f, 1.5f), {h});
      HostTensor res = In(RandomNormal(t * h, ++seed), {t, h});
      const float eps = 1e-5f;
      FailureDump dump(tag);
      dump.Add("x", x);
      dump.Add("w", w);
      dump.Add("residual", res);

      HostTensor ref(Zeros(t * h), {t, h});
      ASSERT_TRUE(cpu_.RmsNorm(x.HostView(), w.HostView(), eps, ref.HostView()).ok());
      HS_GPU_ASSIGN(DeviceTensor dx, Dev(x));
      HS_GPU_ASSIGN(DeviceTensor dw, Dev(w));
      HS_GPU_ASSIGN(DeviceTensor dout, Dev(Poison({t, h})));
      absl::Status st = gpu_->RmsNorm(dx.view, dw.view, eps, dout.view);
      ASSERT_TRUE(st.ok()) << st;
      HS_GPU_ASSIGN(std::vector<float> got, Get(dout));
      dump.Check("rmsnorm", got, ref.values(), {t, h}, tol);
      // In place (out aliases x).
      st = gpu_->RmsNorm(dx.view, dw.view, eps, dx.view);
      ASSERT_TRUE(st.ok()) << st;
      HS_GPU_ASSIGN(std::vector<float> inplace, Get(dx));
      dump.Check("rmsnorm_in_place", inplace, ref.values(), {t, h}, tol);

      // AddRmsNorm: residual += x, out = RmsNorm(residual); out aliases x.
      HostTensor res_ref = res, out_ref = x;
      ASSERT_TRUE(cpu_.AddRmsNorm(res_ref.HostView(), x.HostView(), w.HostView(), eps,
                                  out_ref.HostView()).ok());
      HS_GPU_ASSIGN(DeviceTensor dx2, Dev(x));
      HS_GPU_ASSIGN(DeviceTensor dres, Dev(res));
      st = gpu_->AddRmsNorm(dres.view, dx2.view, dw.view, eps, dx2.view);
      ASSERT_TRUE(st.ok()) << st;
      HS_GPU_ASSIGN(std::vector<float> got_res, Get(dres));
      HS_GPU_ASSIGN(std::vector<float> got_out, Get(dx2));
      dump.Check("add_rmsnorm_residual", got_res, res_ref.values(), {t, h}, tol);
      dump.Check("add_rmsnorm_out", got_out, out_ref.values(), {t, h}, tol);
    }
  }
}

TEST_P(DenseOpsParityTest, GatedAct) {
  uint32_t seed = 400;
  for (auto [t, i] : {std::pair<int64_t, int64_t>{37, 14336}, {1, 14336}, {300, 333}, {3, 128}}) {
    for (engine::Activation act : {engine::Activation::kSilu, engine::Activation::kGeluTanh,
                                   engine::Activation::kRelu2}) {
      const std::string tag = absl::StrCat("gatedact", static_cast<int>(act), "_T", t, "_I", i);
      SCOPED_TRACE(tag);
      HostTensor gu = In(RandomNormal(t * 2 * i, ++seed, 3.0f), {t, 2 * i});
      HostTensor ref(Zeros(t * i), {t, i});
      ASSERT_TRUE(cpu_.GatedAct(gu.HostView(), act, ref.HostView()).ok());
      HS_GPU_ASSIGN(DeviceTensor dgu, Dev(gu));
      HS_GPU_ASSIGN(DeviceTensor dout, Dev(Poison({t, i})));
      absl::Status st = gpu_->GatedAct(dgu.view, act, dout.view);
      ASSERT_TRUE(st.ok()) << st;
      HS_GPU_ASSIGN(std::vector<float> got, Get(dout));
      FailureDump dump(tag);
      dump.Add("gate_up", gu);
      dump.Check("gated_act", got, ref.values(), {t, i}, Tol({1e-5, 1e-4}, {1e-2, 1e-2}));
    }
  }
}

TEST_P(DenseOpsParityTest, RopeFullAndPartial) {
  struct Case {
    int64_t t, heads, kv_heads, head_dim, rotary_dim;
    double theta;
    float scaling;
  };
  const Case cases[] = {
      {339, 32, 8, 128, 64, 10000.0, 1.0f},    // Bamba-9B: 64 of 128 dims
      {339, 32, 8, 128, 128, 500000.0, 1.0f},  // Llama-3-8B
      {17, 6, 2, 64, 32, 10000.0, 0.87f},      // odd heads, partial, scaled
      {5, 4, 1, 16, 16, 10000.0, 1.0f},        // fixture-sized
  };
  uint32_t seed = 500;
  for (const Case& c : cases) {
    const std::string tag = absl::StrCat("rope_T", c.t, "_H", c.heads, "_KV", c.kv_heads, "_D",
                                         c.head_dim, "_R", c.rotary_dim);
    SCOPED_TRACE(tag);
    HostTensor q = In(RandomNormal(c.t * c.heads * c.head_dim, ++seed), {c.t, c.heads, c.head_dim});
    HostTensor k = In(RandomNormal(c.t * c.kv_heads * c.head_dim, ++seed),
                      {c.t, c.kv_heads, c.head_dim});
    std::vector<int32_t> pos(c.t);
    std::mt19937 gen(++seed);
    for (auto& p : pos) p = static_cast<int32_t>(gen() % 8192);
    pos[0] = 0;
    if (c.t > 1) pos[1] = 8191;
    const int64_t half = c.rotary_dim / 2;
    std::vector<float> inv(half);
    for (int64_t i = 0; i < half; ++i) {
      inv[i] = static_cast<float>(1.0 / std::pow(c.theta, double(2 * i) / double(c.rotary_dim)));
    }
    HostTensor hpos(pos, {c.t}), hinv(inv, {half});
    HostTensor q_ref = q, k_ref = k;
    RopeParams cpu_rope{.inv_freq = hinv.HostView(), .rotary_dim = c.rotary_dim,
                        .attention_scaling = c.scaling};
    ASSERT_TRUE(cpu_.Rope(q_ref.HostView(), k_ref.HostView(), hpos.HostView(), cpu_rope).ok());
    HS_GPU_ASSIGN(DeviceTensor dq, Dev(q));
    HS_GPU_ASSIGN(DeviceTensor dk, Dev(k));
    HS_GPU_ASSIGN(DeviceTensor dpos, Dev(hpos));
    HS_GPU_ASSIGN(DeviceTensor dinv, DevF32(hinv));
    RopeParams gpu_rope{.inv_freq = dinv.view, .rotary_dim = c.rotary_dim,
                        .attention_scaling = c.scaling};
    absl::Status st = gpu_->Rope(dq.view, dk.view, dpos.view, gpu_rope);
    ASSERT_TRUE(st.ok()) << st;
    HS_GPU_ASSIGN(std::vector<float> got_q, Get(dq));
    HS_GPU_ASSIGN(std::vector<float> got_k, Get(dk));
    FailureDump dump(tag);
    dump.Add("q", q);
    dump.Add("k", k);
    dump.Add("positions", hpos);
    dump.Add("inv_freq", hinv);
    const Tolerance tol = Tol({1e-5, 1e-4}, {1e-2, 1e-2});
    dump.Check("q", got_q, q_ref.values(), {c.t, c.heads, c.head_dim}, tol);
    dump.Check("k", got_k, k_ref.values(), {c.t, c.kv_heads, c.head_dim}, tol);
  }
}

// Copies both ways and Zero on a sub-view (rows 3..9 of 13): the rest of the
// buffer must stay as it was.
TEST_P(DenseOpsParityTest, CopiesAndZeroOfRows) {
  for (int64_t cols : {33, 4096}) {
    const std::string tag = absl::StrCat("zero_rows_13x", cols);
    SCOPED_TRACE(tag);
    HostTensor x = In(RandomNormal(13 * cols, 600 + cols), {13, cols});
    HS_GPU_ASSIGN(DeviceTensor dx, Dev(x));
    HS_GPU_ASSIGN(std::vector<float> round_trip, Get(dx));
    FailureDump dump(tag);
    dump.Check("round_trip", round_trip, x.values(), {13, cols}, {0.0, 0.0});
    HostTensor ref = x;
    ASSERT_TRUE(cpu_.Zero(ref.HostView().Rows(3, 7)).ok());
    absl::Status st = gpu_->Zero(dx.view.Rows(3, 7));
    ASSERT_TRUE(st.ok()) << st;
    HS_GPU_ASSIGN(std::vector<float> got, Get(dx));
    dump.Check("zero_rows", got, ref.values(), {13, cols}, {0.0, 0.0});
  }
}

// FillUniform promises the same bits on every backend (random-weight models
// are identical on the CPU and the GPU).
TEST_P(DenseOpsParityTest, FillUniformIsBitwiseEqual) {
  struct Case {
    int64_t rows, cols;
    uint64_t seed;
    float lo, hi;
  };
  for (const Case& c : {Case{1000, 333, 1, -1.0f, 1.0f}, Case{4096, 4096, 1234, -0.02f, 0.02f},
                        Case{1, 7, 99, 0.5f, 1.5f}}) {
    const std::string tag = absl::StrCat("fill_", c.rows, "x", c.cols, "_seed", c.seed);
    SCOPED_TRACE(tag);
    const int64_t n = c.rows * c.cols;
    std::vector<float> ref(n);
    if (act() == DType::kF32) {
      ASSERT_TRUE(cpu_.FillUniform(Tensor(ref.data(), DType::kF32, {c.rows, c.cols}), c.seed,
                                   c.lo, c.hi).ok());
    } else {
      std::vector<uint16_t> raw(n);
      ASSERT_TRUE(cpu_.FillUniform(Tensor(raw.data(), act(), {c.rows, c.cols}), c.seed, c.lo,
                                   c.hi).ok());
      engine::ConvertFloats(raw.data(), act(), ref.data(), DType::kF32, n);
    }
    HS_GPU_ASSIGN(DeviceTensor dt, Dev(Poison({c.rows, c.cols})));
    absl::Status st = gpu_->FillUniform(dt.view, c.seed, c.lo, c.hi);
    ASSERT_TRUE(st.ok()) << st;
    HS_GPU_ASSIGN(std::vector<float> got, Get(dt));
    FailureDump dump(tag);
    dump.Check("fill_uniform", got, ref, {c.rows, c.cols}, {0.0, 0.0});
  }
}

// ---- KvWrite + PagedAttention over a ragged batch

struct AttnCase {
  std::string name;
  int64_t heads, kv_heads, head_dim, block_tokens;
  // Per sequence: new tokens this step and tokens in the cache after it.
  std::vector<std::pair<int64_t, int64_t>> seqs;
  float q_scale = 1.0f;
};

// The KV caches start as a poison value (300) everywhere; the cached prefix
// of each sequence is random, the new tokens are written by KvWrite. A kernel
// that reads a position beyond a context, or an entry of the block table past
// a sequence's last block (they name a spare block), sees the poison.
constexpr float kKvPoison = 300.0f;

class AttentionParityTest : public BackendParityTest {
 protected:
  void Run(const AttnCase& c, uint32_t seed);
};

void AttentionParityTest::Run(const AttnCase& c, uint32_t seed) {
  const int64_t s_count = static_cast<int64_t>(c.seqs.size());
  const int64_t hd = c.head_dim, kvh = c.kv_heads, bt = c.block_tokens;
  int64_t t_total = 0, total_blocks = 0, width = 0, max_ctx = 0, max_q = 0;
  for (auto [n, ctx] : c.seqs) {
    ASSERT_LE(n, ctx);
    t_total += n;
    const int64_t need = (ctx + bt - 1) / bt;
    total_blocks += need;
    width = std::max(width, need + 1);  // one spare column past the longest
    max_ctx = std::max(max_ctx, ctx);
    max_q = std::max(max_q, n);
  }
  const int64_t num_blocks = total_blocks + 3;
  std::vector<int32_t> ids(num_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937 gen(seed);
  std::shuffle(ids.begin(), ids.end(), gen);
  const int32_t spare = ids[num_blocks - 1];
  std::vector<int32_t> table(s_count * width, spare), query_start(s_count + 1, 0),
      context_len(s_count), slot_mapping;
  const int64_t row = kvh * hd;
  std::vector<float> k_cache(num_blocks * bt * row, kKvPoison), v_cache = k_cache;
  std::vector<float> cached_k = RandomNormal(num_blocks * bt * row, seed + 1);
  std::vector<float> cached_v = RandomNormal(num_blocks * bt * row, seed + 2);
  int64_t next = 0;
  for (int64_t s = 0; s < s_count; ++s) {
    auto [n, ctx] = c.seqs[s];
    const int64_t need = (ctx + bt - 1) / bt;
    for (int64_t b = 0; b < need; ++b) table[s * width + b] = ids[next++];
    query_start[s + 1] = static_cast<int32_t>(query_start[s] + n);
    context_len[s] = static_cast<int32_t>(ctx);
    for (int64_t p = 0; p < ctx; ++p) {
      const int64_t slot = int64_t{table[s * width + p / bt]} * bt + p % bt;
      if (p < ctx - n) {
        std::copy_n(&cached_k[slot * row], row, &k_cache[slot * row]);
        std::copy_n(&cached_v[slot * row], row, &v_cache[slot * row]);
      } else {
        slot_mapping.push_back(static_cast<int32_t>(slot));
      }
    }
  }
  const std::string tag = absl::StrCat("attn_", c.name);
  SCOPED_TRACE(tag);
  HostTensor q = In(RandomNormal(t_total * c.heads * hd, seed + 3, c.q_scale), {t_total, c.heads, hd});
  HostTensor k = In(RandomNormal(t_total * row, seed + 4), {t_total, kvh, hd});
  HostTensor v = In(RandomNormal(t_total * row, seed + 5), {t_total, kvh, hd});
  HostTensor kc = In(k_cache, {num_blocks, bt, kvh, hd});
  HostTensor vc = In(v_cache, {num_blocks, bt, kvh, hd});
  HostTensor hslots(slot_mapping, {t_total});
  HostTensor hqs(query_start, {s_count + 1}), hctx(context_len, {s_count}),
      htable(table, {s_count, width});
  FailureDump dump(tag);
  dump.Add("q", q);
  dump.Add("k_new", k);
  dump.Add("v_new", v);
  dump.Add("k_cache_before", kc);
  dump.Add("v_cache_before", vc);
  dump.Add("slot_mapping", hslots);
  dump.Add("query_start", hqs);
  dump.Add("context_len", hctx);
  dump.Add("block_table", htable);

  // CPU reference.
  HostTensor kc_ref = kc, vc_ref = vc, out_ref(Zeros(t_total * c.heads * hd), {t_total, c.heads, hd});
  ASSERT_TRUE(cpu_.KvWrite(k.HostView(), v.HostView(), hslots.HostView(), kc_ref.HostView(),
                           vc_ref.HostView()).ok());
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  AttentionBatch cpu_batch{.query_start = hqs.HostView(), .context_len = hctx.HostView(),
                           .block_table = htable.HostView(), .num_seqs = s_count,
                           .max_context_len = max_ctx, .max_query_len = max_q};
  absl::Status st = cpu_.PagedAttention(q.HostView(), kc_ref.HostView(), vc_ref.HostView(),
                                        cpu_batch, scale, out_ref.HostView());
  ASSERT_TRUE(st.ok()) << st;

  // GPU.
  HS_GPU_ASSIGN(DeviceTensor dq, Dev(q));
  HS_GPU_ASSIGN(DeviceTensor dk, Dev(k));
  HS_GPU_ASSIGN(DeviceTensor dv, Dev(v));
  HS_GPU_ASSIGN(DeviceTensor dkc, Dev(kc));
  HS_GPU_ASSIGN(DeviceTensor dvc, Dev(vc));
  HS_GPU_ASSIGN(DeviceTensor dslots, Dev(hslots));
  HS_GPU_ASSIGN(DeviceTensor dqs, Dev(hqs));
  HS_GPU_ASSIGN(DeviceTensor dctx, Dev(hctx));
  HS_GPU_ASSIGN(DeviceTensor dtable, Dev(htable));
  HS_GPU_ASSIGN(DeviceTensor dout, Dev(Poison({t_total, c.heads, hd})));
  st = gpu_->KvWrite(dk.view, dv.view, dslots.view, dkc.view, dvc.view);
  ASSERT_TRUE(st.ok()) << st;
  HS_GPU_ASSIGN(std::vector<float> got_kc, Get(dkc));
  HS_GPU_ASSIGN(std::vector<float> got_vc, Get(dvc));
  dump.Check("k_cache_after_kv_write", got_kc, kc_ref.values(), {num_blocks, bt, kvh, hd}, {0, 0});
  dump.Check("v_cache_after_kv_write", got_vc, vc_ref.values(), {num_blocks, bt, kvh, hd}, {0, 0});
  AttentionBatch gpu_batch{.query_start = dqs.view, .context_len = dctx.view,
                           .block_table = dtable.view, .num_seqs = s_count,
                           .max_context_len = max_ctx, .max_query_len = max_q};
  st = gpu_->PagedAttention(dq.view, dkc.view, dvc.view, gpu_batch, scale, dout.view);
  ASSERT_TRUE(st.ok()) << st;
  HS_GPU_ASSIGN(std::vector<float> got, Get(dout));
  dump.Check("attention_out", got, out_ref.values(), {t_total, c.heads, hd},
             Tol({1e-4, 1e-4}, {2e-2, 2e-2}));
}

TEST_P(AttentionParityTest, Bamba9bLayerRaggedPrefillAndDecode) {
  // 32 heads / 8 KV heads of 128; new tokens {1, 1, 37, 1, 300, 1}: decodes
  // at long and short contexts, a fresh prefill, a one-token prompt, a
  // chunked-prefill continuation, a decode past 4096.
  Run({.name = "bamba9b", .heads = 32, .kv_heads = 8, .head_dim = 128, .block_tokens = 16,
       .seqs = {{1, 1000}, {1, 17}, {37, 37}, {1, 1}, {300, 333}, {1, 4097}}},
      1000);
}

TEST_P(AttentionParityTest, LongDecodeBatch) {
  // Llama-3-8B decode at 8k context (split over the context in kernels that
  // split), with a sharp softmax.
  Run({.name = "decode8k", .heads = 32, .kv_heads = 8, .head_dim = 128, .block_tokens = 16,
       .seqs = {{1, 8192}, {1, 8000}, {1, 2049}, {1, 16}}, .q_scale = 3.0f},
      1100);
}

TEST_P(AttentionParityTest, OddShapes) {
  Run({.name = "odd_h6_kv2_d64_bt16", .heads = 6, .kv_heads = 2, .head_dim = 64,
       .block_tokens = 16, .seqs = {{5, 5}, {1, 2}, {64, 100}, {1, 33}, {129, 129}}, .q_scale = 3.0f},
      1200);
  Run({.name = "mqa_h4_kv1_d32_bt32", .heads = 4, .kv_heads = 1, .head_dim = 32,
       .block_tokens = 32, .seqs = {{3, 70}, {1, 1}, {31, 31}, {1, 1500}}},
      1300);
  Run({.name = "fixture_h8_kv2_d8_bt16", .heads = 8, .kv_heads = 2, .head_dim = 8,
       .block_tokens = 16, .seqs = {{7, 7}, {1, 20}, {2, 18}}},
      1400);
  Run({.name = "mha_h4_kv4_d16_bt16", .heads = 4, .kv_heads = 4, .head_dim = 16,
       .block_tokens = 16, .seqs = {{40, 40}, {1, 41}}},
      1500);
}

INSTANTIATE_TEST_SUITE_P(ActDtypes, DenseOpsParityTest,
                         ::testing::Values(DType::kF32, DType::kBF16), DTypeTestName);
INSTANTIATE_TEST_SUITE_P(ActDtypes, AttentionParityTest,
                         ::testing::Values(DType::kF32, DType::kBF16), DTypeTestName);

}  // namespace
}  // namespace hybridserve::gpu_testing
