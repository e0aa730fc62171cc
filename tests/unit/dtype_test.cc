#include "engine/dtype.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace hybridserve::engine {
namespace {

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

float FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Independent bf16 reference: of the two bf16 values bracketing x (truncated
// and next up in magnitude), the nearer one in exact double arithmetic; ties go
// to the even mantissa.
uint16_t RefF32ToBF16(float x) {
  const uint32_t b = Bits(x);
  const uint32_t lo = b & 0xffff0000u;
  const uint32_t hi = lo + 0x10000u;
  const double dx = std::fabs(static_cast<double>(x));
  const double dlo = std::fabs(static_cast<double>(FromBits(lo)));
  // `hi` may be infinity: then its distance is the distance to 2^128, the
  // value it would have with an unbounded exponent.
  const double dhi = (hi & 0x7fffffffu) == 0x7f800000u
                         ? std::ldexp(1.0, 128)
                         : std::fabs(static_cast<double>(FromBits(hi)));
  const double below = dx - dlo, above = dhi - dx;
  if (below < above) return static_cast<uint16_t>(lo >> 16);
  if (above < below) return static_cast<uint16_t>(hi >> 16);
  return static_cast<uint16_t>(((lo >> 16) & 1u) ? hi >> 16 : lo >> 16);
}

TEST(DTypeTest, SizesNamesAndParsing) {
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
  EXPECT_EQ(DTypeSize(DType::kU8), 1u);
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kI32,
                  DType::kI64, DType::kU8}) {
    auto parsed = ParseSafetensorsDType(DTypeName(d));
    ASSERT_TRUE(parsed.ok()) << DTypeName(d);
    EXPECT_EQ(*parsed, d);
  }
  auto bad = ParseSafetensorsDType("F8_E4M3");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("F8_E4M3"), std::string::npos);

  EXPECT_EQ(*ParseFloatDType("bfloat16"), DType::kBF16);
  EXPECT_EQ(*ParseFloatDType("bf16"), DType::kBF16);
  EXPECT_EQ(*ParseFloatDType("float16"), DType::kF16);
  EXPECT_EQ(*ParseFloatDType("f32"), DType::kF32);
  EXPECT_FALSE(ParseFloatDType("int8").ok());
  EXPECT_TRUE(IsFloat(DType::kBF16));
  EXPECT_FALSE(IsFloat(DType::kI32));
}

TEST(DTypeTest, BF16RoundTripsEveryPattern) {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const uint16_t h = static_cast<uint16_t>(b);
    const float f = BF16ToF32(h);
    EXPECT_EQ(Bits(f), b << 16);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(f)))) << b;
    } else {
      EXPECT_EQ(F32ToBF16(f), h) << b;
    }
  }
}

TEST(DTypeTest, BF16RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even one (1).
  EXPECT_EQ(F32ToBF16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  EXPECT_EQ(F32ToBF16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  // Just above halfway rounds up.
  EXPECT_EQ(F32ToBF16(FromBits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(F32ToBF16(-1.0f), 0xbf80);
  EXPECT_EQ(F32ToBF16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(F32ToBF16(-std::numeric_limits<float>::infinity()), 0xff80);
  // The largest float rounds up to infinity (its top 16 bits are odd).
  EXPECT_EQ(F32ToBF16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(std::nanf("")))));
  // A NaN whose payload lives only in the low bits must not become infinity.
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(FromBits(0x7f800001u)))));
  // f32 subnormals are bf16 subnormals.
  EXPECT_EQ(F32ToBF16(FromBits(0x00010000u)), 0x0001);
}

TEST(DTypeTest, BF16MatchesReferenceOnStridedPatterns) {
  for (uint64_t b = 0; b <= 0xffffffffull; b += 4093) {
    const float x = FromBits(static_cast<uint32_t>(b));
    if (std::isnan(x)) continue;
    ASSERT_EQ(F32ToBF16(x), RefF32ToBF16(x)) << std::hex << b;
  }
}

