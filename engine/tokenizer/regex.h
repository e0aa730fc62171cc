// Patterns of tokenizer.json ({"String": ...} literals and {"Regex": ...}) and
// the way Hugging Face `tokenizers` splits text with them.
//
// `tokenizers` compiles patterns with Oniguruma (Ruby syntax); we use PCRE2 with
// UTF, UCP (Unicode classes) and MULTILINE (Ruby's ^ and $ are line anchors),
// JIT-compiled when available. \s, \S, \w, \W and \h are rewritten to the
// Unicode definitions Oniguruma uses (White_Space; UTS #18 word characters;
// Ruby's hex digit), where PCRE2's own differ. The iteration rule for empty matches
// follows the Rust `onig` crate: an empty match right where the previous match
// ended is skipped and the search resumes one character later.
//
// Immutable after construction; Find* are thread-safe (per-thread match data).
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_REGEX_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_REGEX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hybridserve::engine::tokenizer {

// A piece of text: [begin, end) byte offsets, and whether it is a match of the
// pattern (true) or the text between matches (false).
struct PatternSpan {
  size_t begin;
  size_t end;
  bool is_match;
};

class Pattern {
 public:
  // A literal string (matched exactly, leftmost, non-overlapping).
  static absl::StatusOr<Pattern> Literal(std::string_view text);
  // A regular expression. Error names the pattern and PCRE2's message.
  static absl::StatusOr<Pattern> Regex(std::string_view regex);

  Pattern(Pattern&&) noexcept;
  Pattern& operator=(Pattern&&) noexcept;
  ~Pattern();

  // Covers all of `text` with alternating non-match / match spans, in order
  // (empty non-match spans omitted; empty text gives one empty non-match span),
  // like `tokenizers`' Pattern::find_matches.
  // REQUIRES: `text` is valid UTF-8. Fails (RESOURCE_EXHAUSTED) only when the
  // regex engine hits its backtracking limits.
  absl::StatusOr<std::vector<PatternSpan>> FindMatches(std::string_view text) const;

  // The literal text, for literal patterns (empty for regexes).
  bool is_literal() const { return is_literal_; }
  const std::string& literal() const { return literal_; }

 private:
  struct Compiled;
  Pattern() = default;

  // Appends the [begin, end) of every match, in order.
  absl::Status FindAll(std::string_view text,
                       std::vector<std::pair<size_t, size_t>>* out) const;

  bool is_literal_ = false;
  std::string literal_;
  std::unique_ptr<Compiled> compiled_;  // regexes, and the empty literal
};

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_REGEX_H_
