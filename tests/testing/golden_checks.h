// Judging our logits against a golden fixture (DESIGN.md section 7, class
// (c)): the logits gap to transformers' f32 logits, and argmax agreement at
// the positions where the reference is confident. Failures are gtest
// EXPECTs naming the case and position.
#ifndef HYBRIDSERVE_TESTS_TESTING_GOLDEN_CHECKS_H_
#define HYBRIDSERVE_TESTS_TESTING_GOLDEN_CHECKS_H_

#include <cstddef>
#include <vector>

#include "tests/testing/golden.h"

namespace hybridserve::testing {

// Absolute logits tolerance of f32 checkpoints against transformers.
inline constexpr double kGoldenF32Tolerance = 1e-3;

// max |a[i] - b[i]| (in double); expects a and b of the same size.
double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b);

// Checks `ours` ([full_ids.size(), vocab] logits of case `c` of `f`) against
// transformers' f32 logits: within kGoldenF32Tolerance for f32 checkpoints;
// for bf16 ones within 2x transformers' own bf16-vs-f32 gap, and also within
// kGoldenF32Tolerance of the upcast reference. Prints the gap; returns the
// tolerance applied.
double ExpectLogitsMatchTransformers(const std::vector<float>& ours, const GoldenFixture& f,
                                     size_t c);

// Teacher forcing: at every generated position p (from the last prompt token)
// where the reference's top-2 margin exceeds `min_margin`, expects the argmax
// of our row p to be full_ids[p + 1]. Returns how many positions it compared.
int ExpectGreedyTokens(const std::vector<float>& ours, const GoldenFixture& f, size_t c,
                       double min_margin);

// At every position p (prompt included) where the reference's top-2 margin
// exceeds `min_margin`, expects the argmax of our row p to be the reference's.
// Returns how many positions it compared.
int ExpectConfidentTopTokens(const std::vector<float>& ours, const GoldenFixture& f,
                             size_t c, double min_margin);

}  // namespace hybridserve::testing

#endif  // HYBRIDSERVE_TESTS_TESTING_GOLDEN_CHECKS_H_
