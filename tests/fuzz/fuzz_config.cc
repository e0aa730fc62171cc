// libFuzzer target: arbitrary bytes as config.json and generation_config.json.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/generation_config.h"
#include "engine/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = hybridserve::engine::ParseModelConfig(text, "fuzz/config.json");
  if (config.ok()) {
    // Derived quantities must not crash on any accepted config.
    (void)config->family();
    (void)config->num_attention_layers();
    if (config->num_attention_layers() > 0) {
      (void)hybridserve::engine::ComputeRopeTables(config->rope, config->rotary_dim());
    }
  }
  (void)hybridserve::engine::ParseGenerationConfig(text, "fuzz/generation_config.json");
  return 0;
}
