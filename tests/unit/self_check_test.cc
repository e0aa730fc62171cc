// Start-up self-checks (engine/runtime/self_check.h): pass on the CPU backend,
// and fail, with a message that names the op, the shape and the element, on a
// backend whose GEMM is wrong by one element.
#include "engine/runtime/self_check.h"

#include <cstdio>
#include <string>

#include "engine/backend/cpu/cpu_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hybridserve::engine {
namespace {

using ::testing::HasSubstr;

// A CPU backend whose Gemm result is off by `delta` at one element (row
// `row`, column `col`) of every call large enough to hold it; every other op
// is the CPU backend's. (CpuBackend is final, so this wraps one.) Buffers are
// allocated by, and freed through, the wrapped backend.
class WrongGemmBackend final : public Backend {
 public:
  WrongGemmBackend(int64_t row, int64_t col, float delta)
      : cpu_(CpuBackendOptions{.num_threads = 1}), row_(row), col_(col), delta_(delta) {}

  std::string_view name() const override { return "cpu-wrong-gemm"; }
  DType act_dtype() const override { return cpu_.act_dtype(); }
  absl::StatusOr<DeviceBuffer> Allocate(size_t num_bytes, std::string_view pool) override {
    return cpu_.Allocate(num_bytes, pool);
  }
  absl::Status CopyToDevice(const void* src, void* dst, size_t n) override {
    return cpu_.CopyToDevice(src, dst, n);
  }
  absl::Status CopyToHost(const void* src, void* dst, size_t n) override {
    return cpu_.CopyToHost(src, dst, n);
  }
  absl::Status Zero(const Tensor& t) override { return cpu_.Zero(t); }
  absl::Status Synchronize() override { return cpu_.Synchronize(); }
  absl::Status FillUniform(const Tensor& t, uint64_t seed, float lo, float hi) override {
    return cpu_.FillUniform(t, seed, lo, hi);
  }
  absl::Status Gemm(const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Tensor& y) override {
    absl::Status st = cpu_.Gemm(x, w, bias, y);
    if (st.ok() && y.dim(0) > row_ && y.dim(1) > col_) {
      y.as<float>()[row_ * y.dim(1) + col_] += delta_;
      ++perturbed_calls_;
    }
    return st;
  }
  absl::Status Embedding(const Tensor& ids, const Tensor& table, const Tensor& out) override {
    return cpu_.Embedding(ids, table, out);
  }
  absl::Status RmsNorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) override {
    return cpu_.RmsNorm(x, w, eps, out);
  }
  absl::Status AddRmsNorm(const Tensor& residual, const Tensor& x, const Tensor& w, float eps,
                          const Tensor& out) override {
    return cpu_.AddRmsNorm(residual, x, w, eps, out);
  }
  absl::Status Rope(const Tensor& q, const Tensor& k, const Tensor& positions,
                    const RopeParams& rope) override {
    return cpu_.Rope(q, k, positions, rope);
  }
  absl::Status KvWrite(const Tensor& k, const Tensor& v, const Tensor& slot_mapping,
                       const Tensor& k_cache, const Tensor& v_cache) override {
    return cpu_.KvWrite(k, v, slot_mapping, k_cache, v_cache);
  }
  absl::Status PagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                              const AttentionBatch& batch, float scale,
                              const Tensor& out) override {
    return cpu_.PagedAttention(q, k_cache, v_cache, batch, scale, out);
  }
  absl::Status SiluMul(const Tensor& gate_up, const Tensor& out) override {
    return cpu_.SiluMul(gate_up, out);
  }
  absl::Status GatherRows(const Tensor& x, const Tensor& rows, const Tensor& out) override {
    return cpu_.GatherRows(x, rows, out);
  }
  absl::Status CausalConv1d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                            const Tensor& conv_state, const SsmBatch& batch, bool silu,
                            const Tensor& out) override {
    return cpu_.CausalConv1d(x, weight, bias, conv_state, batch, silu, out);
  }
  absl::Status Mamba2Scan(const Tensor& xbc, const Tensor& dt, const Tensor& a_log,
                          const Tensor& dt_bias, const Tensor& d, const Tensor& ssm_state,
                          const SsmBatch& batch, const Mamba2ScanParams& params,
                          const Tensor& y) override {
    return cpu_.Mamba2Scan(xbc, dt, a_log, dt_bias, d, ssm_state, batch, params, y);
  }
  absl::Status Mamba1Scan(const Tensor& x, const Tensor& dt, const Tensor& bc, const Tensor& z,
                          const Tensor& a_log, const Tensor& dt_bias, const Tensor& d,
                          const Tensor& ssm_state, const SsmBatch& batch,
                          const Tensor& y) override {
    return cpu_.Mamba1Scan(x, dt, bc, z, a_log, dt_bias, d, ssm_state, batch, y);
  }
  absl::Status GatedRmsNorm(const Tensor& x, const Tensor& z, const Tensor& w,
                            int64_t group_size, float eps, const Tensor& out) override {
    return cpu_.GatedRmsNorm(x, z, w, group_size, eps, out);
  }

  int perturbed_calls() const { return perturbed_calls_; }

 protected:
  // Never called: every DeviceBuffer handed out belongs to cpu_.
  void Free(void*, size_t) override {}

 private:
  CpuBackend cpu_;
  const int64_t row_;
  const int64_t col_;
  const float delta_;
  int perturbed_calls_ = 0;
};

