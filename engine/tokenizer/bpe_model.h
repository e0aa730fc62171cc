// The BPE "model" of tokenizer.json: vocabulary, merges (both the "a b" string
// and the ["a", "b"] pair formats), ignore_merges, byte_fallback (<0xAB>
// tokens), unk_token / fuse_unk, continuing_subword_prefix, end_of_word_suffix.
//
// Merging follows Hugging Face `tokenizers`: the lowest-rank pair merges first,
// the leftmost on ties; a min-heap of candidate pairs over a linked list of
// symbols makes one word O(n log n) in its length (a whole prompt is one word
// when the tokenizer has no pre-tokenizer). `dropout` is ignored (inference is
// deterministic).
//
// Immutable after construction; thread-safe.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_BPE_MODEL_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_BPE_MODEL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rapidjson/document.h"

namespace hybridserve::engine::tokenizer {

class BpeModel {
 public:
  // Parses the "model" object. Fails on a non-BPE model (UNIMPLEMENTED), on
  // merges naming tokens missing from the vocabulary, and on ids outside
  // [0, 2^26).
  static absl::StatusOr<BpeModel> FromJson(const rapidjson::Value& json);

  BpeModel(BpeModel&&) noexcept = default;
  BpeModel& operator=(BpeModel&&) noexcept = default;

  // Appends the ids of one pre-tokenized word. Characters with no token, no
  // byte fallback and no unk_token are dropped (as `tokenizers` does).
  // Fails only when unk_token is set but missing from the vocabulary.
  absl::Status Tokenize(std::string_view word, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // nullptr when no token has this id.
  const std::string* IdToToken(int32_t id) const;
  // Number of vocabulary entries (what `tokenizers` calls the vocab size).
  int32_t vocab_entries() const { return static_cast<int32_t>(vocab_.size()); }
  // One more than the largest id in the vocabulary (0 when empty).
  int32_t id_bound() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  BpeModel() = default;

  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* FindMerge(int32_t a, int32_t b) const;
  absl::Status AddMerges(const rapidjson::Value& merges);

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::vector<int32_t> rank_to_new_id_;  // by merge rank
  std::vector<int32_t> small_char_ids_;  // id of each code point < U+0800, or -1
  std::optional<std::string> unk_token_;
  std::string continuing_subword_prefix_;  // empty: none
  std::string end_of_word_suffix_;         // empty: none
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::array<int32_t, 256> byte_ids_{};  // id of "<0xAB>" per byte, or -1
};

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_BPE_MODEL_H_
