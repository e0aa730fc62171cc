// Helpers shared by the GPU parity tests (tests/gpu/*_test.cc): whether a CUDA
// device is usable (tests skip visibly when not), host tensors that are
// uploaded to a backend in its act dtype and read back as f32, the
// tolerance check of DESIGN.md section 7 (|gpu - ref| <= atol + rtol * |ref|)
// and the dump of failing inputs into $HS_GPU_FAIL_DIR.
#ifndef HYBRIDSERVE_TESTS_GPU_GPU_TEST_UTIL_H_
#define HYBRIDSERVE_TESTS_GPU_GPU_TEST_UTIL_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/dtype.h"
#include "engine/status_macros.h"
#include "gtest/gtest.h"
#include "tests/testing/random_values.h"

namespace hybridserve::gpu_testing {

// True when this build has the CUDA backend and a GPU is usable; otherwise
// *why says which is missing.
bool GpuAvailable(std::string* why);

// The message every GPU test skips with: "SKIPPED: no CUDA device (<why>)".
std::string SkipMessage(const std::string& why);

// Skips the current test (visibly) when no GPU is usable.
#define HS_REQUIRE_GPU()                                                  \
  do {                                                                    \
    std::string hs_gpu_why_;                                              \
    if (!::hybridserve::gpu_testing::GpuAvailable(&hs_gpu_why_)) {        \
      GTEST_SKIP() << ::hybridserve::gpu_testing::SkipMessage(hs_gpu_why_); \
    }                                                                     \
  } while (0)

// CreateCudaBackend with this act dtype (FailedPrecondition in a build
// without CUDA).
absl::StatusOr<std::unique_ptr<engine::Backend>> MakeCudaBackend(engine::DType act_dtype);

// Seeded random values: normal(mean, stddev), or uniform in [lo, hi).
using testing::RandomNormal;
using testing::RandomUniform;
// Rounds every element to `dtype`'s precision (kF32: unchanged), in place.
void RoundAll(engine::DType dtype, std::vector<float>* v);

// A host copy of a tensor (f32 values or i32 indices) with its shape, plus
// its copy on one backend. Upload converts floats to `dtype` (the backend's
// act dtype or f32); Download converts back to f32.
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(std::vector<float> values, std::initializer_list<int64_t> shape);
  HostTensor(std::vector<int32_t> indices, std::initializer_list<int64_t> shape);

  bool is_index() const { return is_index_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const;
  std::vector<float>& values() { return values_; }
  const std::vector<float>& values() const { return values_; }
  std::vector<int32_t>& indices() { return indices_; }
  const std::vector<int32_t>& indices() const { return indices_; }

  // A view of the host data itself (for the CPU backend): f32 or i32.
  engine::Tensor HostView();
  std::string ShapeString() const;

 private:
  bool is_index_ = false;
  std::vector<int64_t> shape_;
  std::vector<float> values_;
  std::vector<int32_t> indices_;
};

// An f32 tensor of `shape` filled with NaN: an output a kernel must write.
HostTensor Poison(std::initializer_list<int64_t> shape);

// One tensor on a device: owns its buffer.
struct DeviceTensor {
  engine::DeviceBuffer buffer;
  engine::Tensor view;
};

// Allocates `host`'s shape on `backend` in `dtype` (ignored for index
// tensors, which stay i32) and copies the values in.
absl::StatusOr<DeviceTensor> Upload(engine::Backend& backend, const HostTensor& host,
                                    engine::DType dtype);
// Copies `t` back and converts it to f32 (index tensors: not allowed).
absl::StatusOr<std::vector<float>> Download(engine::Backend& backend, const engine::Tensor& t);

struct Tolerance {
  double atol = 0.0;
  double rtol = 0.0;
};

// The result of comparing a GPU output with its reference.
struct Comparison {
  bool ok = true;
  int64_t num_bad = 0;
  int64_t first_bad = -1;
  double max_abs_error = 0.0;
  double max_rel_error = 0.0;  // |gpu - ref| / max(|ref|, 1e-6), over all elements
  std::string Summary() const;
};
// Elementwise check; NaN or Inf on either side where the other is finite fails.
Comparison Compare(const std::vector<float>& gpu, const std::vector<float>& ref, Tolerance tol);

// Collects the named host tensors of one check (inputs, the reference, the
// GPU output) and, when a comparison fails and HS_GPU_FAIL_DIR is set,
// writes them to $HS_GPU_FAIL_DIR/<test name>[_<tag>]/<name>.bin (raw
// little-endian f32 or i32) with a meta.json of names, dtypes and shapes.
// Tensors are copied when added; those over kMaxDumpElements are only named
// in meta.json (the inputs are seeded: rerunning the test remakes them).
class FailureDump {
 public:
  explicit FailureDump(std::string tag = "") : tag_(std::move(tag)) {}
  void Add(const std::string& name, const HostTensor& t);
  void AddValues(const std::string& name, const std::vector<float>& v,
                 std::initializer_list<int64_t> shape);
  // Compares, records a gtest failure naming `what` on mismatch (and dumps).
  // Returns the comparison for callers that print it.
  Comparison Check(const std::string& what, const std::vector<float>& gpu,
                   const std::vector<float>& ref, std::initializer_list<int64_t> shape,
                   Tolerance tol);
  // Writes everything collected so far (when HS_GPU_FAIL_DIR is set).
  void Write(const std::string& reason);

