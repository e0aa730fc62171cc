// generation_config.json → default sampling and stopping parameters.
#ifndef HYBRIDSERVE_ENGINE_GENERATION_CONFIG_H_
#define HYBRIDSERVE_ENGINE_GENERATION_CONFIG_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace hybridserve::engine {

// Every field is optional: absent keys leave the server's own defaults.
struct GenerationConfig {
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // int or list in the file
  std::optional<int64_t> pad_token_id;
  std::optional<bool> do_sample;
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<int64_t> max_new_tokens;
};

absl::StatusOr<GenerationConfig> ParseGenerationConfig(std::string_view json_text,
                                                       std::string_view source);
// Reads `<model_dir>/generation_config.json`; a missing file gives an empty
// GenerationConfig (it is optional), a malformed one an error naming it.
absl::StatusOr<GenerationConfig> LoadGenerationConfig(
    const std::filesystem::path& model_dir);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_GENERATION_CONFIG_H_
