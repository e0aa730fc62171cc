#include "engine/generation_config.h"

#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/json_util.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {

absl::StatusOr<GenerationConfig> ParseGenerationConfig(std::string_view json_text,
                                                       std::string_view source) {
  HS_ASSIGN_OR_RETURN(rapidjson::Document doc,
                      ParseJsonObject(json_text, source));
  GenerationConfig g;
  HS_ASSIGN_OR_RETURN(g.bos_token_id, JsonInt(doc, "bos_token_id", source));
  HS_ASSIGN_OR_RETURN(g.eos_token_ids,
                      JsonIntOrIntList(doc, "eos_token_id", source));
  HS_ASSIGN_OR_RETURN(g.pad_token_id, JsonInt(doc, "pad_token_id", source));
  HS_ASSIGN_OR_RETURN(g.do_sample, JsonBool(doc, "do_sample", source));
  HS_ASSIGN_OR_RETURN(g.temperature, JsonDouble(doc, "temperature", source));
  HS_ASSIGN_OR_RETURN(g.top_k, JsonInt(doc, "top_k", source));
  HS_ASSIGN_OR_RETURN(g.top_p, JsonDouble(doc, "top_p", source));
  HS_ASSIGN_OR_RETURN(g.min_p, JsonDouble(doc, "min_p", source));
  HS_ASSIGN_OR_RETURN(g.repetition_penalty,
                      JsonDouble(doc, "repetition_penalty", source));
  HS_ASSIGN_OR_RETURN(g.max_new_tokens, JsonInt(doc, "max_new_tokens", source));
  return g;
}

absl::StatusOr<GenerationConfig> LoadGenerationConfig(
    const std::filesystem::path& model_dir) {
  const std::filesystem::path path = model_dir / "generation_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return GenerationConfig();
  HS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseGenerationConfig(text, path.string());
}

}  // namespace hybridserve::engine