TEST(SelfCheckTest, PassesOnTheCpuBackend) {
  CpuBackend backend(CpuBackendOptions{.num_threads = 2});
  EXPECT_TRUE(RunSelfChecks(&backend).ok());
}

TEST(SelfCheckTest, PassesOnTheCpuBackendForOtherSeeds) {
  CpuBackend backend(CpuBackendOptions{.num_threads = 1});
  for (uint64_t seed : {1u, 2u, 3u}) {
    SelfCheckOptions options;
    options.seed = seed;
    absl::Status st = RunSelfChecks(&backend, options);
    EXPECT_TRUE(st.ok()) << "seed " << seed << ": " << st;
  }
}

TEST(SelfCheckTest, DefaultShapesIncludeOddSizesAndOneRow) {
  bool one_row = false, odd = false, bias = false;
  for (const GemmCheckShape& s : DefaultGemmCheckShapes()) {
    one_row |= s.t == 1;
    odd |= (s.n % 2 == 1) && (s.k % 2 == 1);
    bias |= s.bias;
  }
  EXPECT_TRUE(one_row);
  EXPECT_TRUE(odd);
  EXPECT_TRUE(bias);
}

TEST(SelfCheckTest, FailsWithAMessageWhenOneElementIsWrong) {
  WrongGemmBackend backend(/*row=*/2, /*col=*/5, /*delta=*/0.5f);
  absl::Status st = RunSelfChecks(&backend);
  ASSERT_FALSE(st.ok());
  std::printf("self-check message: %s\n", std::string(st.message()).c_str());
  EXPECT_GT(backend.perturbed_calls(), 0);
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(st.message()), HasSubstr("self-check failed"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("Gemm on backend 'cpu-wrong-gemm'"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("y[2, 5]"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("tolerance"));
}

TEST(SelfCheckTest, CatchesASmallErrorInTheLastShapeOnly) {
  // The error only exists at a row only the largest default shapes have; the
  // check must look at every element, not a sample.
  WrongGemmBackend backend(/*row=*/129, /*col=*/256, /*delta=*/0.05f);
  absl::Status st = RunSelfChecks(&backend);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("y[129, 256]"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("T=130 N=257 K=300"));
}

TEST(SelfCheckTest, ToleratesRoundingSizedErrors) {
  // An error the size of float rounding is not a miscompute.
  WrongGemmBackend backend(/*row=*/0, /*col=*/0, /*delta=*/1e-7f);
  absl::Status st = RunSelfChecks(&backend);
  EXPECT_TRUE(st.ok()) << st;
}

}  // namespace
}  // namespace hybridserve::engine
