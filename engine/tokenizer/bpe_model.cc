#include "engine/tokenizer/bpe_model.h"

#include <queue>
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

// A candidate merge of the symbol at `pos` with its right neighbour.
struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
};

// Orders the priority queue so that top() is the lowest rank, then leftmost.
struct CandidateAfter {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.pos > b.pos;
  }
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
    if (auto it = vocab_.find(AbslView(s)); it != vocab_.end()) {
      if (unk_id >= 0) {
        AddSymbol(unk_id, unk_len, &symbols);
        unk_id = -1;
      }
      AddSymbol(it->second, byte_len, &symbols);
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

  // 2. Merge, lowest rank first (leftmost on ties).
  std::vector<Candidate> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Candidate, std::vector<Candidate>, CandidateAfter> queue(
      CandidateAfter{}, std::move(storage));
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = FindMerge(symbols[i].id, symbols[i + 1].id)) {
      queue.push(Candidate{m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    const Symbol right = symbols[left.next];
    // Stale entries: the pair at this position changed since it was queued.
    const Merge* current = FindMerge(left.id, right.id);
    if (current == nullptr || current->new_id != top.new_id) continue;

    const int32_t right_pos = left.next;
    left.id = top.new_id;
    left.len += right.len;
    left.next = right.next;
    symbols[right_pos].len = 0;
    if (right.next >= 0) symbols[right.next].prev = top.pos;

    if (left.prev >= 0) {
      if (const Merge* m = FindMerge(symbols[left.prev].id, left.id)) {
        queue.push(Candidate{m->rank, left.prev, m->new_id});
      }
    }
    if (left.next >= 0) {
      if (const Merge* m = FindMerge(left.id, symbols[left.next].id)) {
        queue.push(Candidate{m->rank, top.pos, m->new_id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.len != 0) ids->push_back(s.id);
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine::tokenizer
