#include "engine/tokenizer/decoders.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/check.h"
#include "engine/status_macros.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/json_fields.h"
#include "engine/tokenizer/unicode_util.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {

// One step of the pipeline. Input is a sequence of fragments: a token arrives
// as one or more fragments, the first with `begin` set and the last with `end`
// set (a whole token: both). Fragments are valid UTF-8.
class DecodeStream::Stage {
 public:
  virtual ~Stage() = default;
  virtual void Push(std::string_view text, bool begin, bool end) = 0;
  // End of input: emit everything held and pass Finish on.
  virtual void Finish() { next_->Finish(); }
  void set_next(Stage* next) { next_ = next; }

 protected:
  void Emit(std::string_view text, bool begin, bool end) { next_->Push(text, begin, end); }

 private:
  Stage* next_ = nullptr;
};

namespace {

using Stage = DecodeStream::Stage;

void AppendRepeated(char32_t c, size_t n, std::string* out) {
  for (size_t i = 0; i < n; ++i) AppendUtf8(c, out);
}

// Collects the final text into the stream's current output string.
class SinkStage : public Stage {
 public:
  explicit SinkStage(std::string** out) : out_(out) {}
  void Push(std::string_view text, bool, bool) override { (*out_)->append(text); }
  void Finish() override {}

 private:
  std::string** out_;
};

// No decoder: tokens joined with single spaces.
class JoinStage : public Stage {
 public:
  void Push(std::string_view text, bool begin, bool end) override {
    if (begin && !first_) Emit(Cat(" ", text), begin, end);
    else Emit(text, begin, end);
    if (begin) first_ = false;
  }

 private:
  bool first_ = true;
};

class ReplaceStage : public Stage {
 public:
  explicit ReplaceStage(const Decoder::Spec& spec) : spec_(spec) {}

  void Push(std::string_view text, bool begin, bool end) override {
    if (begin && end) {
      Emit(ReplaceAll(text), true, true);
      return;
    }
    if (begin) {
      buffer_.clear();
      pending_begin_ = true;
      open_ = true;
    }
    buffer_.append(text);
    if (end) {
      CloseToken();
      return;
    }
    if (!spec_.pattern->is_literal()) return;  // a regex match may span fragments
    // Replace whole matches; hold back a tail that may start a match.
    const std::string& lit = spec_.pattern->literal();
    std::string out;
    size_t pos = 0;
    size_t hit;
    while ((hit = buffer_.find(lit, pos)) != std::string::npos) {
      out.append(buffer_, pos, hit - pos);
      out.append(spec_.content);
      pos = hit + lit.size();
    }
    size_t keep = std::min(lit.size() - 1, buffer_.size() - pos);
    while (keep > 0 && buffer_.compare(buffer_.size() - keep, keep, lit, 0, keep) != 0) --keep;
    out.append(buffer_, pos, buffer_.size() - keep - pos);
    buffer_.erase(0, buffer_.size() - keep);
    Emit(out, pending_begin_, false);
    pending_begin_ = false;
  }

  void Finish() override {
    if (open_) CloseToken();
    Stage::Finish();
  }

 private:
  void CloseToken() {
    Emit(ReplaceAll(buffer_), pending_begin_, true);
    buffer_.clear();
    pending_begin_ = false;
    open_ = false;
  }

  std::string ReplaceAll(std::string_view token) const {
    absl::StatusOr<std::vector<PatternSpan>> spans = spec_.pattern->FindMatches(token);
    if (!spans.ok()) return std::string(token);  // engine limit: leave the token as is
    std::string out;
    for (const PatternSpan& s : *spans) {
      if (s.is_match) {
        out.append(spec_.content);
      } else {
        out.append(token.substr(s.begin, s.end - s.begin));
      }
    }
    return out;
  }

