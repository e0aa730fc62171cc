// UTF-8 and Unicode helpers shared by the tokenizer's parts: decoding code
// points, validation, lossy decoding with the replacement policy of Rust's
// String::from_utf8_lossy (one U+FFFD per maximal ill-formed subpart, the
// Unicode-recommended practice), character classes as the Hugging Face
// `tokenizers` library defines them, and normalization forms (utf8proc).
// Stateless; thread-safe.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_UNICODE_UTIL_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_UNICODE_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {


inline constexpr char32_t kReplacementChar = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// Appends the UTF-8 encoding of `cp` (REQUIRES: a Unicode scalar value).
void AppendUtf8(char32_t cp, std::string* out);

// Decodes the code point starting at `s[*pos]` and advances *pos past it.
// REQUIRES: `s` is valid UTF-8 and *pos < s.size() is at a character boundary.
char32_t NextCodePoint(std::string_view s, size_t* pos);

// Length in bytes of the character starting at s[pos] in valid UTF-8.
size_t Utf8CharLength(unsigned char lead);

// OK when `s` is valid UTF-8; otherwise INVALID_ARGUMENT naming the byte offset.
absl::Status ValidateUtf8(std::string_view s);

// Lossy decoding of `bytes` to valid UTF-8, appended to *out; returns the
// number of bytes consumed. With `final` == false a trailing sequence that is a
// valid but incomplete prefix of a character is left unconsumed (more bytes may
// complete it); with `final` == true it becomes U+FFFD.
size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out);

// Character classes, as the Rust standard library and `regex` crate define them.
bool IsWhitespace(char32_t c);   // char::is_whitespace (White_Space)
bool IsNumeric(char32_t c);      // char::is_numeric (Nd, Nl, No)
bool IsWordChar(char32_t c);     // regex `\w` (alphabetic, marks, Nd, Pc, joiners)

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// REQUIRES: `s` is valid UTF-8.
absl::StatusOr<std::string> Normalize(std::string_view s, NormalForm form);

// Per-character full lowercase mapping (Rust's char::to_lowercase).
std::string Lowercase(std::string_view s);

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_UNICODE_UTIL_H_
