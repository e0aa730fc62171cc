// Seeded random test values, shared by the GPU parity tests (tests/gpu) and
// the emulator's kernel tests (tests/cuda_emu): the same seed gives the same
// values everywhere.
#ifndef HYBRIDSERVE_TESTS_TESTING_RANDOM_VALUES_H_
#define HYBRIDSERVE_TESTS_TESTING_RANDOM_VALUES_H_

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace hybridserve::testing {

// n values drawn from normal(mean, stddev).
inline std::vector<float> RandomNormal(size_t n, uint32_t seed, float stddev = 1.0f,
                                       float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// n values drawn uniformly from [lo, hi).
inline std::vector<float> RandomUniform(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace hybridserve::testing

#endif  // HYBRIDSERVE_TESTS_TESTING_RANDOM_VALUES_H_
