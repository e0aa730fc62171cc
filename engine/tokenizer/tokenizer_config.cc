#include "engine/tokenizer/tokenizer_config.h"

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/json_fields.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

absl::StatusOr<std::optional<std::string>> TokenField(const rapidjson::Value& obj,
                                                      const char* key,
                                                      std::string_view source) {
  const rapidjson::Value* v = FindField(obj, key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->IsString()) return std::optional<std::string>(std::string(JsonStringView(*v)));
  if (v->IsObject()) {
    const rapidjson::Value* content = FindField(*v, "content");
    if (content != nullptr && content->IsString()) {
      return std::optional<std::string>(std::string(JsonStringView(*content)));
    }
  }
  return absl::InvalidArgumentError(Cat(
      source, ": ", key, " must be a string or an object with \"content\""));
}

absl::StatusOr<std::optional<bool>> BoolField(const rapidjson::Value& obj, const char* key,
                                              std::string_view source) {
  const rapidjson::Value* v = FindField(obj, key);
  if (v == nullptr) return std::optional<bool>();
  if (!v->IsBool()) {
    return absl::InvalidArgumentError(Cat(source, ": ", key, " must be true or false"));
  }
  return std::optional<bool>(v->GetBool());
}

}  // namespace

absl::StatusOr<TokenizerConfig> ParseTokenizerConfig(std::string_view json,
                                                     std::string_view source) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseNanAndInfFlag>(json.data(), json.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(
        Cat(source, ": JSON error at byte ", doc.GetErrorOffset(), ": ",
                     rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject()) return absl::InvalidArgumentError(Cat(source, ": not an object"));
  TokenizerConfig c;
  auto tok = [&](const char* key, std::optional<std::string>* out) -> absl::Status {
    absl::StatusOr<std::optional<std::string>> v = TokenField(doc, key, source);
    if (!v.ok()) return v.status();
    *out = *std::move(v);
    return absl::OkStatus();
  };
  auto flag = [&](const char* key, std::optional<bool>* out) -> absl::Status {
    absl::StatusOr<std::optional<bool>> v = BoolField(doc, key, source);
    if (!v.ok()) return v.status();
    *out = *v;
    return absl::OkStatus();
  };
  for (absl::Status s : {tok("bos_token", &c.bos_token), tok("eos_token", &c.eos_token),
                         tok("pad_token", &c.pad_token), tok("unk_token", &c.unk_token),
                         flag("add_bos_token", &c.add_bos_token),
                         flag("add_eos_token", &c.add_eos_token)}) {
    if (!s.ok()) return s;
  }
  return c;
}

}  // namespace hybridserve::engine::tokenizer