  const Decoder::Spec& spec_;
  std::string buffer_;
  bool pending_begin_ = false;
  bool open_ = false;
};

// The byte of a "<0xAB>" token (Rust's u8::from_str_radix accepts "+A" too).
std::optional<unsigned char> ParseByteToken(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (t[3] == '+') {
    const int d = hex(t[4]);
    if (d < 0) return std::nullopt;
    return static_cast<unsigned char>(d);
  }
  const int hi = hex(t[3]);
  const int lo = hex(t[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

class ByteFallbackStage : public Stage {
 public:
  void Push(std::string_view text, bool begin, bool end) override {
    if (begin && end) {
      Complete(text);
      return;
    }
    if (begin) {
      buffer_.clear();
      buffering_ = true;
      passthrough_ = false;
    }
    if (passthrough_) {
      Emit(text, false, end);
      if (end) passthrough_ = false;
      return;
    }
    buffer_.append(text);
    if (end) {
      buffering_ = false;
      Complete(buffer_);
      return;
    }
    if (!CouldBeByteToken(buffer_)) {
      FlushGroup();
      Emit(buffer_, true, false);
      buffering_ = false;
      passthrough_ = true;
    }
  }

  void Finish() override {
    if (buffering_) {
      buffering_ = false;
      Complete(buffer_);
    }
    FlushGroup();
    Stage::Finish();
  }

 private:
  static bool CouldBeByteToken(std::string_view prefix) {
    if (prefix.size() > 6) return false;
    for (size_t i = 0; i < std::min<size_t>(3, prefix.size()); ++i) {
      if (prefix[i] != "<0x"[i]) return false;
    }
    return prefix.size() < 6 || prefix[5] == '>';
  }

  void Complete(std::string_view token) {
    if (std::optional<unsigned char> b = ParseByteToken(token)) {
      group_.push_back(static_cast<char>(*b));
      return;
    }
    FlushGroup();
    Emit(token, true, true);
  }

  void FlushGroup() {
    if (group_.empty()) return;
    if (ValidateUtf8(group_).ok()) {
      Emit(group_, true, true);
    } else {
      for (size_t i = 0; i < group_.size(); ++i) Emit(kReplacementUtf8, true, true);
    }
    group_.clear();
  }

  std::string group_;   // bytes of the pending run of byte tokens
  std::string buffer_;  // an open token that may still turn out to be a byte token
  bool buffering_ = false;
  bool passthrough_ = false;
};

class FuseStage : public Stage {
 public:
  void Push(std::string_view text, bool, bool) override {
    Emit(text, !started_, false);
    started_ = true;
  }
  void Finish() override {
    Emit("", !started_, true);
    started_ = true;
    Stage::Finish();
  }

 private:
  bool started_ = false;
};

class StripStage : public Stage {
 public:
  explicit StripStage(const Decoder::Spec& spec) : spec_(spec) {}

  void Push(std::string_view text, bool begin, bool end) override {
    if (begin) {
      lead_seen_ = 0;
      in_lead_ = spec_.start > 0;
      run_ = 0;
    }
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t from = pos;
      const char32_t c = NextCodePoint(text, &pos);
      if (in_lead_) {
        if (c == spec_.ch) {
          if (++lead_seen_ == spec_.start) in_lead_ = false;
          continue;
        }
        in_lead_ = false;
      }
      if (c == spec_.ch) {
        ++run_;
        continue;
      }
      AppendRepeated(spec_.ch, run_, &out);
      run_ = 0;
      out.append(text.substr(from, pos - from));
    }
    if (end) {
      AppendRepeated(spec_.ch, run_ - std::min(run_, spec_.stop), &out);
      run_ = 0;
    }
    Emit(out, begin, end);
  }

 private:
  const Decoder::Spec& spec_;
  size_t lead_seen_ = 0;
  bool in_lead_ = false;
  size_t run_ = 0;  // trailing `content` characters held back
};

class MetaspaceStage : public Stage {
 public:
  explicit MetaspaceStage(const Decoder::Spec& spec) : spec_(spec) {}

  void Push(std::string_view text, bool begin, bool end) override {
    if (begin) {
      first_ = tokens_seen_ == 0;
      ++tokens_seen_;
    }
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t from = pos;
      const char32_t c = NextCodePoint(text, &pos);
      if (c == spec_.ch) {
        if (!(first_ && spec_.strip_first)) out.push_back(' ');
      } else {
        out.append(text.substr(from, pos - from));
      }
    }
    Emit(out, begin, end);
  }

 private:
  const Decoder::Spec& spec_;
  size_t tokens_seen_ = 0;
  bool first_ = false;
};

class ByteLevelStage : public Stage {
 public:
  void Push(std::string_view text, bool begin, bool end) override {
    if (begin && end) {
      AppendTokenBytes(text, &bytes_);
      Drain(false);
      return;
    }
    if (begin) {
      token_.clear();
      open_ = true;
      raw_ = false;
    }
    if (raw_) {
      bytes_.append(text);
    } else {
      token_.append(text);
      if (!AllMapped(text)) {
        raw_ = true;
        bytes_.append(token_);
        token_.clear();
      }
    }
    if (end) CloseToken();
    Drain(false);
  }

  void Finish() override {
    if (open_) CloseToken();
    Drain(true);
    Stage::Finish();
  }

 private:
  static bool AllMapped(std::string_view token) {
    size_t pos = 0;
    while (pos < token.size()) {
      if (ByteLevelByte(NextCodePoint(token, &pos)) < 0) return false;
    }
    return true;
  }

  // A token's bytes: its characters mapped through the byte table, or its own
  // UTF-8 when some character is not in the table.
  static void AppendTokenBytes(std::string_view token, std::string* bytes) {
    const size_t mark = bytes->size();
    size_t pos = 0;
    while (pos < token.size()) {
      const int b = ByteLevelByte(NextCodePoint(token, &pos));
      if (b < 0) {
        bytes->resize(mark);
        bytes->append(token);
        return;
      }
      bytes->push_back(static_cast<char>(b));
    }
  }

  void CloseToken() {
    if (!raw_) AppendTokenBytes(token_, &bytes_);
    token_.clear();
    open_ = false;
    raw_ = false;
  }

  // Emits the decodable prefix of the pending bytes; all of them when `final`.
  // The whole output is one token: begun by the first emission, ended at Finish.
  void Drain(bool final) {
    std::string out;
    const size_t used = AppendUtf8Lossy(bytes_, final, &out);
    bytes_.erase(0, used);
    if (out.empty() && !final) return;
    Emit(out, !started_, final);
    started_ = true;
  }

  std::string bytes_;  // decoded bytes not yet emitted (an incomplete character)
  std::string token_;  // an open token whose characters all mapped so far
  bool open_ = false;
  bool raw_ = false;
  bool started_ = false;
};

absl::StatusOr<size_t> NonNegative(const rapidjson::Value& json, const char* key,
                                   std::string_view where) {
  HS_ASSIGN_OR_RETURN(const int64_t v, OptionalInt(json, key, 0, where));
  if (v < 0) {
    return absl::InvalidArgumentError(
        Cat("tokenizer.json: ", where, ".", key, " must not be negative"));
  }
  return static_cast<size_t>(v);
}

}  // namespace

absl::StatusOr<Decoder> Decoder::FromJson(const rapidjson::Value* json) {
  Decoder d;
  if (json != nullptr) HS_RETURN_IF_ERROR(AddSpecs(*json, "decoder", &d.specs_));
  return d;
}

absl::Status Decoder::AddSpecs(const rapidjson::Value& json, std::string_view where,
                               std::vector<Spec>* specs) {
  HS_ASSIGN_OR_RETURN(const std::string type, ComponentType(json, where));
  if (type == "Sequence") {
    const rapidjson::Value* list = FindField(json, "decoders");
    if (list == nullptr || !list->IsArray()) {
      return absl::InvalidArgumentError(
          Cat("tokenizer.json: ", where, ".decoders must be a list"));
    }
    for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
      HS_RETURN_IF_ERROR(
          AddSpecs((*list)[i], Cat(where, ".decoders[", i, "]"), specs));
    }
    return absl::OkStatus();
  }
  Spec spec;
  if (type == "ByteLevel") {
    spec.kind = Kind::kByteLevel;
  } else if (type == "ByteFallback") {
    spec.kind = Kind::kByteFallback;
  } else if (type == "Fuse") {
    spec.kind = Kind::kFuse;
  } else if (type == "Replace") {
    spec.kind = Kind::kReplace;
    HS_ASSIGN_OR_RETURN(Pattern p, RequiredPattern(json, "pattern", where));
    spec.pattern.emplace(std::move(p));
    HS_ASSIGN_OR_RETURN(spec.content, RequiredString(json, "content", where));
  } else if (type == "Strip") {
    spec.kind = Kind::kStrip;
    HS_ASSIGN_OR_RETURN(spec.ch, RequiredChar(json, "content", where));
    HS_ASSIGN_OR_RETURN(spec.start, NonNegative(json, "start", where));
    HS_ASSIGN_OR_RETURN(spec.stop, NonNegative(json, "stop", where));
  } else if (type == "Metaspace") {
    spec.kind = Kind::kMetaspace;
    HS_ASSIGN_OR_RETURN(spec.ch, RequiredChar(json, "replacement", where));
    HS_ASSIGN_OR_RETURN(const std::string scheme,
                        OptionalString(json, "prepend_scheme", "always", where));
    const rapidjson::Value* aps = FindField(json, "add_prefix_space");
    const bool legacy_never = aps != nullptr && aps->IsBool() && !aps->GetBool();
    spec.strip_first = scheme != "never" && !legacy_never;
  } else {
    return absl::UnimplementedError(Cat(
        "tokenizer.json: ", where, ": decoder type \"", type, "\" is not supported"));
  }
  specs->push_back(std::move(spec));
  return absl::OkStatus();
}

