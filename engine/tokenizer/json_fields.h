// Small typed accessors over RapidJSON values for reading tokenizer.json. Each
// error names `where` (e.g. "pre_tokenizer.pretokenizers[1]") and the key.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_JSON_FIELDS_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_JSON_FIELDS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/tokenizer/regex.h"
#include "rapidjson/document.h"

namespace hybridserve::engine::tokenizer {

// The member `key` of object `obj`, or nullptr when absent or null.
const rapidjson::Value* FindField(const rapidjson::Value& obj, const char* key);

// The string held by `v` (which may contain NUL bytes).
std::string_view JsonStringView(const rapidjson::Value& v);

// Required string member.
absl::StatusOr<std::string> RequiredString(const rapidjson::Value& obj, const char* key,
                                           std::string_view where);
// Optional members: `fallback` when absent or null; error on a wrong type.
absl::StatusOr<std::string> OptionalString(const rapidjson::Value& obj, const char* key,
                                           std::string_view fallback,
                                           std::string_view where);
absl::StatusOr<bool> OptionalBool(const rapidjson::Value& obj, const char* key,
                                  bool fallback, std::string_view where);
absl::StatusOr<int64_t> OptionalInt(const rapidjson::Value& obj, const char* key,
                                    int64_t fallback, std::string_view where);

// The "type" member of a component object.
absl::StatusOr<std::string> ComponentType(const rapidjson::Value& obj,
                                          std::string_view where);

// A single Unicode character held in a string member (e.g. Metaspace's
// "replacement", Strip's "content").
absl::StatusOr<char32_t> RequiredChar(const rapidjson::Value& obj, const char* key,
                                      std::string_view where);

// A pattern member: {"String": literal} or {"Regex": regex}.
absl::StatusOr<Pattern> RequiredPattern(const rapidjson::Value& obj, const char* key,
                                        std::string_view where);

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_JSON_FIELDS_H_
