// Element types of tensors in checkpoints and device buffers, and conversions
// between the floating-point ones.
#ifndef HYBRIDSERVE_ENGINE_DTYPE_H_
#define HYBRIDSERVE_ENGINE_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace hybridserve::engine {

enum class DType : uint8_t { kF32, kF16, kBF16, kI32, kI64, kU8 };

size_t DTypeSize(DType dtype);
// Safetensors spelling: "F32", "F16", "BF16", "I32", "I64", "U8".
std::string_view DTypeName(DType dtype);
// Parses the safetensors spelling. Error names the unknown string.
absl::StatusOr<DType> ParseSafetensorsDType(std::string_view name);
// Parses a `--dtype` / config `torch_dtype` spelling: "f32"/"float32", "bf16"/
// "bfloat16", "f16"/"float16".
absl::StatusOr<DType> ParseFloatDType(std::string_view name);
bool IsFloat(DType dtype);

float BF16ToF32(uint16_t bits);
// Round to nearest even; NaN stays NaN.
uint16_t F32ToBF16(float value);
float F16ToF32(uint16_t bits);
// Round to nearest even; overflow becomes infinity.
uint16_t F32ToF16(float value);
// Rounds `value` to the precision of `dtype` (kF32: unchanged) and back to f32.
float RoundTo(DType dtype, float value);

// Converts `count` floating-point elements from `src` (of `src_dtype`) to `dst`
// (of `dst_dtype`). REQUIRES: both dtypes are float types; src and dst do not
// overlap.
void ConvertFloats(const void* src, DType src_dtype, void* dst, DType dst_dtype,
                   size_t count);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_DTYPE_H_
