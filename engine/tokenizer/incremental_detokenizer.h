// Streaming detokenization for one sequence: feed ids one at a time, get text
// pieces that are valid UTF-8 (never a split character) and whose
// concatenation, after Finish, equals Tokenizer::Decode of all the ids — which
// matches `tokenizers`' decode. Text that later ids may still change is held
// back (see decoders.h); bytes that can never form valid UTF-8 come out as
// U+FFFD as soon as that is certain.
//
// Cost per id is O(1) amortized (independent of the sequence length).
// Thread-compatible: one instance per sequence, used by one thread at a time.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_INCREMENTAL_DETOKENIZER_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_INCREMENTAL_DETOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/decoders.h"
#include "engine/tokenizer/tokenizer.h"

namespace hybridserve::engine::tokenizer {

class IncrementalDetokenizer {
 public:
  // `tokenizer` must outlive this object.
  IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens);

  // Feeds one id and appends the text that became final to *out (possibly
  // nothing). On error (INVALID_ARGUMENT: `id` has no token, or Finish was
  // called) nothing changes.
  absl::Status Step(int32_t id, std::string* out);
  // The same, returning the new text.
  absl::StatusOr<std::string> Step(int32_t id);

  // Ends the sequence: appends all text still held back. Later Step or Finish
  // calls fail / do nothing.
  void Finish(std::string* out);

  // Number of ids fed so far (skipped special tokens included).
  int64_t num_ids() const { return num_ids_; }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::unique_ptr<DecodeStream> stream_;
  bool finished_ = false;
  int64_t num_ids_ = 0;
};

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_INCREMENTAL_DETOKENIZER_H_
