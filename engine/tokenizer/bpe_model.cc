#include "engine/tokenizer/bpe_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/status_macros.h"
#include "engine/tokenizer/json_fields.h"
#include "engine/tokenizer/unicode_util.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

constexpr int64_t kMaxId = int64_t{1} << 26;

// One symbol of a word being merged: a doubly linked list over a vector.
struct Symbol {
  int32_t id;
  int32_t prev;  // -1: none
  int32_t next;  // -1: none
  int32_t len;   // bytes of the word it covers; 0 once merged into its left neighbour
};

// A min-heap of candidate merges, 8-ary for cache locality (the heap of a
// 1 MB word holds about a million entries). An entry packs (rank, position of
// the left symbol) into one key, so the lowest rank pops first and the
// leftmost on ties.
class CandidateHeap {
 public:
  static uint64_t Key(int32_t rank, int32_t pos) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(rank)) << 32) |
           static_cast<uint32_t>(pos);
  }
  static int32_t Rank(uint64_t key) { return static_cast<int32_t>(key >> 32); }
  static int32_t Pos(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

  void Reserve(size_t n) { keys_.reserve(n); }
  // Adds without restoring the heap order; call Heapify before the first Pop.
  void AddUnordered(uint64_t key) { keys_.push_back(key); }
  void Heapify() {
    if (keys_.size() < 2) return;
    for (size_t i = (keys_.size() - 2) / kArity + 1; i-- > 0;) SiftDown(i);
  }
  bool empty() const { return keys_.empty(); }
  void Push(uint64_t key) {
    size_t i = keys_.size();
    keys_.push_back(key);
    while (i > 0) {
      const size_t parent = (i - 1) / kArity;
      if (keys_[parent] <= key) break;
      keys_[i] = keys_[parent];
      i = parent;
    }
    keys_[i] = key;
  }
  uint64_t Pop() {
    const uint64_t top = keys_.front();
    keys_.front() = keys_.back();
    keys_.pop_back();
    if (!keys_.empty()) SiftDown(0);
    return top;
  }

 private:
  static constexpr size_t kArity = 8;
  void SiftDown(size_t i) {
    const size_t n = keys_.size();
    const uint64_t key = keys_[i];
    while (true) {
      const size_t first = i * kArity + 1;
      if (first >= n) break;
      const size_t last = std::min(first + kArity, n);
      size_t best = first;
      for (size_t c = first + 1; c < last; ++c) {
        if (keys_[c] < keys_[best]) best = c;
      }
      if (keys_[best] >= key) break;
      keys_[i] = keys_[best];
      i = best;
    }
    keys_[i] = key;
  }
  std::vector<uint64_t> keys_;
};

void AddSymbol(int32_t id, int32_t len, std::vector<Symbol>* symbols) {
  const auto n = static_cast<int32_t>(symbols->size());
  if (n > 0) symbols->back().next = n;
  symbols->push_back(Symbol{id, n - 1, -1, len});
}

}  // namespace

