// The pseudo-random draw behind Backend::FillUniform, shared by host and
// device code (no Abseil: .cu files include it), so every backend fills the
// same bits for the same seed.
#ifndef HYBRIDSERVE_ENGINE_BACKEND_FILL_UNIFORM_H_
#define HYBRIDSERVE_ENGINE_BACKEND_FILL_UNIFORM_H_

#include <cstdint>

#if defined(__CUDACC__)
#define HS_HOST_DEVICE __host__ __device__
#else
#define HS_HOST_DEVICE
#endif

namespace hybridserve::engine {

// The top 24 bits of SplitMix64's output for the state
// seed + (i + 1) · 0x9E3779B97F4A7C15, times 2^-24: in [0, 1), exact in f32.
HS_HOST_DEVICE inline float FillUniformUnit(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_BACKEND_FILL_UNIFORM_H_
