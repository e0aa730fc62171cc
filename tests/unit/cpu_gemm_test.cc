// The CPU GEMM's contract (cpu_gemm.h): each output element is summed in one
// order fixed by K alone. Checked against a plain implementation of that order,
// on every instruction-set path this CPU has, for odd shapes; and a row's
// result checked bitwise against the same row in calls of other sizes, at
// other places, with 1 and 2 threads.
#include "engine/backend/cpu/cpu_gemm.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/random_values.h"

namespace hybridserve::engine {
namespace {

using testing::RandomNormal;

// The order the header specifies, written out element by element.
float SpecDot(const float* x, const float* w, int64_t k) {
  float lane[16] = {};
  for (int64_t k0 = 0; k0 < k; k0 += 16) {
    for (int l = 0; l < 16; ++l) {
      const bool in = k0 + l < k;
      lane[l] = std::fma(in ? x[k0 + l] : 0.0f, in ? w[k0 + l] : 0.0f, lane[l]);
    }
  }
  float a[8], b[4];
  for (int i = 0; i < 8; ++i) a[i] = lane[i] + lane[i + 8];
  for (int i = 0; i < 4; ++i) b[i] = a[i] + a[i + 4];
  return (b[0] + b[2]) + (b[1] + b[3]);
}

std::vector<CpuIsa> SupportedIsas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (CpuIsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

std::vector<float> Gemm(const std::vector<float>& x, const std::vector<float>& w,
                        const std::vector<float>* bias, int64_t t, int64_t n, int64_t k,
                        CpuIsa isa) {
  std::vector<float> y(t * n, NAN);
  GemmF32({.x = x.data(),
           .w = w.data(),
           .bias = bias != nullptr ? bias->data() : nullptr,
           .y = y.data(),
           .t = t,
           .n = n,
           .k = k},
          isa);
  return y;
}

TEST(CpuGemmTest, EveryPathFollowsTheSpecifiedOrderBitwise) {
  std::printf("[gemm] best path on this CPU: %s\n",
              std::string(CpuIsaName(BestCpuIsa())).c_str());
  struct Shape {
    int64_t t, n, k;
  };
  const Shape shapes[] = {{1, 1, 1},   {3, 5, 15},  {4, 4, 16},   {5, 9, 17},
                          {7, 3, 33},  {1, 33, 64}, {9, 13, 100}, {2, 70, 257},
                          {66, 6, 40}, {1, 1, 0}};
  for (CpuIsa isa : SupportedIsas()) {
    for (const Shape& s : shapes) {
      const auto x = RandomNormal(s.t * s.k, 1), w = RandomNormal(s.n * s.k, 2);
      const auto bias = RandomNormal(s.n, 3);
      for (bool with_bias : {false, true}) {
        const auto y = Gemm(x, w, with_bias ? &bias : nullptr, s.t, s.n, s.k, isa);
        for (int64_t r = 0; r < s.t; ++r) {
          for (int64_t j = 0; j < s.n; ++j) {
            // data() + offset: with K = 0 the vectors are empty.
            float want = SpecDot(x.data() + r * s.k, w.data() + j * s.k, s.k);
            if (with_bias) want += bias[j];
            ASSERT_EQ(0, std::memcmp(&y[r * s.n + j], &want, sizeof(float)))
                << CpuIsaName(isa) << " T=" << s.t << " N=" << s.n << " K=" << s.k
                << " bias=" << with_bias << " at (" << r << ", " << j << "): " << y[r * s.n + j]
                << " vs " << want;
          }
        }
      }
      if (s.t > 0 && s.n > 0) {
        const float dot = DotF32(x.data(), w.data(), s.k, isa);
        const float want = SpecDot(x.data(), w.data(), s.k);
        EXPECT_EQ(0, std::memcmp(&dot, &want, sizeof(float))) << CpuIsaName(isa);
      }
    }
  }
}

TEST(CpuGemmTest, StridedDotsFollowTheSpecifiedOrderBitwise) {
  // Keys 40 floats apart, dots over the first 37 (odd head sizes included).
  const int64_t stride = 40;
  for (CpuIsa isa : SupportedIsas()) {
    for (int64_t k : {1, 16, 37}) {
      for (int64_t count : {1, 5, 16, 23}) {
        const auto a = RandomNormal(k, 11), b = RandomNormal(count * stride, 12);
        std::vector<float> out(count, NAN);
        DotsF32(a.data(), b.data(), stride, count, k, out.data(), isa);
        for (int64_t c = 0; c < count; ++c) {
          const float want = SpecDot(a.data(), &b[c * stride], k);
          ASSERT_EQ(0, std::memcmp(&out[c], &want, sizeof(float)))
              << CpuIsaName(isa) << " k=" << k << " count=" << count << " at " << c;
        }
      }
    }
  }
}

TEST(CpuGemmTest, MatchesDoublePrecisionReference) {
  const int64_t t = 6, n = 37, k = 300;
  const auto x = RandomNormal(t * k, 4), w = RandomNormal(n * k, 5), bias = RandomNormal(n, 6);
  const auto y = Gemm(x, w, &bias, t, n, k, BestCpuIsa());
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      double ref = bias[j];
      for (int64_t i = 0; i < k; ++i) ref += double(x[r * k + i]) * w[j * k + i];
      EXPECT_NEAR(y[r * n + j], ref, 1e-4 * (1 + std::abs(ref)));
    }
  }
}

// A row alone vs the same row at random places in calls of 2..300 rows, large
// enough to run on several threads, with 1 and 2 threads: bitwise equal.
TEST(CpuGemmTest, RowsDoNotDependOnBatchPlaceOrThreads) {
  const std::pair<int64_t, int64_t> shapes[] = {{64, 64},  {64, 256},   {96, 32},
                                                {344, 128}, {768, 2048}, {2048, 768}};
  std::mt19937 gen(9);
  const int max_threads = omp_get_max_threads();
  for (auto [k, n] : shapes) {
    const auto w = RandomNormal(n * k, 7), row = RandomNormal(k, 8);
    const auto alone = Gemm(row, w, nullptr, 1, n, k, BestCpuIsa());
    for (int64_t t : {2, 3, 5, 16, 61, 300}) {
      auto x = RandomNormal(t * k, 100 + t);
      const int64_t at = std::uniform_int_distribution<int64_t>(0, t - 1)(gen);
      std::memcpy(&x[at * k], row.data(), k * sizeof(float));
      for (int threads : {1, 2}) {
        omp_set_num_threads(threads);
        const auto y = Gemm(x, w, nullptr, t, n, k, BestCpuIsa());
        EXPECT_EQ(0, std::memcmp(&y[at * n], alone.data(), n * sizeof(float)))
            << "K=" << k << " N=" << n << " T=" << t << " row " << at << ", " << threads
            << " threads";
      }
    }
  }
  omp_set_num_threads(max_threads);
}

}  // namespace
}  // namespace hybridserve::engine
