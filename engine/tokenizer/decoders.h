// The "decoder" of tokenizer.json — ByteLevel, Replace, ByteFallback, Fuse,
// Strip, Metaspace and Sequence — implemented as a streaming pipeline, so that
// the same code serves whole-sequence decoding and token-by-token streaming.
//
// Semantics follow Hugging Face `tokenizers`, where each decoder maps a list of
// token strings to a new list and the results are concatenated:
//  * ByteLevel: a token whose characters are all in the byte table becomes
//    those bytes, any other token its own UTF-8; all bytes are joined and
//    decoded lossily (U+FFFD per maximal ill-formed subpart) into one token.
//  * ByteFallback: runs of <0xAB> tokens become one token when their bytes are
//    valid UTF-8, else one U+FFFD token per byte.
//  * Fuse joins all tokens into one. Replace replaces matches in each token.
//  * Strip removes up to `start` leading and `stop` trailing `content`
//    characters from each token.
//  * Metaspace turns the replacement character into a space, except in the
//    first token (unless prepend_scheme is "never"), where it is dropped.
//  * With no decoder, tokens are joined with single spaces.
//
// A stream emits text as soon as no later token can change it, so the
// concatenation of everything a stream emits equals Decode() of the same
// tokens, and every emitted piece is valid UTF-8 (never a split character).
// Text is held back only where later tokens can change it: an incomplete UTF-8
// sequence (ByteLevel), a run of byte tokens whose validity is undecided
// (ByteFallback), trailing `content` characters a Strip may still remove, and
// a possible partial match of a Replace pattern inside a fused token.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_DECODERS_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_DECODERS_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/regex.h"
#include "rapidjson/document.h"

namespace hybridserve::engine::tokenizer {

class DecodeStream;

// Immutable description of the decoder; thread-safe. Streams refer to it, so
// it must outlive them.
class Decoder {
 public:
  // `json` may be null (no decoder: tokens joined with spaces). Unsupported
  // types fail with UNIMPLEMENTED naming the type.
  static absl::StatusOr<Decoder> FromJson(const rapidjson::Value* json);

  Decoder(Decoder&&) noexcept = default;
  Decoder& operator=(Decoder&&) noexcept = default;

  // A fresh stream (no tokens yet).
  std::unique_ptr<DecodeStream> NewStream() const;

  // Decodes a whole list of tokens (the same as one stream fed them all).
  std::string Decode(const std::vector<std::string_view>& tokens) const;

  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  struct Spec {
    Kind kind;
    std::optional<Pattern> pattern;  // Replace
    std::string content;             // Replace: replacement text
    char32_t ch = 0;                 // Strip: content; Metaspace: replacement
    size_t start = 0;                // Strip
    size_t stop = 0;                 // Strip
    bool strip_first = true;         // Metaspace: prepend_scheme != never
  };

 private:
  Decoder() = default;
  static absl::Status AddSpecs(const rapidjson::Value& json, std::string_view where,
                               std::vector<Spec>* specs);

  std::vector<Spec> specs_;  // empty: join with spaces
};

// Streaming state of one decode. Thread-compatible.
class DecodeStream {
 public:
  ~DecodeStream();
  DecodeStream(const DecodeStream&) = delete;
  DecodeStream& operator=(const DecodeStream&) = delete;

  // Feeds the next token; appends the text that became final to *out.
  void Push(std::string_view token, std::string* out);
  // Ends the stream: appends all text still held back. The stream is then
  // spent; REQUIRES: no Push or Finish afterwards.
  void Finish(std::string* out);

  class Stage;

 private:
  friend class Decoder;
  DecodeStream();

  std::vector<std::unique_ptr<Stage>> stages_;  // the last one collects output
  std::string* out_ = nullptr;
};

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_DECODERS_H_
