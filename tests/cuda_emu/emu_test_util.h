// Helpers of the emulated-kernel tests (see README.md): host buffers as a
// kernel sees them (f32, bf16 or f16 elements) next to the same values in f32
// for the CPU twin, seeded random data, and the closeness check
// |emu - cpu| <= atol + rtol * |cpu|.
//
// Under the emulator, device memory is host memory: the kernels' launchers
// get these buffers' host pointers.
#ifndef HYBRIDSERVE_TESTS_CUDA_EMU_EMU_TEST_UTIL_H_
#define HYBRIDSERVE_TESTS_CUDA_EMU_EMU_TEST_UTIL_H_

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "gtest/gtest.h"
#include "tests/testing/random_values.h"
// Last: the emulator's CUDA headers define macros (threadIdx, __shared__, ...).
#include "engine/backend/cuda/cuda_common.h"

namespace hybridserve::engine::cuda {
// Test names and messages show "f32", "bf16", "f16".
void PrintTo(ElemType elem, std::ostream* os);
}  // namespace hybridserve::engine::cuda

namespace hybridserve::cuda_emu_testing {

using engine::cuda::ElemType;

const char* ElemName(ElemType elem);
// v rounded to `elem` (round to nearest even), back in f32.
float RoundTo(ElemType elem, float v);

// A buffer of `elem` elements. values() holds what the buffer holds, in f32
// (for 16-bit types, the rounded values): the CPU twin's input.
class ElemBuffer {
 public:
  // Rounds `values` to elem.
  ElemBuffer(ElemType elem, std::vector<float> values);

  // The kernel's view: 16-byte aligned.
  void* data();
  // The values as f32, rounded to elem (the buffer's contents when created).
  std::vector<float>& values() { return values_; }
  // The buffer's current contents (after a kernel wrote it) as f32.
  std::vector<float> Read() const;
  size_t size() const { return values_.size(); }

 private:
  ElemType elem_;
  std::vector<float> values_;
  std::vector<uint16_t> bits_;  // 16-bit elements
};

using testing::RandomNormal;
using testing::RandomUniform;
std::vector<float> Filled(size_t n, float v);

// f32 / i32 views for the CPU twin.
engine::Tensor F32(std::vector<float>& v, std::initializer_list<int64_t> shape);
engine::Tensor I32(std::vector<int32_t>& v, std::initializer_list<int64_t> shape);

// Success when every element satisfies |got - want| <= atol + rtol * |want|
// (NaN fails); the message names the count of bad elements, the first and the
// worst.
::testing::AssertionResult AllClose(const std::vector<float>& got,
                                    const std::vector<float>& want, double atol,
                                    double rtol);

// Test fixture base: one single-threaded CPU backend (the twins) and the
// element type under test.
class EmuTest : public ::testing::TestWithParam<ElemType> {
 protected:
  EmuTest();
  ElemType elem() const { return GetParam(); }
  bool half() const { return GetParam() != ElemType::kF32; }

  engine::CpuBackend cpu_;
};

// Parameter names for INSTANTIATE_TEST_SUITE_P: "f32", "bf16", "f16".
std::string ElemParamName(const ::testing::TestParamInfo<ElemType>& info);

}  // namespace hybridserve::cuda_emu_testing

#endif  // HYBRIDSERVE_TESTS_CUDA_EMU_EMU_TEST_UTIL_H_
