// The "normalizer" of tokenizer.json: NFC, NFD, NFKC, NFKD, Lowercase, Prepend,
// Replace, Strip, StripAccents and Sequence, with the semantics of Hugging Face
// `tokenizers`. Immutable after construction; thread-safe.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_NORMALIZERS_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_NORMALIZERS_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/regex.h"
#include "rapidjson/document.h"

namespace hybridserve::engine::tokenizer {

class Normalizer {
 public:
  // Parses a normalizer object (a Sequence is flattened). Unknown or
  // unsupported types fail with UNIMPLEMENTED naming the type.
  static absl::StatusOr<Normalizer> FromJson(const rapidjson::Value& json);

  Normalizer(Normalizer&&) noexcept = default;
  Normalizer& operator=(Normalizer&&) noexcept = default;

  // Normalizes *text in place. REQUIRES: *text is valid UTF-8.
  // On error *text is unspecified.
  absl::Status Apply(std::string* text) const;

 private:
  enum class Kind { kNfc, kNfd, kNfkc, kNfkd, kLowercase, kPrepend, kReplace,
                    kStrip, kStripAccents };
  struct Step {
    Kind kind;
    std::string text;              // Prepend: prefix; Replace: content
    std::optional<Pattern> pattern;  // Replace
    bool left = false;             // Strip
    bool right = false;            // Strip
  };

  Normalizer() = default;
  static absl::Status AddSteps(const rapidjson::Value& json, std::string_view where,
                               std::vector<Step>* steps);
  static absl::Status ApplyStep(const Step& step, std::string* text);

  std::vector<Step> steps_;
};

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_NORMALIZERS_H_