absl::StatusOr<BpeModel> BpeModel::FromJson(const rapidjson::Value& json) {
  constexpr std::string_view kWhere = "model";
  if (!json.IsObject()) {
    return absl::InvalidArgumentError("tokenizer.json: model must be an object");
  }
  HS_ASSIGN_OR_RETURN(const std::string type, OptionalString(json, "type", "BPE", kWhere));
  if (type != "BPE") {
    return absl::UnimplementedError(
        Cat("tokenizer.json: model type \"", type, "\" is not supported (BPE only)"));
  }
  BpeModel m;
  const rapidjson::Value* vocab = FindField(json, "vocab");
  if (vocab == nullptr || !vocab->IsObject()) {
    return absl::InvalidArgumentError("tokenizer.json: model.vocab must be an object");
  }
  m.vocab_.reserve(vocab->MemberCount());
  for (auto it = vocab->MemberBegin(); it != vocab->MemberEnd(); ++it) {
    if (!it->value.IsInt64() || it->value.GetInt64() < 0 || it->value.GetInt64() >= kMaxId) {
      return absl::InvalidArgumentError(Cat(
          "tokenizer.json: model.vocab[\"", JsonStringView(it->name),
          "\"] must be an integer id in [0, ", kMaxId, ")"));
    }
    const auto id = static_cast<int32_t>(it->value.GetInt64());
    std::string token(JsonStringView(it->name));
    HS_RETURN_IF_ERROR(ValidateUtf8(token));
    if (static_cast<size_t>(id) >= m.id_to_token_.size()) {
      m.id_to_token_.resize(id + 1);
      m.has_id_.resize(id + 1, false);
    }
    m.id_to_token_[id] = token;
    m.has_id_[id] = true;
    m.vocab_[std::move(token)] = id;  // a repeated key: the last one wins
  }

  const rapidjson::Value* unk = FindField(json, "unk_token");
  if (unk != nullptr) {
    if (!unk->IsString()) {
      return absl::InvalidArgumentError("tokenizer.json: model.unk_token must be a string");
    }
    m.unk_token_ = std::string(JsonStringView(*unk));
  }
  HS_ASSIGN_OR_RETURN(m.continuing_subword_prefix_,
                      OptionalString(json, "continuing_subword_prefix", "", kWhere));
  HS_ASSIGN_OR_RETURN(m.end_of_word_suffix_,
                      OptionalString(json, "end_of_word_suffix", "", kWhere));
  HS_ASSIGN_OR_RETURN(m.fuse_unk_, OptionalBool(json, "fuse_unk", false, kWhere));
  HS_ASSIGN_OR_RETURN(m.byte_fallback_, OptionalBool(json, "byte_fallback", false, kWhere));
  HS_ASSIGN_OR_RETURN(m.ignore_merges_, OptionalBool(json, "ignore_merges", false, kWhere));
  m.small_char_ids_.assign(0x800, -1);
  for (char32_t c = 0; c < 0x800; ++c) {
    std::string utf8;
    AppendUtf8(c, &utf8);
    if (auto it = m.vocab_.find(AbslView(utf8)); it != m.vocab_.end()) {
      m.small_char_ids_[c] = it->second;
    }
  }
  for (int b = 0; b < 256; ++b) {
    auto it = m.vocab_.find(absl::StrFormat("<0x%02X>", b));
    m.byte_ids_[b] = it == m.vocab_.end() ? -1 : it->second;
  }

  const rapidjson::Value* merges = FindField(json, "merges");
  if (merges == nullptr || !merges->IsArray()) {
    return absl::InvalidArgumentError("tokenizer.json: model.merges must be a list");
  }
  HS_RETURN_IF_ERROR(m.AddMerges(*merges));
  return m;
}

absl::Status BpeModel::AddMerges(const rapidjson::Value& merges) {
  merges_.reserve(merges.Size());
  rank_to_new_id_.reserve(merges.Size());
  const size_t prefix_len = continuing_subword_prefix_.size();
  std::string merged;
  int32_t rank = 0;
  for (rapidjson::SizeType i = 0; i < merges.Size(); ++i) {
    const rapidjson::Value& entry = merges[i];
    std::string_view a, b;
    if (entry.IsString()) {
      const std::string_view line = JsonStringView(entry);
      if (line.rfind("#version", 0) == 0) continue;  // a merges.txt header line
      const size_t space = line.find(' ');
      if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos) {
        return absl::InvalidArgumentError(Cat(
            "tokenizer.json: model.merges[", i, "] \"", line, "\" is not two tokens"));
      }
      a = line.substr(0, space);
      b = line.substr(space + 1);
    } else if (entry.IsArray() && entry.Size() == 2 && entry[0].IsString() &&
               entry[1].IsString()) {
      a = JsonStringView(entry[0]);
      b = JsonStringView(entry[1]);
    } else {
      return absl::InvalidArgumentError(Cat(
          "tokenizer.json: model.merges[", i, "] must be \"a b\" or [\"a\", \"b\"]"));
    }
    auto ia = vocab_.find(AbslView(a));
    auto ib = vocab_.find(AbslView(b));
    merged.assign(a);
    merged.append(b.substr(std::min(prefix_len, b.size())));
    auto im = vocab_.find(merged);
    if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end()) {
      return absl::InvalidArgumentError(Cat(
          "tokenizer.json: model.merges[", i, "] (\"", a, "\", \"", b,
          "\") names a token missing from the vocabulary"));
    }
    // A repeated pair takes the later rank, as in `tokenizers`.
    merges_[PairKey(ia->second, ib->second)] = Merge{rank, im->second};
    rank_to_new_id_.push_back(im->second);
    ++rank;
  }
  return absl::OkStatus();
}

