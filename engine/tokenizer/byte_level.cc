#include "engine/tokenizer/byte_level.h"

#include <array>

#include "engine/tokenizer/unicode_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

struct Tables {
  std::array<std::string, 256> byte_to_char;
  std::array<int, 512> char_to_byte;  // every mapped character is below U+0200

  Tables() {
    char_to_byte.fill(-1);
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const char32_t c = printable(b) ? static_cast<char32_t>(b) : 256 + n++;
      AppendUtf8(c, &byte_to_char[b]);
      char_to_byte[c] = b;
    }
  }
};

const Tables& GetTables() {
  static const Tables* tables = new Tables();
  return *tables;
}

}  // namespace

std::string_view ByteLevelChar(unsigned char b) { return GetTables().byte_to_char[b]; }

int ByteLevelByte(char32_t c) {
  return c < 512 ? GetTables().char_to_byte[c] : -1;
}

void AppendByteLevel(std::string_view text, std::string* out) {
  const Tables& t = GetTables();
  for (char c : text) out->append(t.byte_to_char[static_cast<unsigned char>(c)]);
}

}  // namespace hybridserve::engine::tokenizer
