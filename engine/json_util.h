// Thin helpers over RapidJSON for reading the checkpoint's JSON files. All parse
// with kParseNanAndInfFlag: transformers writes `Infinity` into config.json.
#ifndef HYBRIDSERVE_ENGINE_JSON_UTIL_H_
#define HYBRIDSERVE_ENGINE_JSON_UTIL_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rapidjson/document.h"

namespace hybridserve::engine {

// Reads a whole file. Error names the path.
absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path);

// Parses `text` as a JSON object. `source` (usually the file path) is named in
// errors, with the byte offset of a syntax error.
absl::StatusOr<rapidjson::Document> ParseJsonObject(std::string_view text,
                                                    std::string_view source);

// Typed field access. Each returns nullopt when the key is absent or null and an
// error (naming `source` and the key) when it has the wrong type.
absl::StatusOr<std::optional<int64_t>> JsonInt(const rapidjson::Value& obj,
                                               const char* key,
                                               std::string_view source);
absl::StatusOr<std::optional<double>> JsonDouble(const rapidjson::Value& obj,
                                                 const char* key,
                                                 std::string_view source);
absl::StatusOr<std::optional<bool>> JsonBool(const rapidjson::Value& obj,
                                             const char* key,
                                             std::string_view source);
absl::StatusOr<std::optional<std::string>> JsonString(
    const rapidjson::Value& obj, const char* key, std::string_view source);
// An integer or a list of integers (e.g. eos_token_id); absent → empty.
absl::StatusOr<std::vector<int64_t>> JsonIntOrIntList(
    const rapidjson::Value& obj, const char* key, std::string_view source);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_JSON_UTIL_H_
