#include "engine/json_util.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/error/en.h"

namespace hybridserve::engine {
namespace {

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

std::string TypeName(const rapidjson::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsBool()) return "a boolean";
  if (v.IsInt64() || v.IsUint64()) return "an integer";
  if (v.IsNumber()) return "a number";
  if (v.IsString()) return "a string";
  if (v.IsArray()) return "an array";
  return "an object";
}

absl::Status WrongType(std::string_view source, const char* key,
                       const rapidjson::Value& v, std::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(source), ": \"", key,
                                                 "\" must be ", Sv(want),
                                                 ", got ", TypeName(v)));
}

// Present and not null, or nullptr.
const rapidjson::Value* Member(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

// An integer, or a double holding an exact integer in int64 range (some
// writers emit 2048.0).
bool AsInt64(const rapidjson::Value& v, int64_t* out) {
  if (v.IsInt64()) {
    *out = v.GetInt64();
    return true;
  }
  if (v.IsDouble()) {
    const double d = v.GetDouble();
    if (std::isfinite(d) && std::trunc(d) == d && d >= -9.2e18 && d <= 9.2e18) {
      *out = static_cast<int64_t>(d);
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    const std::string msg =
        absl::StrCat("cannot open ", path.string(), ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg)
                         : absl::PermissionDeniedError(msg);
  }
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    return absl::DataLossError(absl::StrCat("error reading ", path.string()));
  }
  return out;
}

absl::StatusOr<rapidjson::Document> ParseJsonObject(std::string_view text,
                                                    std::string_view source) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseNanAndInfFlag>(text.data(), text.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(source), ": invalid JSON at byte ", doc.GetErrorOffset(), ": ",
        rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(source), ": expected a JSON object, got ", TypeName(doc)));
  }
  return doc;
}

absl::StatusOr<std::optional<int64_t>> JsonInt(const rapidjson::Value& obj,
                                               const char* key,
                                               std::string_view source) {
  const rapidjson::Value* v = Member(obj, key);
  if (v == nullptr) return std::optional<int64_t>();
  int64_t out;
  if (!AsInt64(*v, &out)) return WrongType(source, key, *v, "an integer");
  return std::optional<int64_t>(out);
}

absl::StatusOr<std::optional<double>> JsonDouble(const rapidjson::Value& obj,
                                                 const char* key,
                                                 std::string_view source) {
  const rapidjson::Value* v = Member(obj, key);
  if (v == nullptr) return std::optional<double>();
  if (!v->IsNumber()) return WrongType(source, key, *v, "a number");
  return std::optional<double>(v->GetDouble());
}

absl::StatusOr<std::optional<bool>> JsonBool(const rapidjson::Value& obj,
                                             const char* key,
                                             std::string_view source) {
  const rapidjson::Value* v = Member(obj, key);
  if (v == nullptr) return std::optional<bool>();
  if (!v->IsBool()) return WrongType(source, key, *v, "a boolean");
  return std::optional<bool>(v->GetBool());
}

absl::StatusOr<std::optional<std::string>> JsonString(
    const rapidjson::Value& obj, const char* key, std::string_view source) {
  const rapidjson::Value* v = Member(obj, key);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->IsString()) return WrongType(source, key, *v, "a string");
  return std::optional<std::string>(
      std::string(v->GetString(), v->GetStringLength()));
}

absl::StatusOr<std::vector<int64_t>> JsonIntOrIntList(
    const rapidjson::Value& obj, const char* key, std::string_view source) {
  std::vector<int64_t> out;
  const rapidjson::Value* v = Member(obj, key);
  if (v == nullptr) return out;
  int64_t x;
  if (AsInt64(*v, &x)) {
    out.push_back(x);
    return out;
  }
  if (!v->IsArray()) {
    return WrongType(source, key, *v, "an integer or a list of integers");
  }
  for (rapidjson::SizeType i = 0; i < v->Size(); ++i) {
    if (!AsInt64((*v)[i], &x)) {
      return absl::InvalidArgumentError(
          absl::StrCat(Sv(source), ": \"", key, "\"[", i,
                       "] must be an integer, got ", TypeName((*v)[i])));
    }
    out.push_back(x);
  }
  return out;
}

}  // namespace hybridserve::engine
