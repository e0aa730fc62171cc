#include "engine/tokenizer/json_fields.h"

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/unicode_util.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

absl::Status WrongType(const char* key, std::string_view where, const char* want) {
  return absl::InvalidArgumentError(
      Cat("tokenizer.json: ", where, ".", key, " must be ", want));
}

}  // namespace

const rapidjson::Value* FindField(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

std::string_view JsonStringView(const rapidjson::Value& v) {
  return std::string_view(v.GetString(), v.GetStringLength());
}

absl::StatusOr<std::string> RequiredString(const rapidjson::Value& obj, const char* key,
                                           std::string_view where) {
  const rapidjson::Value* v = FindField(obj, key);
  if (v == nullptr) {
    return absl::InvalidArgumentError(
        Cat("tokenizer.json: ", where, " has no \"", key, "\""));
  }
  if (!v->IsString()) return WrongType(key, where, "a string");
  return std::string(JsonStringView(*v));
}

absl::StatusOr<std::string> OptionalString(const rapidjson::Value& obj, const char* key,
                                           std::string_view fallback,
                                           std::string_view where) {
  const rapidjson::Value* v = FindField(obj, key);
  if (v == nullptr) return std::string(fallback);
  if (!v->IsString()) return WrongType(key, where, "a string");
  return std::string(JsonStringView(*v));
}

absl::StatusOr<bool> OptionalBool(const rapidjson::Value& obj, const char* key,
                                  bool fallback, std::string_view where) {
  const rapidjson::Value* v = FindField(obj, key);
  if (v == nullptr) return fallback;
  if (!v->IsBool()) return WrongType(key, where, "true or false");
  return v->GetBool();
}

absl::StatusOr<int64_t> OptionalInt(const rapidjson::Value& obj, const char* key,
                                    int64_t fallback, std::string_view where) {
  const rapidjson::Value* v = FindField(obj, key);
  if (v == nullptr) return fallback;
  if (!v->IsInt64()) return WrongType(key, where, "an integer");
  return v->GetInt64();
}

absl::StatusOr<std::string> ComponentType(const rapidjson::Value& obj,
                                          std::string_view where) {
  if (!obj.IsObject()) {
    return absl::InvalidArgumentError(
        Cat("tokenizer.json: ", where, " must be an object"));
  }
  return RequiredString(obj, "type", where);
}

absl::StatusOr<char32_t> RequiredChar(const rapidjson::Value& obj, const char* key,
                                      std::string_view where) {
  absl::StatusOr<std::string> s = RequiredString(obj, key, where);
  if (!s.ok()) return s.status();
  size_t pos = 0;
  if (s->empty() || !ValidateUtf8(*s).ok() ||
      (NextCodePoint(*s, &pos), pos != s->size())) {
    return WrongType(key, where, "a single character");
  }
  pos = 0;
  return NextCodePoint(*s, &pos);
}

absl::StatusOr<Pattern> RequiredPattern(const rapidjson::Value& obj, const char* key,
                                        std::string_view where) {
  const rapidjson::Value* v = FindField(obj, key);
  if (v == nullptr || !v->IsObject()) {
    return WrongType(key, where, "an object {\"String\": ...} or {\"Regex\": ...}");
  }
  if (const rapidjson::Value* s = FindField(*v, "String"); s != nullptr && s->IsString()) {
    return Pattern::Literal(JsonStringView(*s));
  }
  if (const rapidjson::Value* r = FindField(*v, "Regex"); r != nullptr && r->IsString()) {
    return Pattern::Regex(JsonStringView(*r));
  }
  return WrongType(key, where, "an object {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace hybridserve::engine::tokenizer
