#include "tests/cuda_emu/emu_test_util.h"

#include <cmath>
#include <sstream>
#include <utility>

#include "engine/dtype.h"

namespace hybridserve::cuda_emu_testing {

const char* ElemName(ElemType elem) {
  switch (elem) {
    case ElemType::kBF16:
      return "bf16";
    case ElemType::kF16:
      return "f16";
    default:
      return "f32";
  }
}

float RoundTo(ElemType elem, float v) {
  switch (elem) {
    case ElemType::kBF16:
      return engine::BF16ToF32(engine::F32ToBF16(v));
    case ElemType::kF16:
      return engine::F16ToF32(engine::F32ToF16(v));
    default:
      return v;
  }
}

ElemBuffer::ElemBuffer(ElemType elem, std::vector<float> values)
    : elem_(elem), values_(std::move(values)) {
  if (elem_ == ElemType::kF32) return;
  bits_.resize(values_.size());
  for (size_t i = 0; i < values_.size(); ++i) {
    bits_[i] = elem_ == ElemType::kBF16 ? engine::F32ToBF16(values_[i])
                                        : engine::F32ToF16(values_[i]);
    values_[i] = elem_ == ElemType::kBF16 ? engine::BF16ToF32(bits_[i])
                                          : engine::F16ToF32(bits_[i]);
  }
}

void* ElemBuffer::data() {
  return elem_ == ElemType::kF32 ? static_cast<void*>(values_.data())
                                 : static_cast<void*>(bits_.data());
}

std::vector<float> ElemBuffer::Read() const {
  if (elem_ == ElemType::kF32) return values_;
  std::vector<float> out(bits_.size());
  for (size_t i = 0; i < bits_.size(); ++i) {
    out[i] = elem_ == ElemType::kBF16 ? engine::BF16ToF32(bits_[i])
                                      : engine::F16ToF32(bits_[i]);
  }
  return out;
}

std::vector<float> Filled(size_t n, float v) { return std::vector<float>(n, v); }

engine::Tensor F32(std::vector<float>& v, std::initializer_list<int64_t> shape) {
  return engine::Tensor(v.data(), engine::DType::kF32, shape);
}

engine::Tensor I32(std::vector<int32_t>& v, std::initializer_list<int64_t> shape) {
  return engine::Tensor(v.data(), engine::DType::kI32, shape);
}

::testing::AssertionResult AllClose(const std::vector<float>& got,
                                    const std::vector<float>& want, double atol,
                                    double rtol) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << "sizes differ: " << got.size() << " vs " << want.size();
  }
  size_t bad = 0, first = 0, worst = 0;
  double worst_excess = -1.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double limit = atol + rtol * std::fabs(static_cast<double>(want[i]));
    if (err <= limit) continue;  // false for NaN
    if (bad == 0) first = i;
    ++bad;
    const double excess = std::isnan(err) ? INFINITY : err - limit;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream msg;
  msg.precision(7);
  msg << bad << " of " << want.size() << " elements outside atol " << atol
      << " + rtol " << rtol << " * |cpu|; first at " << first << ": emu "
      << got[first] << " cpu " << want[first] << "; worst at " << worst
      << ": emu " << got[worst] << " cpu " << want[worst];
  return ::testing::AssertionFailure() << msg.str();
}

EmuTest::EmuTest() : cpu_(engine::CpuBackendOptions{.num_threads = 1}) {}

std::string ElemParamName(const ::testing::TestParamInfo<ElemType>& info) {
  return ElemName(info.param);
}

}  // namespace hybridserve::cuda_emu_testing

namespace hybridserve::engine::cuda {
void PrintTo(ElemType elem, std::ostream* os) { *os << cuda_emu_testing::ElemName(elem); }
}  // namespace hybridserve::engine::cuda
