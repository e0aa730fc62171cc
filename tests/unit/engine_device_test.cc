// Device selection (--device auto | cpu | cuda), random weights made from a
// config.json alone (EngineOptions::random_weights_seed) and the seeded
// uniform fill behind them (Backend::FillUniform), on the CPU backend. On a
// machine without a usable GPU, auto must pick the CPU and say why, and cuda
// must fail with FailedPrecondition naming the reason.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cuda/cuda_backend.h"
#include "engine/checkpoint.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/plan_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"
#include "tools/lib/tiny_model.h"

namespace hybridserve::engine {
namespace {

using ::testing::HasSubstr;
using tools::TinyArchitecture;

// A tiny model folder of `architecture`; with `config_only`, every
// safetensors file is removed so that only config.json (and
// generation_config.json) remain.
std::filesystem::path WriteModel(TinyArchitecture architecture, bool config_only) {
  auto o = tools::TinyModelPreset(architecture, "tiny");
  EXPECT_TRUE(o.ok()) << o.status();
  o->seed = 3;
  const auto dir = testing::MakeTempDir() / "model";
  EXPECT_TRUE(tools::WriteTinyModel(*o, dir).ok());
  if (config_only) {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().filename().string().find("safetensors") != std::string::npos) {
        std::filesystem::remove(entry.path());
      }
    }
  }
  return dir;
}

EngineOptions Options(const std::filesystem::path& dir) {
  EngineOptions eo;
  eo.model_dir = dir;
  eo.device = "cpu";
  eo.num_threads = testing::TestCpuThreads();
  eo.kv_cache_bytes = 8 << 20;
  eo.max_num_tokens = 64;
  eo.max_num_seqs = 4;
  eo.max_model_len = 128;
  return eo;
}

TEST(EngineDeviceTest, AutoPicksTheCpuWithoutAGpuAndSaysWhy) {
  std::string why;
  const bool gpu = CudaDeviceAvailable(&why);
  EXPECT_FALSE(why.empty());
  EngineOptions eo = Options(WriteModel(TinyArchitecture::kLlama, false));
  eo.device = "auto";
  std::vector<std::string> log;
  eo.log = [&](const std::string& line) { log.push_back(line); };
  auto e = Engine::Create(eo);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->device_name(), gpu ? "cuda" : "cpu");
  const std::string expected =
      absl::StrCat("--device auto: using the ", gpu ? "GPU" : "CPU", " (", why, ")");
  EXPECT_THAT(log, ::testing::Contains(expected));
}

TEST(EngineDeviceTest, CudaWithoutAGpuIsFailedPreconditionWithTheReason) {
  std::string why;
  if (CudaDeviceAvailable(&why)) GTEST_SKIP() << "a GPU is usable here: " << why;
  EngineOptions eo = Options(WriteModel(TinyArchitecture::kLlama, false));
  eo.device = "cuda";
  auto e = Engine::Create(eo);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kFailedPrecondition) << e.status();
  EXPECT_THAT(e.status().message(), HasSubstr("--device cuda"));
  // The reason is the one CudaDeviceAvailable gives: a build without CUDA,
  // or (with CUDA) what the runtime says, e.g. an insufficient driver.
  EXPECT_THAT(e.status().message(), HasSubstr(why));

  auto backend = CreateCudaBackend({});
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(EngineDeviceTest, UnknownDeviceIsInvalidArgument) {
  EngineOptions eo = Options(WriteModel(TinyArchitecture::kLlama, false));
  eo.device = "tpu";
  auto e = Engine::Create(eo);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(e.status().message(), HasSubstr("--device must be auto, cpu or cuda"));
}

// The logits of a two-sequence step (a prefill and a second prompt) on an
// engine with random weights of `seed`.
std::vector<float> RandomModelLogits(const std::filesystem::path& dir, uint64_t seed) {
  EngineOptions eo = Options(dir);
  eo.random_weights_seed = seed;
  auto e = Engine::Create(eo);
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return {};
  PlanBuilder builder((*e)->memory_plan().num_blocks, (*e)->memory_plan().block_tokens,
                      (*e)->memory_plan().num_state_slots);
  std::vector<int32_t> a(19), b(5);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<int32_t>(i * 11 % 200);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<int32_t>(i * 29 % 200 + 1);
  auto plan = builder.Build({{.seq_id = 0, .tokens = a}, {.seq_id = 1, .tokens = b}});
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return {};
  StepOutput out;
  absl::Status st = (*e)->Step(*plan, &out);
  EXPECT_TRUE(st.ok()) << st;
  return out.logits;
}

class RandomWeightsTest : public ::testing::TestWithParam<TinyArchitecture> {};

