#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/tokenizer/json_fields.h"
#include "engine/tokenizer/unicode_util.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

absl::StatusOr<std::string> ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat("cannot open ", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(Cat("cannot read ", path.string()));
  return std::move(ss).str();
}

absl::Status Prefixed(const absl::Status& s, std::string_view prefix) {
  return absl::Status(s.code(), Cat(prefix, ": ", s.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(
    const std::filesystem::path& path, const TokenizerOptions& options) {
  std::filesystem::path file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) file = path / "tokenizer.json";
  HS_ASSIGN_OR_RETURN(const std::string json, ReadWholeFile(file));
  const std::filesystem::path config_path = file.parent_path() / "tokenizer_config.json";
  std::string config;
  if (std::filesystem::exists(config_path, ec)) {
    HS_ASSIGN_OR_RETURN(config, ReadWholeFile(config_path));
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = FromJson(json, config, options);
  if (!t.ok()) return Prefixed(t.status(), file.string());
  return t;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(
    std::string_view tokenizer_json, std::string_view tokenizer_config_json,
    const TokenizerOptions& options) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseNanAndInfFlag>(tokenizer_json.data(), tokenizer_json.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(
        Cat("tokenizer.json: JSON error at byte ", doc.GetErrorOffset(), ": ",
                     rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError("tokenizer.json: not a JSON object");
  }
  const rapidjson::Value* model_json = FindField(doc, "model");
  if (model_json == nullptr) return absl::InvalidArgumentError("tokenizer.json: no \"model\"");

  std::optional<Normalizer> normalizer;
  if (const rapidjson::Value* n = FindField(doc, "normalizer")) {
    HS_ASSIGN_OR_RETURN(Normalizer parsed, Normalizer::FromJson(*n));
    normalizer.emplace(std::move(parsed));
  }
  HS_ASSIGN_OR_RETURN(BpeModel model, BpeModel::FromJson(*model_json));
  HS_ASSIGN_OR_RETURN(
      AddedVocabulary added,
      AddedVocabulary::Build(FindField(doc, "added_tokens"), model,
                             normalizer.has_value() ? &*normalizer : nullptr));
  HS_ASSIGN_OR_RETURN(Decoder decoder, Decoder::FromJson(FindField(doc, "decoder")));

  std::unique_ptr<Tokenizer> t(
      new Tokenizer(std::move(model), std::move(added), std::move(decoder)));
  t->normalizer_ = std::move(normalizer);
  t->options_ = options;
  if (const rapidjson::Value* p = FindField(doc, "pre_tokenizer")) {
    HS_ASSIGN_OR_RETURN(PreTokenizer parsed, PreTokenizer::FromJson(*p));
    t->pre_tokenizer_.emplace(std::move(parsed));
  }
  if (const rapidjson::Value* p = FindField(doc, "post_processor")) {
    HS_ASSIGN_OR_RETURN(PostProcessor parsed, PostProcessor::FromJson(*p));
    t->post_processor_.emplace(std::move(parsed));
  }
  if (!tokenizer_config_json.empty()) {
    HS_ASSIGN_OR_RETURN(t->config_,
                        ParseTokenizerConfig(tokenizer_config_json, "tokenizer_config.json"));
    auto resolve = [&](const std::optional<std::string>& token) -> std::optional<int32_t> {
      return token.has_value() ? t->TokenToId(*token) : std::nullopt;
    };
    t->config_.bos_token_id = resolve(t->config_.bos_token);
    t->config_.eos_token_id = resolve(t->config_.eos_token);
    t->config_.pad_token_id = resolve(t->config_.pad_token);
    t->config_.unk_token_id = resolve(t->config_.unk_token);
  }
  t->BuildIdTable();
  return t;
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special_tokens) const {
  if (text.size() > options_.max_input_bytes) {
    return absl::InvalidArgumentError(Cat(
        "text is ", text.size(), " bytes, more than the tokenizer's limit of ",
        options_.max_input_bytes, " bytes (max_input_bytes)"));
  }
  HS_RETURN_IF_ERROR(ValidateUtf8(text));
  std::vector<Segment> segments;
  HS_RETURN_IF_ERROR(added_.ExtractAndNormalize(
      text, normalizer_.has_value() ? &*normalizer_ : nullptr,
      /*split_special_tokens=*/false, &segments));
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<Piece> pieces;
  for (Segment& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    pieces.clear();
    pieces.push_back(std::move(seg.piece));
    if (pre_tokenizer_.has_value()) HS_RETURN_IF_ERROR(pre_tokenizer_->Apply(&pieces));
    for (const Piece& p : pieces) HS_RETURN_IF_ERROR(model_.Tokenize(p.text, &ids));
  }
  if (add_special_tokens && post_processor_.has_value()) post_processor_->Apply(&ids);
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids,
                                              bool skip_special_tokens) const {
  std::vector<std::string_view> tokens;
  tokens.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string* token = IdToToken(ids[i]);
    if (token == nullptr) {
      return absl::InvalidArgumentError(Cat(
          "token id ", ids[i], " (position ", i, ") has no token; ids are in [0, ",
          vocab_size(), ")"));
    }
    if (skip_special_tokens && IsSpecialId(ids[i])) continue;
    tokens.push_back(*token);
  }
  return decoder_.Decode(tokens);
}

void Tokenizer::BuildIdTable() {
  by_id_.assign(vocab_size(), IdEntry{});
  for (int32_t id = 0; id < static_cast<int32_t>(by_id_.size()); ++id) {
    const std::string* token = added_.IdToToken(id);
    if (token == nullptr) token = model_.IdToToken(id);
    by_id_[id] = {.token = token,
                  .special = token != nullptr && added_.IsSpecialContent(*token)};
  }
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (std::optional<int32_t> id = added_.TokenToId(token)) return id;
  return model_.TokenToId(token);
}

int32_t Tokenizer::vocab_size() const {
  return std::max(model_.id_bound(), added_.id_bound());
}

}  // namespace hybridserve::engine::tokenizer