TEST(DTypeTest, F16RoundTripsEveryPattern) {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const uint16_t h = static_cast<uint16_t>(b);
    const float f = F16ToF32(h);
    if ((b & 0x7c00u) == 0x7c00u && (b & 0x3ffu) != 0) {
      EXPECT_TRUE(std::isnan(f)) << b;
      EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(f)))) << b;
    } else {
      EXPECT_EQ(F32ToF16(f), h) << b;
    }
  }
}

TEST(DTypeTest, F16SpecialValuesAndRounding) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(F16ToF32(0x03ff), 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToF32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
  EXPECT_EQ(F16ToF32(0x7c00), inf);
  EXPECT_EQ(F16ToF32(0xfc00), -inf);
  EXPECT_EQ(F16ToF32(0x8000), 0.0f);
  EXPECT_TRUE(std::signbit(F16ToF32(0x8000)));

  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie → even
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // halfway to 2^16: overflows
  EXPECT_EQ(F32ToF16(-65520.0f), 0xfc00);
  EXPECT_EQ(F32ToF16(1e10f), 0x7c00);
  EXPECT_EQ(F32ToF16(inf), 0x7c00);
  EXPECT_EQ(F32ToF16(-inf), 0xfc00);
  EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(FromBits(0x7f800001u)))));
  // Subnormal results.
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);  // tie → even (0)
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -24)), 0x0002);  // tie → even (2)
  EXPECT_EQ(F32ToF16(std::ldexp(2.5f, -24)), 0x0002);  // tie → even (2)
  EXPECT_EQ(F32ToF16(-std::ldexp(1.0f, -24)), 0x8001);
  // Halfway between the largest subnormal and the smallest normal.
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)), 0x0400);
  EXPECT_EQ(F32ToF16(FromBits(0x00000001u)), 0x0000);  // f32 subnormal → 0
}

#if defined(__FLT16_MAX__)
// The compiler's _Float16 conversion (IEEE round-to-nearest-even) is an
// independent reference.
TEST(DTypeTest, F16MatchesCompilerFloat16OnStridedPatterns) {
  for (uint64_t b = 0; b <= 0xffffffffull; b += 4093) {
    const float x = FromBits(static_cast<uint32_t>(b));
    if (std::isnan(x)) continue;
    const _Float16 h = static_cast<_Float16>(x);
    uint16_t want;
    std::memcpy(&want, &h, 2);
    ASSERT_EQ(F32ToF16(x), want) << std::hex << b;
  }
}
#endif

TEST(DTypeTest, RoundToMatchesConversions) {
  EXPECT_EQ(RoundTo(DType::kF32, 0.1f), 0.1f);
  EXPECT_EQ(RoundTo(DType::kBF16, 0.1f), BF16ToF32(F32ToBF16(0.1f)));
  EXPECT_EQ(RoundTo(DType::kF16, 0.1f), F16ToF32(F32ToF16(0.1f)));
  EXPECT_NE(RoundTo(DType::kBF16, 0.1f), 0.1f);
}

TEST(DTypeTest, ConvertFloatsAllPairsFromUnalignedSource) {
  const std::vector<float> values = {0.0f, -1.5f, 3.140625f, 1e-3f, 65504.0f};
  for (DType src : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (DType dst : {DType::kF32, DType::kF16, DType::kBF16}) {
      // Source buffer in `src`, placed at an odd address.
      std::vector<std::byte> raw(1 + values.size() * DTypeSize(src));
      ConvertFloats(values.data(), DType::kF32, raw.data() + 1, src,
                    values.size());
      std::vector<std::byte> out(values.size() * DTypeSize(dst));
      ConvertFloats(raw.data() + 1, src, out.data(), dst, values.size());
      std::vector<float> back(values.size());
      ConvertFloats(out.data(), dst, back.data(), DType::kF32, values.size());
      for (size_t i = 0; i < values.size(); ++i) {
        const float want = RoundTo(dst, RoundTo(src, values[i]));
        EXPECT_EQ(back[i], want) << DTypeName(src) << "→" << DTypeName(dst)
                                 << " element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace hybridserve::engine
