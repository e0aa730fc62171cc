#include "engine/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/tokenizer/json_fields.h"
#include "engine/tokenizer/unicode_util.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

// The code point that ends at byte `end` (exclusive) of valid UTF-8 `s`.
char32_t CodePointBefore(std::string_view s, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return NextCodePoint(s, &start);
}

// Start of the run of whitespace that ends `s` (s.size() when none).
size_t TrailingWhitespaceStart(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t pos = start;
    if (!IsWhitespace(NextCodePoint(s, &pos))) break;
    end = start;
  }
  return end;
}

// Length of the run of whitespace that starts `s`.
size_t LeadingWhitespaceLength(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    size_t next = pos;
    if (!IsWhitespace(NextCodePoint(s, &next))) break;
    pos = next;
  }
  return pos;
}

}  // namespace

void AddedVocabulary::Matcher::Add(std::string_view pattern, int32_t id) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (char c : pattern) {
    const auto byte = static_cast<unsigned char>(c);
    const uint64_t key = (static_cast<uint64_t>(node) << 8) | byte;
    auto it = edges_.find(key);
    if (it == edges_.end()) {
      const auto child = static_cast<int32_t>(terminal_id_.size());
      terminal_id_.push_back(-1);
      it = edges_.emplace(key, child).first;
    }
    node = it->second;
  }
  terminal_id_[node] = id;
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  ++num_patterns_;
}

bool AddedVocabulary::Matcher::Find(std::string_view text, size_t from, size_t* begin,
                                    size_t* end, int32_t* id) const {
  if (num_patterns_ == 0) return false;
  for (size_t i = from; i < text.size(); ++i) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) continue;
    int32_t node = 0;
    int32_t best_id = -1;
    size_t best_end = 0;
    for (size_t j = i; j < text.size(); ++j) {
      const uint64_t key =
          (static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[j]);
      auto it = edges_.find(key);
      if (it == edges_.end()) break;
      node = it->second;
      if (terminal_id_[node] >= 0) {
        best_id = terminal_id_[node];
        best_end = j + 1;
      }
    }
    if (best_id >= 0) {
      *begin = i;
      *end = best_end;
      *id = best_id;
      return true;
    }
  }
  return false;
}

absl::StatusOr<AddedVocabulary> AddedVocabulary::Build(const rapidjson::Value* json,
                                                       const BpeModel& model,
                                                       const Normalizer* normalizer) {
  AddedVocabulary v;
  if (json == nullptr) return v;
  if (!json->IsArray()) {
    return absl::InvalidArgumentError("tokenizer.json: added_tokens must be a list");
  }
  int32_t next_id = model.vocab_entries();
  for (rapidjson::SizeType i = 0; i < json->Size(); ++i) {
    const rapidjson::Value& entry = (*json)[i];
    const std::string where = Cat("added_tokens[", i, "]");
    AddedToken t;
    HS_ASSIGN_OR_RETURN(t.content, RequiredString(entry, "content", where));
    HS_RETURN_IF_ERROR(ValidateUtf8(t.content));
    HS_ASSIGN_OR_RETURN(t.single_word, OptionalBool(entry, "single_word", false, where));
    HS_ASSIGN_OR_RETURN(t.lstrip, OptionalBool(entry, "lstrip", false, where));
    HS_ASSIGN_OR_RETURN(t.rstrip, OptionalBool(entry, "rstrip", false, where));
    HS_ASSIGN_OR_RETURN(t.special, OptionalBool(entry, "special", false, where));
    HS_ASSIGN_OR_RETURN(t.normalized, OptionalBool(entry, "normalized", !t.special, where));
    if (t.content.empty()) continue;

    if (auto it = v.by_content_.find(t.content); it != v.by_content_.end()) {
      t.id = it->second;
    } else if (std::optional<int32_t> id = model.TokenToId(t.content)) {
      t.id = *id;
    } else {
      t.id = next_id++;
    }
    v.normalized_form_.erase(t.id);
    if (t.normalized && normalizer != nullptr) {
      std::string normalized = t.content;
      HS_RETURN_IF_ERROR(normalizer->Apply(&normalized));
      if (normalized != t.content) v.normalized_form_[t.id] = std::move(normalized);
    }
    if (t.special) v.special_contents_.insert(t.content);
    v.by_content_[t.content] = t.id;
    v.id_bound_ = std::max(v.id_bound_, t.id + 1);
    v.by_id_[t.id] = std::move(t);
  }
  for (const auto& [id, t] : v.by_id_) {
    if (t.normalized) {
      auto it = v.normalized_form_.find(id);
      v.normalized_matcher_.Add(it == v.normalized_form_.end() ? t.content : it->second, id);
    } else {
      v.raw_matcher_.Add(t.content, id);
    }
  }
  return v;
}

std::optional<int32_t> AddedVocabulary::TokenToId(std::string_view content) const {
  auto it = by_content_.find(AbslView(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

const std::string* AddedVocabulary::IdToToken(int32_t id) const {
  if (auto n = normalized_form_.find(id); n != normalized_form_.end()) return &n->second;
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second.content;
}

void AddedVocabulary::SplitWith(const Matcher& matcher, const Piece& piece,
                                bool split_special_tokens,
                                std::vector<Segment>* out) const {
  const std::string& s = piece.text;
  auto push_text = [&](size_t begin, size_t end) {
    if (begin < end) {
      out->push_back(Segment{Piece{s.substr(begin, end - begin), piece.at_origin && begin == 0},
                             -1});
    }
  };
  size_t start_offset = 0;
  size_t from = 0;
  size_t begin, end;
  int32_t id;
  while (matcher.Find(s, from, &begin, &end, &id)) {
    from = end;
    const AddedToken& token = by_id_.at(id);
    if (split_special_tokens && special_contents_.contains(token.content)) continue;
    if (token.single_word) {
      const bool space_before = begin == 0 || !IsWordChar(CodePointBefore(s, begin));
      size_t after = end;
      const bool space_after = end == s.size() || !IsWordChar(NextCodePoint(s, &after));
      if (!space_before || !space_after) continue;
    }
    size_t start = begin;
    size_t stop = end;
    if (token.lstrip) {
      start = std::max(TrailingWhitespaceStart(std::string_view(s).substr(0, start)),
                       start_offset);
    }
    if (token.rstrip) stop += LeadingWhitespaceLength(std::string_view(s).substr(stop));
    push_text(start_offset, start);
    out->push_back(Segment{Piece{s.substr(start, stop - start), piece.at_origin && start == 0},
                           id});
    start_offset = stop;
  }
  push_text(start_offset, s.size());
}

absl::Status AddedVocabulary::ExtractAndNormalize(std::string_view text,
                                                  const Normalizer* normalizer,
                                                  bool split_special_tokens,
                                                  std::vector<Segment>* out) const {
  std::vector<Segment> raw;
  SplitWith(raw_matcher_, Piece{std::string(text), true}, split_special_tokens, &raw);
  for (Segment& seg : raw) {
    if (seg.id >= 0) {
      out->push_back(std::move(seg));
      continue;
    }
    if (normalizer != nullptr) HS_RETURN_IF_ERROR(normalizer->Apply(&seg.piece.text));
    if (seg.piece.text.empty()) continue;
    SplitWith(normalized_matcher_, seg.piece, split_special_tokens, out);
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine::tokenizer
