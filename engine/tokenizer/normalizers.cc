#include "engine/tokenizer/normalizers.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/tokenizer/json_fields.h"
#include "engine/tokenizer/unicode_util.h"
#include "utf8proc.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

bool IsCombiningMark(char32_t c) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC ||
         cat == UTF8PROC_CATEGORY_ME;
}

// Removes leading and/or trailing White_Space characters.
void StripWhitespace(bool left, bool right, std::string* text) {
  size_t begin = 0;
  size_t end = text->size();
  if (left) {
    while (begin < end) {
      size_t pos = begin;
      if (!IsWhitespace(NextCodePoint(*text, &pos))) break;
      begin = pos;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>((*text)[start]) & 0xC0) == 0x80) {
        --start;
      }
      size_t pos = start;
      if (!IsWhitespace(NextCodePoint(*text, &pos))) break;
      end = start;
    }
  }
  *text = text->substr(begin, end - begin);
}

}  // namespace

absl::StatusOr<Normalizer> Normalizer::FromJson(const rapidjson::Value& json) {
  Normalizer n;
  HS_RETURN_IF_ERROR(AddSteps(json, "normalizer", &n.steps_));
  return n;
}

absl::Status Normalizer::AddSteps(const rapidjson::Value& json, std::string_view where,
                                  std::vector<Step>* steps) {
  // (Not HS_ASSIGN_OR_RETURN: GCC 12 then warns of a maybe-uninitialized string.)
  absl::StatusOr<std::string> type_or = ComponentType(json, where);
  if (!type_or.ok()) return type_or.status();
  const std::string& type = *type_or;
  if (type == "Sequence") {
    const rapidjson::Value* list = FindField(json, "normalizers");
    if (list == nullptr || !list->IsArray()) {
      return absl::InvalidArgumentError(
          Cat("tokenizer.json: ", where, ".normalizers must be a list"));
    }
    for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
      HS_RETURN_IF_ERROR(
          AddSteps((*list)[i], Cat(where, ".normalizers[", i, "]"), steps));
    }
    return absl::OkStatus();
  }
  Step step;
  if (type == "NFC") {
    step.kind = Kind::kNfc;
  } else if (type == "NFD") {
    step.kind = Kind::kNfd;
  } else if (type == "NFKC") {
    step.kind = Kind::kNfkc;
  } else if (type == "NFKD") {
    step.kind = Kind::kNfkd;
  } else if (type == "Lowercase") {
    step.kind = Kind::kLowercase;
  } else if (type == "StripAccents") {
    step.kind = Kind::kStripAccents;
  } else if (type == "Prepend") {
    step.kind = Kind::kPrepend;
    HS_ASSIGN_OR_RETURN(step.text, RequiredString(json, "prepend", where));
  } else if (type == "Replace") {
    step.kind = Kind::kReplace;
    HS_ASSIGN_OR_RETURN(step.text, RequiredString(json, "content", where));
    HS_ASSIGN_OR_RETURN(Pattern p, RequiredPattern(json, "pattern", where));
    step.pattern.emplace(std::move(p));
  } else if (type == "Strip") {
    step.kind = Kind::kStrip;
    HS_ASSIGN_OR_RETURN(step.left, OptionalBool(json, "strip_left", true, where));
    HS_ASSIGN_OR_RETURN(step.right, OptionalBool(json, "strip_right", true, where));
  } else {
    return absl::UnimplementedError(
        Cat("tokenizer.json: ", where, ": normalizer type \"", type,
                     "\" is not supported"));
  }
  steps->push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status Normalizer::Apply(std::string* text) const {
  for (const Step& step : steps_) HS_RETURN_IF_ERROR(ApplyStep(step, text));
  return absl::OkStatus();
}

absl::Status Normalizer::ApplyStep(const Step& step, std::string* text) {
  switch (step.kind) {
    case Kind::kNfc:
    case Kind::kNfd:
    case Kind::kNfkc:
    case Kind::kNfkd: {
      // ASCII is invariant under every normal form.
      bool ascii = true;
      for (char c : *text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
      if (ascii) return absl::OkStatus();
      const NormalForm form = step.kind == Kind::kNfc    ? NormalForm::kNfc
                              : step.kind == Kind::kNfd  ? NormalForm::kNfd
                              : step.kind == Kind::kNfkc ? NormalForm::kNfkc
                                                         : NormalForm::kNfkd;
      HS_ASSIGN_OR_RETURN(*text, Normalize(*text, form));
      return absl::OkStatus();
    }
    case Kind::kLowercase:
      *text = Lowercase(*text);
      return absl::OkStatus();
    case Kind::kStripAccents: {
      std::string out;
      size_t pos = 0;
      while (pos < text->size()) {
        const size_t start = pos;
        if (!IsCombiningMark(NextCodePoint(*text, &pos))) {
          out.append(*text, start, pos - start);
        }
      }
      *text = std::move(out);
      return absl::OkStatus();
    }
    case Kind::kPrepend:
      if (!text->empty()) text->insert(0, step.text);
      return absl::OkStatus();
    case Kind::kReplace: {
      HS_ASSIGN_OR_RETURN(const std::vector<PatternSpan> spans,
                          step.pattern->FindMatches(*text));
      std::string out;
      out.reserve(text->size());
      for (const PatternSpan& s : spans) {
        if (s.is_match) {
          out.append(step.text);
        } else {
          out.append(*text, s.begin, s.end - s.begin);
        }
      }
      *text = std::move(out);
      return absl::OkStatus();
    }
    case Kind::kStrip:
      StripWhitespace(step.left, step.right, text);
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine::tokenizer
