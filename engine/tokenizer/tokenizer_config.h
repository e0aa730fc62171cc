// The parts of tokenizer_config.json (transformers' tokenizer settings) the
// server needs: the bos / eos / pad / unk token strings and whether a BOS or
// EOS is meant to be added. These are informational: encode(add_special_tokens)
// adds what tokenizer.json's post_processor says, as `tokenizers` does.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_TOKENIZER_CONFIG_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_TOKENIZER_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace hybridserve::engine::tokenizer {

struct TokenizerConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  // Ids of the tokens above, filled in by the Tokenizer when it knows them.
  std::optional<int32_t> bos_token_id;
  std::optional<int32_t> eos_token_id;
  std::optional<int32_t> pad_token_id;
  std::optional<int32_t> unk_token_id;
};

// Parses the text of a tokenizer_config.json. Token fields may be strings or
// {"content": ...} objects; other fields are ignored. `source` is named in
// errors.
absl::StatusOr<TokenizerConfig> ParseTokenizerConfig(std::string_view json,
                                                     std::string_view source);

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_TOKENIZER_CONFIG_H_
