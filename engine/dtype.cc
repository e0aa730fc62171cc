#include "engine/dtype.h"

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "engine/check.h"

namespace hybridserve::engine {
namespace {

uint32_t FloatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

float BitsToFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// Reads element `i` of a float array of `dtype` as f32. memcpy, because
// checkpoint data in a mapping need not be aligned.
float LoadAsF32(const std::byte* src, DType dtype, size_t i) {
  switch (dtype) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, src + i * 4, 4);
      return v;
    }
    case DType::kF16: {
      uint16_t v;
      std::memcpy(&v, src + i * 2, 2);
      return F16ToF32(v);
    }
    case DType::kBF16: {
      uint16_t v;
      std::memcpy(&v, src + i * 2, 2);
      return BF16ToF32(v);
    }
    default:
      HS_CHECK(false && "LoadAsF32: not a float dtype");
  }
  return 0.0f;
}

void StoreFromF32(std::byte* dst, DType dtype, size_t i, float value) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst + i * 4, &value, 4);
      return;
    case DType::kF16: {
      const uint16_t v = F32ToF16(value);
      std::memcpy(dst + i * 2, &v, 2);
      return;
    }
    case DType::kBF16: {
      const uint16_t v = F32ToBF16(value);
      std::memcpy(dst + i * 2, &v, 2);
      return;
    }
    default:
      HS_CHECK(false && "StoreFromF32: not a float dtype");
  }
}

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kI64:
      return 8;
    case DType::kU8:
      return 1;
  }
  HS_CHECK(false && "unknown DType");
  return 0;
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kI32:
      return "I32";
    case DType::kI64:
      return "I64";
    case DType::kU8:
      return "U8";
  }
  HS_CHECK(false && "unknown DType");
  return "";
}

absl::StatusOr<DType> ParseSafetensorsDType(std::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  if (name == "I32") return DType::kI32;
  if (name == "I64") return DType::kI64;
  if (name == "U8") return DType::kU8;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported safetensors dtype \"", std::string(name),
                   "\" (supported: F32, F16, BF16, I32, I64, U8)"));
}

absl::StatusOr<DType> ParseFloatDType(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(std::string(name));
  if (lower == "f32" || lower == "float32" || lower == "float") {
    return DType::kF32;
  }
  if (lower == "bf16" || lower == "bfloat16") return DType::kBF16;
  if (lower == "f16" || lower == "float16" || lower == "half") {
    return DType::kF16;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported float dtype \"", std::string(name),
                   "\" (supported: f32/float32, bf16/bfloat16, f16/float16)"));
}

bool IsFloat(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

float BF16ToF32(uint16_t bits) {
  return BitsToFloat(static_cast<uint32_t>(bits) << 16);
}

uint16_t F32ToBF16(float value) {
  uint32_t x = FloatBits(value);
  // As torch's c10::BFloat16: every NaN becomes the canonical quiet NaN.
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  // Round to nearest, ties to even; overflow carries into infinity.
  const uint32_t lsb = (x >> 16) & 1u;
  x += 0x7fffu + lsb;
  return static_cast<uint16_t>(x >> 16);
}

float F16ToF32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exp = (bits >> 10) & 0x1fu;
  uint32_t mant = bits & 0x3ffu;
  if (exp == 0x1f) {  // inf / NaN: keep the payload
    return BitsToFloat(sign | 0x7f800000u | (mant << 13));
  }
  if (exp != 0) {  // normal
    return BitsToFloat(sign | ((exp + 112u) << 23) | (mant << 13));
  }
  if (mant == 0) return BitsToFloat(sign);  // ±0
  // Subnormal: mant * 2^-24; normalise.
  uint32_t e = 113;  // exponent of 2^-14, biased for f32
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  mant &= 0x3ffu;
  return BitsToFloat(sign | (e << 23) | (mant << 13));
}

uint16_t F32ToF16(float value) {
  uint32_t x = FloatBits(value);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) {
    if (x == 0x7f800000u) return sign | 0x7c00u;  // inf
    // NaN: quiet, keeping the top payload bits.
    return sign | 0x7e00u | static_cast<uint16_t>((x >> 13) & 0x3ffu);
  }
  // 65520 = halfway between 65504 (largest half) and 2^16; ties go to even,
  // which is 2^16, i.e. infinity.
  if (x >= 0x477ff000u) return sign | 0x7c00u;
  if (x < 0x38800000u) {  // below 2^-14: a half subnormal or zero
    if (x <= 0x33000000u) return sign;  // <= 2^-25 rounds to 0 (tie → even)
    const uint32_t exp = x >> 23;
    const uint32_t mant = (x & 0x7fffffu) | 0x800000u;
    // value = mant * 2^(exp - 150); in units of 2^-24: mant >> (126 - exp).
    const uint32_t shift = 126u - exp;  // in [14, 24]
    uint32_t r = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return sign | static_cast<uint16_t>(r);  // r may reach 0x400: min normal
  }
  // Normal: rebias the exponent (127 → 15) and round the mantissa to 10 bits.
  const uint32_t lsb = (x >> 13) & 1u;
  x += 0xfffu + lsb;
  return sign | static_cast<uint16_t>((x - 0x38000000u) >> 13);
}

float RoundTo(DType dtype, float value) {
  switch (dtype) {
    case DType::kF32:
      return value;
    case DType::kF16:
      return F16ToF32(F32ToF16(value));
    case DType::kBF16:
      return BF16ToF32(F32ToBF16(value));
    default:
      HS_CHECK(false && "RoundTo: not a float dtype");
  }
  return value;
}

void ConvertFloats(const void* src, DType src_dtype, void* dst, DType dst_dtype,
                   size_t count) {
  HS_CHECK(IsFloat(src_dtype) && IsFloat(dst_dtype));
  if (src_dtype == dst_dtype) {
    std::memcpy(dst, src, count * DTypeSize(src_dtype));
    return;
  }
  const auto* in = static_cast<const std::byte*>(src);
  auto* out = static_cast<std::byte*>(dst);
  for (size_t i = 0; i < count; ++i) {
    StoreFromF32(out, dst_dtype, i, LoadAsF32(in, src_dtype, i));
  }
}

}  // namespace hybridserve::engine
