#include "engine/tokenizer/post_processor.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/tokenizer/json_fields.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

absl::Status Malformed(std::string_view where, std::string_view what) {
  return absl::InvalidArgumentError(Cat("tokenizer.json: ", where, ": ", what));
}

// A ["token", id] pair of Bert/RobertaProcessing.
absl::StatusOr<int32_t> PairId(const rapidjson::Value& json, const char* key,
                               std::string_view where) {
  const rapidjson::Value* v = FindField(json, key);
  if (v == nullptr || !v->IsArray() || v->Size() != 2 || !(*v)[1].IsInt()) {
    return Malformed(where, Cat(key, " must be [\"token\", id]"));
  }
  return (*v)[1].GetInt();
}

}  // namespace

absl::StatusOr<PostProcessor> PostProcessor::FromJson(const rapidjson::Value& json) {
  PostProcessor p;
  HS_RETURN_IF_ERROR(AddSteps(json, "post_processor", &p.steps_));
  return p;
}

absl::Status PostProcessor::AddSteps(const rapidjson::Value& json, std::string_view where,
                                     std::vector<std::vector<Item>>* steps) {
  HS_ASSIGN_OR_RETURN(const std::string type, ComponentType(json, where));
  if (type == "Sequence") {
    const rapidjson::Value* list = FindField(json, "processors");
    if (list == nullptr || !list->IsArray()) return Malformed(where, "processors must be a list");
    for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
      HS_RETURN_IF_ERROR(
          AddSteps((*list)[i], Cat(where, ".processors[", i, "]"), steps));
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") return absl::OkStatus();
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    HS_ASSIGN_OR_RETURN(const int32_t cls, PairId(json, "cls", where));
    HS_ASSIGN_OR_RETURN(const int32_t sep, PairId(json, "sep", where));
    steps->push_back({Item{false, {cls}}, Item{true, {}}, Item{false, {sep}}});
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return absl::UnimplementedError(Cat(
        "tokenizer.json: ", where, ": post_processor type \"", type, "\" is not supported"));
  }
  const rapidjson::Value* single = FindField(json, "single");
  const rapidjson::Value* specials = FindField(json, "special_tokens");
  if (single == nullptr || !single->IsArray()) return Malformed(where, "single must be a list");
  std::vector<Item> items;
  for (rapidjson::SizeType i = 0; i < single->Size(); ++i) {
    const rapidjson::Value& piece = (*single)[i];
    if (FindField(piece, "Sequence") != nullptr) {
      items.push_back(Item{true, {}});
      continue;
    }
    const rapidjson::Value* special = FindField(piece, "SpecialToken");
    if (special == nullptr) return Malformed(where, "a template piece is neither Sequence nor SpecialToken");
    HS_ASSIGN_OR_RETURN(const std::string name, RequiredString(*special, "id", where));
    const rapidjson::Value* entry =
        specials == nullptr ? nullptr : FindField(*specials, name.c_str());
    const rapidjson::Value* ids = entry == nullptr ? nullptr : FindField(*entry, "ids");
    if (ids == nullptr || !ids->IsArray()) {
      return Malformed(where, Cat("special token \"", name, "\" has no ids"));
    }
    Item item;
    for (rapidjson::SizeType k = 0; k < ids->Size(); ++k) {
      if (!(*ids)[k].IsInt()) return Malformed(where, "special token ids must be integers");
      item.ids.push_back((*ids)[k].GetInt());
    }
    items.push_back(std::move(item));
  }
  steps->push_back(std::move(items));
  return absl::OkStatus();
}

void PostProcessor::Apply(std::vector<int32_t>* ids) const {
  for (const std::vector<Item>& items : steps_) {
    std::vector<int32_t> out;
    out.reserve(ids->size() + 4);
    for (const Item& item : items) {
      if (item.is_sequence) {
        out.insert(out.end(), ids->begin(), ids->end());
      } else {
        out.insert(out.end(), item.ids.begin(), item.ids.end());
      }
    }
    *ids = std::move(out);
  }
}

}  // namespace hybridserve::engine::tokenizer
