#include "engine/tokenizer/pre_tokenizers.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/json_fields.h"
#include "engine/tokenizer/unicode_util.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

// Spans for a per-character predicate: every matching character is its own
// match; the runs between are non-matches (tokenizers' Fn(char) pattern).
template <typename Predicate>
std::vector<PatternSpan> CharSpans(std::string_view text, Predicate is_match) {
  std::vector<PatternSpan> spans;
  if (text.empty()) {
    spans.push_back({0, 0, false});
    return spans;
  }
  size_t last = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t c = NextCodePoint(text, &pos);
    if (is_match(c)) {
      if (last < start) spans.push_back({last, start, false});
      spans.push_back({start, pos, true});
      last = pos;
    }
  }
  if (last < text.size()) spans.push_back({last, text.size(), false});
  return spans;
}

absl::StatusOr<SplitBehavior> ParseBehavior(const rapidjson::Value& json,
                                            std::string_view where) {
  HS_ASSIGN_OR_RETURN(const std::string b, RequiredString(json, "behavior", where));
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return absl::InvalidArgumentError(
      Cat("tokenizer.json: ", where, ": unknown split behavior \"", b, "\""));
}

void ReplaceAll(std::string* text, std::string_view from, std::string_view to) {
  if (text->find(from) == std::string::npos) return;
  std::string out;
  size_t pos = 0;
  size_t hit;
  while ((hit = text->find(from, pos)) != std::string::npos) {
    out.append(*text, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(*text, pos, std::string::npos);
  *text = std::move(out);
}

}  // namespace

void SplitBySpans(const Piece& piece, const std::vector<PatternSpan>& spans,
                  SplitBehavior behavior, std::vector<Piece>* out) {
  // (begin, end) ranges to keep, in order.
  std::vector<std::pair<size_t, size_t>> keep;
  keep.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const PatternSpan& s : spans) keep.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::kRemoved:
      for (const PatternSpan& s : spans) {
        if (!s.is_match) keep.emplace_back(s.begin, s.end);
      }
      break;
    case SplitBehavior::kContiguous: {
      bool previous = false;
      for (const PatternSpan& s : spans) {
        if (s.is_match == previous && !keep.empty()) {
          keep.back().second = s.end;
        } else {
          keep.emplace_back(s.begin, s.end);
        }
        previous = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous = false;
      for (const PatternSpan& s : spans) {
        if (s.is_match && !previous && !keep.empty()) {
          keep.back().second = s.end;
        } else {
          keep.emplace_back(s.begin, s.end);
        }
        previous = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous && !keep.empty()) {
          keep.back().first = it->begin;
        } else {
          keep.emplace_back(it->begin, it->end);
        }
        previous = it->is_match;
      }
      std::reverse(keep.begin(), keep.end());
      break;
    }
  }
  for (const auto& [begin, end] : keep) {
    if (begin == end) continue;
    out->push_back(Piece{piece.text.substr(begin, end - begin),
                         piece.at_origin && begin == 0});
  }
}

absl::StatusOr<PreTokenizer> PreTokenizer::FromJson(const rapidjson::Value& json) {
  PreTokenizer p;
  HS_RETURN_IF_ERROR(AddSteps(json, "pre_tokenizer", &p.steps_));
  return p;
}

