// Reads the golden fixtures of tests/golden/fixtures/<name>/ (format in
// tests/golden/README.md): transformers-written checkpoints plus the logits
// transformers computed for them.
#ifndef HYBRIDSERVE_TESTS_TESTING_GOLDEN_H_
#define HYBRIDSERVE_TESTS_TESTING_GOLDEN_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_config.h"

namespace hybridserve::testing {

struct GoldenCase {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> full_ids;  // prompt + greedy continuation
  int num_greedy = 0;
  std::vector<float> logits_f32;     // [full_ids.size(), vocab]
  std::vector<float> logits_native;  // same shape; bf16 fixtures only
  std::vector<float> top2_margin;    // [full_ids.size()]
  double bf16_vs_f32_max_abs_gap = 0.0;  // bf16 fixtures only
};

struct GoldenFixture {
  std::string name;
  std::filesystem::path dir;  // the checkpoint folder
  std::string checkpoint_dtype;  // "float32" | "bfloat16"
  int64_t vocab_size = 0;
  std::vector<GoldenCase> cases;
};

// Names of the fixture folders under tests/golden/fixtures, sorted.
std::vector<std::string> GoldenFixtureNames();
// Those whose config.json parses to a model of `family` (by the registry, not
// by the fixture's name), sorted.
std::vector<std::string> GoldenFixtureNames(engine::ArchitectureFamily family);
absl::StatusOr<GoldenFixture> LoadGoldenFixture(const std::string& name);

}  // namespace hybridserve::testing

#endif  // HYBRIDSERVE_TESTS_TESTING_GOLDEN_H_