DecodeStream::DecodeStream() = default;
DecodeStream::~DecodeStream() = default;

std::unique_ptr<DecodeStream> Decoder::NewStream() const {
  std::unique_ptr<DecodeStream> s(new DecodeStream());
  if (specs_.empty()) s->stages_.push_back(std::make_unique<JoinStage>());
  for (const Spec& spec : specs_) {
    switch (spec.kind) {
      case Kind::kByteLevel:
        s->stages_.push_back(std::make_unique<ByteLevelStage>());
        break;
      case Kind::kReplace:
        s->stages_.push_back(std::make_unique<ReplaceStage>(spec));
        break;
      case Kind::kByteFallback:
        s->stages_.push_back(std::make_unique<ByteFallbackStage>());
        break;
      case Kind::kFuse:
        s->stages_.push_back(std::make_unique<FuseStage>());
        break;
      case Kind::kStrip:
        s->stages_.push_back(std::make_unique<StripStage>(spec));
        break;
      case Kind::kMetaspace:
        s->stages_.push_back(std::make_unique<MetaspaceStage>(spec));
        break;
    }
  }
  s->stages_.push_back(std::make_unique<SinkStage>(&s->out_));
  for (size_t i = 0; i + 1 < s->stages_.size(); ++i) {
    s->stages_[i]->set_next(s->stages_[i + 1].get());
  }
  return s;
}

std::string Decoder::Decode(const std::vector<std::string_view>& tokens) const {
  std::unique_ptr<DecodeStream> stream = NewStream();
  std::string out;
  for (std::string_view t : tokens) stream->Push(t, &out);
  stream->Finish(&out);
  return out;
}

void DecodeStream::Push(std::string_view token, std::string* out) {
  out_ = out;
  stages_.front()->Push(token, true, true);
  out_ = nullptr;
}

void DecodeStream::Finish(std::string* out) {
  out_ = out;
  stages_.front()->Finish();
  out_ = nullptr;
}

}  // namespace hybridserve::engine::tokenizer
