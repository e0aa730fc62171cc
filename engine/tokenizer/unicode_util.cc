#include "engine/tokenizer/unicode_util.h"

#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "utf8proc.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

// For a lead byte, the number of continuation bytes and the allowed range of
// the first continuation byte (Unicode Table 3-7, well-formed byte sequences).
struct LeadInfo {
  int continuation;  // -1: not a valid lead byte
  unsigned char lo;
  unsigned char hi;
};

LeadInfo Lead(unsigned char b) {
  if (b < 0x80) return {0, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {2, 0x80, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};
  if (b == 0xF0) return {3, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};
  return {-1, 0, 0};
}

// Examines the sequence at bytes[pos]. Returns the length of a complete valid
// character (> 0) and sets *valid; or the length of the maximal ill-formed
// subpart (>= 1) with *valid false; *incomplete is set when the sequence is a
// valid prefix cut short by the end of `bytes`.
size_t Examine(std::string_view bytes, size_t pos, bool* valid, bool* incomplete) {
  *valid = false;
  *incomplete = false;
  const auto b0 = static_cast<unsigned char>(bytes[pos]);
  LeadInfo info = Lead(b0);
  if (info.continuation == 0) {
    *valid = true;
    return 1;
  }
  if (info.continuation < 0) return 1;
  size_t i = 1;
  for (int k = 0; k < info.continuation; ++k, ++i) {
    if (pos + i >= bytes.size()) {
      *incomplete = true;
      return i;
    }
    const auto b = static_cast<unsigned char>(bytes[pos + i]);
    const unsigned char lo = k == 0 ? info.lo : 0x80;
    const unsigned char hi = k == 0 ? info.hi : 0xBF;
    if (b < lo || b > hi) return i;
  }
  *valid = true;
  return i;
}

}  // namespace

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t Utf8CharLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

char32_t NextCodePoint(std::string_view s, size_t* pos) {
  const auto b0 = static_cast<unsigned char>(s[*pos]);
  const size_t len = Utf8CharLength(b0);
  char32_t cp;
  switch (len) {
    case 1:
      cp = b0;
      break;
    case 2:
      cp = ((b0 & 0x1F) << 6) | (static_cast<unsigned char>(s[*pos + 1]) & 0x3F);
      break;
    case 3:
      cp = ((b0 & 0x0F) << 12) |
           ((static_cast<unsigned char>(s[*pos + 1]) & 0x3F) << 6) |
           (static_cast<unsigned char>(s[*pos + 2]) & 0x3F);
      break;
    default:
      cp = ((b0 & 0x07) << 18) |
           ((static_cast<unsigned char>(s[*pos + 1]) & 0x3F) << 12) |
           ((static_cast<unsigned char>(s[*pos + 2]) & 0x3F) << 6) |
           (static_cast<unsigned char>(s[*pos + 3]) & 0x3F);
      break;
  }
  *pos += len;
  return cp;
}

absl::Status ValidateUtf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    // Fast path for ASCII runs.
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    bool valid, incomplete;
    const size_t n = Examine(s, pos, &valid, &incomplete);
    if (!valid) {
      return absl::InvalidArgumentError(
          Cat("text is not valid UTF-8 (byte offset ", pos, ")"));
    }
    pos += n;
  }
  return absl::OkStatus();
}

size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    bool valid, incomplete;
    const size_t n = Examine(bytes, pos, &valid, &incomplete);
    if (valid) {
      out->append(bytes.substr(pos, n));
    } else if (incomplete && !final) {
      return pos;
    } else {
      out->append(kReplacementUtf8);
    }
    pos += n;
  }
  return pos;
}

bool IsWhitespace(char32_t c) {
  if (c >= 0x09 && c <= 0x0D) return true;
  switch (c) {
    case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

bool IsNumeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL ||
         cat == UTF8PROC_CATEGORY_NO;
}

bool IsWordChar(char32_t c) {
  if (c < 0x80) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
  }
  if (c == 0x200C || c == 0x200D) return true;  // Join_Control
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<std::string> Normalize(std::string_view s, NormalForm form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNfc: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::kNfd: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::kNfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::kNfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
      static_cast<utf8proc_ssize_t>(s.size()), &result,
      static_cast<utf8proc_option_t>(options));
  if (n < 0) {
    return absl::InvalidArgumentError(
        Cat("Unicode normalization failed: ", utf8proc_errmsg(n)));
  }
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(result, &std::free);
  return std::string(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
}

std::string Lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    const char32_t c = NextCodePoint(s, &pos);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
    } else if (c == 0x130) {  // The one unconditional multi-character mapping.
      AppendUtf8('i', &out);
      AppendUtf8(0x307, &out);
    } else {
      AppendUtf8(static_cast<char32_t>(
                     utf8proc_tolower(static_cast<utf8proc_int32_t>(c))),
                 &out);
    }
  }
  return out;
}

}  // namespace hybridserve::engine::tokenizer