 private:
  static constexpr int64_t kMaxDumpElements = int64_t{16} << 20;
  std::string tag_;
  std::vector<std::pair<std::string, HostTensor>> tensors_;
  std::vector<std::string> omitted_;
};

// `lhs = value of expr` for a StatusOr `expr`, or a fatal test failure with
// its status. For test bodies and void helpers.
#define HS_GPU_ASSIGN(lhs, expr) HS_GPU_ASSIGN_IMPL_(HS_CONCAT_(hs_gpu_r_, __LINE__), lhs, expr)
#define HS_GPU_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                        \
  ASSERT_TRUE(tmp.ok()) << tmp.status();    \
  lhs = std::move(*tmp)

// The parity fixture: the CPU backend (the reference, f32) and a CUDA backend
// of the parameter's act dtype (kF32 or kBF16). Skips when no GPU is usable.
// Float inputs go through In(), which rounds them to the act dtype, so both
// backends see the same values (bf16: the CPU runs on bf16-rounded inputs).
class BackendParityTest : public ::testing::TestWithParam<engine::DType> {
 protected:
  void SetUp() override;

  engine::DType act() const { return GetParam(); }
  bool bf16() const { return GetParam() == engine::DType::kBF16; }
  // Float input rounded to the act dtype.
  HostTensor In(std::vector<float> v, std::initializer_list<int64_t> shape) const;
  // The tolerance for this act dtype.
  Tolerance Tol(Tolerance f32, Tolerance bf16) const { return this->bf16() ? bf16 : f32; }
  // Uploads to the GPU in the act dtype (floats) or as i32 (indices).
  absl::StatusOr<DeviceTensor> Dev(const HostTensor& h) { return Upload(*gpu_, h, act()); }
  // Uploads to the GPU as f32 (SSM state pools, rotary frequencies).
  absl::StatusOr<DeviceTensor> DevF32(const HostTensor& h) {
    return Upload(*gpu_, h, engine::DType::kF32);
  }
  absl::StatusOr<std::vector<float>> Get(const DeviceTensor& t) { return Download(*gpu_, t.view); }

  engine::CpuBackend cpu_{engine::CpuBackendOptions{.num_threads = 0}};
  std::unique_ptr<engine::Backend> gpu_;
};

// "f32" / "bf16", for parameterized test names.
std::string DTypeTestName(const ::testing::TestParamInfo<engine::DType>& info);

}  // namespace hybridserve::gpu_testing

#endif  // HYBRIDSERVE_TESTS_GPU_GPU_TEST_UTIL_H_
