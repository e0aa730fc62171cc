// Added tokens of tokenizer.json ("added_tokens"): special and non-special
// tokens matched in the input before the model sees it, with the semantics of
// Hugging Face `tokenizers`:
//  * tokens with normalized == false are found in the raw input first; the
//    text between them is normalized (piece by piece), and tokens with
//    normalized == true are then found, by their normalized form, in that text;
//  * matching is leftmost-longest, non-overlapping;
//  * single_word: a match touching a word character (regex \w) on either side
//    is skipped; lstrip / rstrip: the token also takes the whitespace on its
//    left / right;
//  * ids: a token already in the model's vocabulary keeps that id; others are
//    numbered from the vocabulary size up, in file order (the "id" field of
//    the file is not authoritative, as in `tokenizers`).
// Immutable after construction; thread-safe.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_ADDED_VOCABULARY_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_ADDED_VOCABULARY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/bpe_model.h"
#include "engine/tokenizer/normalizers.h"
#include "engine/tokenizer/pre_tokenizers.h"
#include "engine/tokenizer/unicode_util.h"
#include "rapidjson/document.h"

namespace hybridserve::engine::tokenizer {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A part of the input after added-token extraction: either an added token
// (id >= 0) or normalized text for the pre-tokenizer and model (id == -1).
struct Segment {
  Piece piece;
  int32_t id = -1;
};

class AddedVocabulary {
 public:
  // `json` is the "added_tokens" list (may be null: none). `normalizer` may be
  // null. Fails on malformed entries or when normalizing a token fails.
  static absl::StatusOr<AddedVocabulary> Build(const rapidjson::Value* json,
                                               const BpeModel& model,
                                               const Normalizer* normalizer);

  AddedVocabulary(AddedVocabulary&&) noexcept = default;
  AddedVocabulary& operator=(AddedVocabulary&&) noexcept = default;

  // Splits `text` into added tokens and normalized pieces (empty pieces are
  // dropped). With `split_special_tokens`, special tokens are not matched (they
  // are tokenized as text). REQUIRES: `text` is valid UTF-8.
  absl::Status ExtractAndNormalize(std::string_view text, const Normalizer* normalizer,
                                   bool split_special_tokens,
                                   std::vector<Segment>* out) const;

  std::optional<int32_t> TokenToId(std::string_view content) const;
  // The text an added id decodes from (its normalized form when it is
  // normalized), or nullptr when `id` is not an added token.
  const std::string* IdToToken(int32_t id) const;
  // Whether `token` is the content of a special added token (decode's
  // skip_special_tokens compares token strings, as `tokenizers` does).
  bool IsSpecialContent(std::string_view token) const {
    return special_contents_.contains(AbslView(token));
  }
  // The tokens, by id.
  const absl::flat_hash_map<int32_t, AddedToken>& tokens() const { return by_id_; }
  // One more than the largest added id (0 when none).
  int32_t id_bound() const { return id_bound_; }

 private:
  // Leftmost-longest matcher over a set of patterns (a byte trie).
  class Matcher {
   public:
    void Add(std::string_view pattern, int32_t id);
    bool empty() const { return num_patterns_ == 0; }
    // The leftmost-longest match starting at or after `from`: sets *begin,
    // *end, *id; false when none.
    bool Find(std::string_view text, size_t from, size_t* begin, size_t* end,
              int32_t* id) const;

   private:
    absl::flat_hash_map<uint64_t, int32_t> edges_;  // (node << 8 | byte) → node
    std::vector<int32_t> terminal_id_{-1};           // per node; -1: none
    bool first_byte_[256] = {};
    int num_patterns_ = 0;
  };

  AddedVocabulary() = default;
  // Appends the splits of one piece using `matcher`.
  void SplitWith(const Matcher& matcher, const Piece& piece, bool split_special_tokens,
                 std::vector<Segment>* out) const;

  absl::flat_hash_map<int32_t, AddedToken> by_id_;
  absl::flat_hash_map<std::string, int32_t> by_content_;
  absl::flat_hash_map<int32_t, std::string> normalized_form_;  // when it differs
  absl::flat_hash_set<std::string> special_contents_;
  Matcher raw_matcher_;         // normalized == false
  Matcher normalized_matcher_;  // normalized == true, by normalized form
  int32_t id_bound_ = 0;
};

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_ADDED_VOCABULARY_H_
