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
// is the CPU backend's.
class WrongGemmBackend final : public CpuBackend {
 public:
  WrongGemmBackend(int64_t row, int64_t col, float delta)
      : CpuBackend(CpuBackendOptions{.num_threads = 1}), row_(row), col_(col), delta_(delta) {}

  std::string_view name() const override { return "cpu-wrong-gemm"; }
  absl::Status Gemm(const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Tensor& y) override {
    absl::Status st = CpuBackend::Gemm(x, w, bias, y);
    if (st.ok() && y.dim(0) > row_ && y.dim(1) > col_) {
      y.as<float>()[row_ * y.dim(1) + col_] += delta_;
      ++perturbed_calls_;
    }
    return st;
  }
  int perturbed_calls() const { return perturbed_calls_; }

 private:
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