const BpeModel::Merge* BpeModel::FindMerge(int32_t a, int32_t b) const {
  auto it = merges_.find(PairKey(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(AbslView(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) {
    return nullptr;
  }
  return &id_to_token_[id];
}

absl::Status BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return absl::OkStatus();
  if (ignore_merges_) {
    if (auto it = vocab_.find(AbslView(word)); it != vocab_.end()) {
      ids->push_back(it->second);
      return absl::OkStatus();
    }
  }

  // 1. One symbol per character (or per byte through byte fallback, or unk).
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const bool affixes = !continuing_subword_prefix_.empty() || !end_of_word_suffix_.empty();
  std::string affixed;
  int32_t unk_id = -1;  // a pending unk symbol (id, byte length); -1: none
  int32_t unk_len = 0;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t start = pos;
    pos += Utf8CharLength(static_cast<unsigned char>(word[pos]));
    const auto byte_len = static_cast<int32_t>(pos - start);
    std::string_view s = word.substr(start, pos - start);
    if (affixes) {
      affixed.clear();
      if (start != 0) affixed.append(continuing_subword_prefix_);
      affixed.append(s);
      if (pos == word.size()) affixed.append(end_of_word_suffix_);
      s = affixed;
    }
    int32_t id = -1;
    if (!affixes && byte_len <= 2) {
      size_t p = 0;
      const char32_t c = NextCodePoint(s, &p);
      id = small_char_ids_[c];
    } else if (auto it = vocab_.find(AbslView(s)); it != vocab_.end()) {
      id = it->second;
    }
    if (id >= 0) {
      if (unk_id >= 0) {
        AddSymbol(unk_id, unk_len, &symbols);
        unk_id = -1;
      }
      AddSymbol(id, byte_len, &symbols);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : s) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // As in `tokenizers`, a pending unk is not flushed before these.
        for (char c : s) AddSymbol(byte_ids_[static_cast<unsigned char>(c)], 1, &symbols);
        continue;
      }
    }
    if (unk_token_.has_value()) {
      auto it = vocab_.find(*unk_token_);
      if (it == vocab_.end()) {
        return absl::InvalidArgumentError(Cat(
            "tokenizer.json: unk_token \"", *unk_token_, "\" is not in the vocabulary"));
      }
      if (unk_id >= 0 && fuse_unk_) {
        unk_len += byte_len;
      } else {
        if (unk_id >= 0) AddSymbol(unk_id, unk_len, &symbols);
        unk_id = it->second;
        unk_len = byte_len;
      }
    }
  }
  if (unk_id >= 0) AddSymbol(unk_id, unk_len, &symbols);

  // 2. Merge, lowest rank first (leftmost on ties). Like `tokenizers`, an
  // entry is stale when the pair now at its position merges into a different
  // token than the one the entry was queued for.
  CandidateHeap heap;
  heap.Reserve(symbols.size() + symbols.size() / 2);
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = FindMerge(symbols[i].id, symbols[i + 1].id)) {
      heap.AddUnordered(CandidateHeap::Key(m->rank, static_cast<int32_t>(i)));
    }
  }
  heap.Heapify();
  while (!heap.empty()) {
    const uint64_t top = heap.Pop();
    const int32_t pos = CandidateHeap::Pos(top);
    Symbol& left = symbols[pos];
    if (left.len == 0 || left.next < 0) continue;
    const Symbol right = symbols[left.next];
    const Merge* current = FindMerge(left.id, right.id);
    if (current == nullptr || current->new_id != rank_to_new_id_[CandidateHeap::Rank(top)]) {
      continue;
    }
    const int32_t right_pos = left.next;
    left.id = current->new_id;
    left.len += right.len;
    left.next = right.next;
    symbols[right_pos].len = 0;
    if (right.next >= 0) symbols[right.next].prev = pos;

    if (left.prev >= 0) {
      if (const Merge* m = FindMerge(symbols[left.prev].id, left.id)) {
        heap.Push(CandidateHeap::Key(m->rank, left.prev));
      }
    }
    if (left.next >= 0) {
      if (const Merge* m = FindMerge(left.id, symbols[left.next].id)) {
        heap.Push(CandidateHeap::Key(m->rank, pos));
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.len != 0) ids->push_back(s.id);
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine::tokenizer
