// A Hugging Face tokenizer.json tokenizer (BPE models) that gives the same ids
// as the `tokenizers` library.
//
// Encode: added tokens are split out of the raw text, the rest is normalized,
// pre-tokenized and run through the BPE model; with add_special_tokens the
// post_processor's template adds its special ids. Decode: ids map to token
// strings (added tokens first), special tokens are dropped on request, and the
// decoder turns the tokens into text (see decoders.h). The output of Decode is
// always valid UTF-8.
//
// Immutable after loading; all methods are thread-safe.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_TOKENIZER_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_TOKENIZER_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/tokenizer/added_vocabulary.h"
#include "engine/tokenizer/bpe_model.h"
#include "engine/tokenizer/decoders.h"
#include "engine/tokenizer/normalizers.h"
#include "engine/tokenizer/post_processor.h"
#include "engine/tokenizer/pre_tokenizers.h"
#include "engine/tokenizer/tokenizer_config.h"

namespace hybridserve::engine::tokenizer {

struct TokenizerOptions {
  // Encode refuses longer inputs (INVALID_ARGUMENT). The default is generous;
  // a 16 MiB input takes a few seconds.
  size_t max_input_bytes = size_t{16} << 20;
};

class Tokenizer {
 public:
  // Loads `path`: a tokenizer.json file, or a folder holding one. A
  // tokenizer_config.json beside it is read too when present. Errors name the
  // file and what is wrong (UNIMPLEMENTED for components we do not support).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(
      const std::filesystem::path& path, const TokenizerOptions& options = {});
  // Builds from the text of a tokenizer.json (and optionally of a
  // tokenizer_config.json).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      std::string_view tokenizer_json, std::string_view tokenizer_config_json = {},
      const TokenizerOptions& options = {});

  // Text to ids. Fails with INVALID_ARGUMENT when `text` is longer than
  // max_input_bytes or is not valid UTF-8.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special_tokens) const;

  // Ids to text. Fails with INVALID_ARGUMENT naming the first id that has no
  // token (outside [0, vocab_size()) or a gap in the vocabulary).
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                     bool skip_special_tokens) const;

  // The token string of `id` as decoding sees it (added tokens first), or
  // nullptr when no token has this id. O(1): a table built at load.
  const std::string* IdToToken(int32_t id) const {
    return id >= 0 && id < static_cast<int32_t>(by_id_.size()) ? by_id_[id].token : nullptr;
  }
  // Whether decode with skip_special_tokens drops id `id` (a special added
  // token). O(1).
  bool IsSpecialId(int32_t id) const {
    return id >= 0 && id < static_cast<int32_t>(by_id_.size()) && by_id_[id].special;
  }
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // Whether decode with skip_special_tokens drops `token` (a special added
  // token's content).
  bool IsSpecialToken(std::string_view token) const {
    return added_.IsSpecialContent(token);
  }
  // One more than the largest id (model or added).
  int32_t vocab_size() const;

  const TokenizerConfig& config() const { return config_; }
  const Decoder& decoder() const { return decoder_; }
  const TokenizerOptions& options() const { return options_; }

 private:
  Tokenizer(BpeModel model, AddedVocabulary added, Decoder decoder)
      : model_(std::move(model)), added_(std::move(added)), decoder_(std::move(decoder)) {}
  // Fills by_id_ once model_ and added_ are final (their strings do not move
  // afterwards: the tokenizer is never moved or changed after load).
  void BuildIdTable();

  struct IdEntry {
    const std::string* token = nullptr;  // into model_ or added_
    bool special = false;
  };

  BpeModel model_;
  AddedVocabulary added_;
  Decoder decoder_;
  std::optional<Normalizer> normalizer_;
  std::optional<PreTokenizer> pre_tokenizer_;
  std::optional<PostProcessor> post_processor_;
  TokenizerConfig config_;
  TokenizerOptions options_;
  std::vector<IdEntry> by_id_;  // [vocab_size()]
};

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_TOKENIZER_H_