absl::Status PreTokenizer::AddSteps(const rapidjson::Value& json, std::string_view where,
                                    std::vector<Step>* steps) {
  HS_ASSIGN_OR_RETURN(const std::string type, ComponentType(json, where));
  if (type == "Sequence") {
    const rapidjson::Value* list = FindField(json, "pretokenizers");
    if (list == nullptr || !list->IsArray()) {
      return absl::InvalidArgumentError(
          Cat("tokenizer.json: ", where, ".pretokenizers must be a list"));
    }
    for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
      HS_RETURN_IF_ERROR(
          AddSteps((*list)[i], Cat(where, ".pretokenizers[", i, "]"), steps));
    }
    return absl::OkStatus();
  }
  Step step;
  if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
    HS_ASSIGN_OR_RETURN(step.add_prefix_space,
                        OptionalBool(json, "add_prefix_space", true, where));
    HS_ASSIGN_OR_RETURN(const bool use_regex, OptionalBool(json, "use_regex", true, where));
    if (use_regex) {
      HS_ASSIGN_OR_RETURN(Pattern p, Pattern::Regex(kByteLevelRegex));
      step.pattern.emplace(std::move(p));
    }
  } else if (type == "Split") {
    step.kind = Kind::kSplit;
    HS_ASSIGN_OR_RETURN(Pattern p, RequiredPattern(json, "pattern", where));
    step.pattern.emplace(std::move(p));
    HS_ASSIGN_OR_RETURN(step.behavior, ParseBehavior(json, where));
    HS_ASSIGN_OR_RETURN(step.invert, OptionalBool(json, "invert", false, where));
  } else if (type == "Metaspace") {
    step.kind = Kind::kMetaspace;
    HS_ASSIGN_OR_RETURN(const char32_t r, RequiredChar(json, "replacement", where));
    AppendUtf8(r, &step.replacement);
    HS_ASSIGN_OR_RETURN(const std::string scheme,
                        OptionalString(json, "prepend_scheme", "always", where));
    if (scheme == "always") {
      step.prepend = Prepend::kAlways;
    } else if (scheme == "first") {
      step.prepend = Prepend::kFirst;
    } else if (scheme == "never") {
      step.prepend = Prepend::kNever;
    } else {
      return absl::InvalidArgumentError(Cat(
          "tokenizer.json: ", where, ": unknown prepend_scheme \"", scheme, "\""));
    }
    // Legacy files carry add_prefix_space; false means "never".
    const rapidjson::Value* aps = FindField(json, "add_prefix_space");
    if (aps != nullptr && aps->IsBool() && !aps->GetBool()) {
      if (step.prepend != Prepend::kNever && FindField(json, "prepend_scheme") != nullptr) {
        return absl::InvalidArgumentError(Cat(
            "tokenizer.json: ", where, ": add_prefix_space does not match prepend_scheme"));
      }
      step.prepend = Prepend::kNever;
    }
    HS_ASSIGN_OR_RETURN(step.split, OptionalBool(json, "split", true, where));
  } else if (type == "Digits") {
    step.kind = Kind::kDigits;
    HS_ASSIGN_OR_RETURN(step.individual_digits,
                        OptionalBool(json, "individual_digits", false, where));
  } else if (type == "Whitespace") {
    step.kind = Kind::kWhitespace;
    HS_ASSIGN_OR_RETURN(Pattern p, Pattern::Regex(R"(\w+|[^\w\s]+)"));
    step.pattern.emplace(std::move(p));
  } else if (type == "WhitespaceSplit") {
    step.kind = Kind::kWhitespaceSplit;
  } else {
    return absl::UnimplementedError(
        Cat("tokenizer.json: ", where, ": pre_tokenizer type \"", type,
                     "\" is not supported"));
  }
  steps->push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status PreTokenizer::Apply(std::vector<Piece>* pieces) const {
  for (const Step& step : steps_) HS_RETURN_IF_ERROR(ApplyStep(step, pieces));
  return absl::OkStatus();
}

absl::Status PreTokenizer::ApplyStep(const Step& step, std::vector<Piece>* pieces) {
  std::vector<Piece> out;
  out.reserve(pieces->size());
  for (Piece& piece : *pieces) {
    switch (step.kind) {
      case Kind::kByteLevel: {
        if (step.add_prefix_space && (piece.text.empty() || piece.text[0] != ' ')) {
          piece.text.insert(0, " ");
        }
        const size_t first = out.size();
        if (step.pattern.has_value()) {
          HS_ASSIGN_OR_RETURN(const std::vector<PatternSpan> spans,
                              step.pattern->FindMatches(piece.text));
          SplitBySpans(piece, spans, SplitBehavior::kIsolated, &out);
        } else if (!piece.text.empty()) {
          out.push_back(std::move(piece));
        }
        for (size_t i = first; i < out.size(); ++i) {
          std::string mapped;
          mapped.reserve(out[i].text.size() * 2);
          AppendByteLevel(out[i].text, &mapped);
          out[i].text = std::move(mapped);
        }
        break;
      }
      case Kind::kSplit: {
        HS_ASSIGN_OR_RETURN(std::vector<PatternSpan> spans,
                            step.pattern->FindMatches(piece.text));
        if (step.invert) {
          for (PatternSpan& s : spans) s.is_match = !s.is_match;
        }
        SplitBySpans(piece, spans, step.behavior, &out);
        break;
      }
      case Kind::kMetaspace: {
        ReplaceAll(&piece.text, " ", step.replacement);
        const bool starts_with_replacement =
            piece.text.compare(0, step.replacement.size(), step.replacement) == 0;
        if (!starts_with_replacement &&
            (step.prepend == Prepend::kAlways ||
             (step.prepend == Prepend::kFirst && piece.at_origin))) {
          piece.text.insert(0, step.replacement);
        }
        if (!step.split) {
          if (!piece.text.empty()) out.push_back(std::move(piece));
          break;
        }
        size_t pos = 0;
        const char32_t r = NextCodePoint(step.replacement, &pos);
        SplitBySpans(piece, CharSpans(piece.text, [r](char32_t c) { return c == r; }),
                     SplitBehavior::kMergedWithNext, &out);
        break;
      }
      case Kind::kDigits:
        SplitBySpans(piece, CharSpans(piece.text, IsNumeric),
                     step.individual_digits ? SplitBehavior::kIsolated
                                            : SplitBehavior::kContiguous,
                     &out);
        break;
      case Kind::kWhitespace: {
        HS_ASSIGN_OR_RETURN(std::vector<PatternSpan> spans,
                            step.pattern->FindMatches(piece.text));
        for (PatternSpan& s : spans) s.is_match = !s.is_match;
        SplitBySpans(piece, spans, SplitBehavior::kRemoved, &out);
        break;
      }
      case Kind::kWhitespaceSplit:
        SplitBySpans(piece, CharSpans(piece.text, IsWhitespace), SplitBehavior::kRemoved,
                     &out);
        break;
    }
  }
  *pieces = std::move(out);
  return absl::OkStatus();
}

}  // namespace hybridserve::engine::tokenizer
