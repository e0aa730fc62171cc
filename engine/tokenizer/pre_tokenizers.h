// The "pre_tokenizer" of tokenizer.json: ByteLevel, Split, Metaspace, Digits,
// Whitespace, WhitespaceSplit and Sequence, with the semantics of Hugging Face
// `tokenizers` (split behaviours Removed, Isolated, MergedWithPrevious,
// MergedWithNext, Contiguous; `invert`). Immutable; thread-safe.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_PRE_TOKENIZERS_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_PRE_TOKENIZERS_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/regex.h"
#include "rapidjson/document.h"

namespace hybridserve::engine::tokenizer {

// A piece of the (normalized) input on its way to the model.
struct Piece {
  std::string text;
  // Whether the piece starts at offset 0 of the original input (Metaspace's
  // prepend_scheme "first" looks at this).
  bool at_origin = false;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext,
                           kContiguous };

// Splits `text` according to `spans` (alternating match / non-match spans that
// cover it) and `behavior`; appends the non-empty results to *out.
void SplitBySpans(const Piece& piece, const std::vector<PatternSpan>& spans,
                  SplitBehavior behavior, std::vector<Piece>* out);

class PreTokenizer {
 public:
  // Parses a pre_tokenizer object (a Sequence is flattened). Unsupported types
  // fail with UNIMPLEMENTED naming the type.
  static absl::StatusOr<PreTokenizer> FromJson(const rapidjson::Value& json);

  PreTokenizer(PreTokenizer&&) noexcept = default;
  PreTokenizer& operator=(PreTokenizer&&) noexcept = default;

  // Splits (and, for ByteLevel, maps) each piece; empty pieces are dropped.
  // On error *pieces is unspecified.
  absl::Status Apply(std::vector<Piece>* pieces) const;

 private:
  enum class Kind { kByteLevel, kSplit, kMetaspace, kDigits, kWhitespace,
                    kWhitespaceSplit };
  enum class Prepend { kAlways, kFirst, kNever };
  struct Step {
    Kind kind;
    std::optional<Pattern> pattern;  // ByteLevel (when use_regex), Split, Whitespace
    SplitBehavior behavior = SplitBehavior::kIsolated;  // Split
    bool invert = false;                                // Split
    bool add_prefix_space = false;                      // ByteLevel
    std::string replacement;                            // Metaspace (UTF-8)
    Prepend prepend = Prepend::kAlways;                 // Metaspace
    bool split = true;                                  // Metaspace
    bool individual_digits = false;                     // Digits
  };

  PreTokenizer() = default;
  static absl::Status AddSteps(const rapidjson::Value& json, std::string_view where,
                               std::vector<Step>* steps);
  static absl::Status ApplyStep(const Step& step, std::vector<Piece>* pieces);

  std::vector<Step> steps_;
};

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_PRE_TOKENIZERS_H_