TEST_P(RandomWeightsTest, BuildsAWorkingEngineFromConfigJsonAlone) {
  const auto dir = WriteModel(GetParam(), /*config_only=*/true);
  // Nothing to read: the folder has no checkpoint.
  ASSERT_FALSE(Checkpoint::Open(dir).ok());
  EngineOptions plain = Options(dir);
  EXPECT_FALSE(Engine::Create(plain).ok());

  const std::vector<float> first = RandomModelLogits(dir, 7);
  ASSERT_FALSE(first.empty());
  float lo = first[0], hi = first[0];
  for (float v : first) {
    ASSERT_TRUE(std::isfinite(v));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GT(hi - lo, 1e-3f) << "logits do not depend on the token";

  // Same seed: bitwise the same logits; another seed: different ones.
  const std::vector<float> again = RandomModelLogits(dir, 7);
  ASSERT_EQ(again.size(), first.size());
  EXPECT_EQ(std::memcmp(again.data(), first.data(), first.size() * sizeof(float)), 0);
  const std::vector<float> other = RandomModelLogits(dir, 8);
  ASSERT_EQ(other.size(), first.size());
  int64_t differing = 0;
  for (size_t i = 0; i < first.size(); ++i) differing += other[i] != first[i];
  EXPECT_GT(differing, static_cast<int64_t>(first.size()) / 2);
}

INSTANTIATE_TEST_SUITE_P(Architectures, RandomWeightsTest,
                         ::testing::ValuesIn(tools::AllTinyArchitectures()),
                         [](const auto& info) {
                           return std::string(tools::TinyArchitectureName(info.param));
                         });

TEST(GpuCacheBudgetTest, FractionOfTotalLessWhatIsInUseAndReserved) {
  constexpr uint64_t kGiB = uint64_t{1} << 30;
  // 0.9 × 100 GiB − 20 GiB in use − 1 GiB reserved.
  EXPECT_EQ(GpuCacheBudget(100 * kGiB, 80 * kGiB, 0.9, kGiB), 69 * kGiB);
  EXPECT_EQ(GpuCacheBudget(100 * kGiB, 80 * kGiB, 1.0, 0), 80 * kGiB);
  // Nothing left, or over-committed: 0, never a wrapped-around huge number.
  EXPECT_EQ(GpuCacheBudget(100 * kGiB, 80 * kGiB, 0.2, 0), 0u);
  EXPECT_EQ(GpuCacheBudget(100 * kGiB, 80 * kGiB, 0.1, kGiB), 0u);
  EXPECT_EQ(GpuCacheBudget(100 * kGiB, 200 * kGiB, 0.5, 0), 50 * kGiB);
}

TEST(FillUniformTest, CpuValuesAreInRangeSeededAndRoundedPerDtype) {
  CpuBackend cpu({.num_threads = 1});
  constexpr int64_t kN = 40000;
  std::vector<float> a(kN), b(kN), c(kN);
  const float lo = -0.25f, hi = 0.75f;
  ASSERT_TRUE(cpu.FillUniform(Tensor(a.data(), DType::kF32, {kN}), 42, lo, hi).ok());
  ASSERT_TRUE(cpu.FillUniform(Tensor(b.data(), DType::kF32, {200, 200}), 42, lo, hi).ok());
  ASSERT_TRUE(cpu.FillUniform(Tensor(c.data(), DType::kF32, {kN}), 43, lo, hi).ok());
  double sum = 0.0;
  int64_t below_mid = 0, same_as_other_seed = 0;
  for (int64_t i = 0; i < kN; ++i) {
    ASSERT_GE(a[i], lo);
    ASSERT_LE(a[i], hi);
    sum += a[i];
    below_mid += a[i] < 0.25f;
    same_as_other_seed += a[i] == c[i];
    // Element i depends on (seed, i) only, not on the shape.
    ASSERT_EQ(a[i], b[i]);
    // The documented draw: lo + (hi - lo) · u, f32 multiply then add.
    const float scaled = (hi - lo) * FillUniformUnit(42, i);
    ASSERT_EQ(a[i], lo + scaled);
  }
  // Mean and median of U[-0.25, 0.75] over 40000 draws (std of the mean
  // ~0.0014, of the fraction ~0.0025): bounds far outside chance.
  EXPECT_NEAR(sum / kN, 0.25, 0.01);
  EXPECT_NEAR(static_cast<double>(below_mid) / kN, 0.5, 0.02);
  EXPECT_LT(same_as_other_seed, kN / 100);

  // bf16 / f16: the f32 value rounded to nearest even.
  std::vector<uint16_t> h(kN);
  ASSERT_TRUE(cpu.FillUniform(Tensor(h.data(), DType::kBF16, {kN}), 42, lo, hi).ok());
  for (int64_t i = 0; i < kN; ++i) ASSERT_EQ(h[i], F32ToBF16(a[i]));
  ASSERT_TRUE(cpu.FillUniform(Tensor(h.data(), DType::kF16, {kN}), 42, lo, hi).ok());
  for (int64_t i = 0; i < kN; ++i) ASSERT_EQ(h[i], F32ToF16(a[i]));

  // A constant fill (lo == hi) is exact.
  ASSERT_TRUE(cpu.FillUniform(Tensor(a.data(), DType::kF32, {kN}), 1, 1.0f, 1.0f).ok());
  for (int64_t i = 0; i < kN; ++i) ASSERT_EQ(a[i], 1.0f);
}

TEST(FillUniformTest, RejectsNonFloatTensorsAndEmptyRangesChangingNothing) {
  CpuBackend cpu({.num_threads = 1});
  std::vector<int32_t> ids(8, 5);
  absl::Status st = cpu.FillUniform(Tensor(ids.data(), DType::kI32, {8}), 1, 0.0f, 1.0f);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ids, std::vector<int32_t>(8, 5));
  std::vector<float> x(8, 2.0f);
  st = cpu.FillUniform(Tensor(x.data(), DType::kF32, {8}), 1, 1.0f, 0.0f);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(x, std::vector<float>(8, 2.0f));
}

}  // namespace
}  // namespace hybridserve::engine
