// The GPT-2 byte-to-character table of the ByteLevel pre-tokenizer and decoder:
// every byte maps to a printable character (printable Latin-1 bytes to
// themselves, the others to U+0100 + n). Built once; thread-safe.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_BYTE_LEVEL_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_BYTE_LEVEL_H_

#include <string>
#include <string_view>

namespace hybridserve::engine::tokenizer {

// The UTF-8 encoding of the character byte `b` maps to.
std::string_view ByteLevelChar(unsigned char b);

// The byte that character `c` stands for, or -1 when `c` is not in the table.
int ByteLevelByte(char32_t c);

// Appends the byte-level form of `text` (each byte replaced by its character).
void AppendByteLevel(std::string_view text, std::string* out);

// The GPT-2 pre-tokenization regex ByteLevel uses when `use_regex` is true.
inline constexpr std::string_view kByteLevelRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_BYTE_LEVEL_H_
