#include "engine/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/check.h"
#include "engine/status_macros.h"
#include "engine/tokenizer/unicode_util.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {
namespace {

constexpr size_t kJitStackStartBytes = 32 * 1024;
constexpr size_t kJitStackMaxBytes = 16 * 1024 * 1024;

// Match data and JIT stack owned by one thread, shared by all patterns. The
// match data holds one pair of offsets: only the whole match is read.
class ThreadMatchState {
 public:
  ThreadMatchState()
      : match_data_(pcre2_match_data_create(1, nullptr)),
        context_(pcre2_match_context_create(nullptr)),
        jit_stack_(pcre2_jit_stack_create(kJitStackStartBytes, kJitStackMaxBytes,
                                          nullptr)) {
    HS_CHECK(match_data_ != nullptr && context_ != nullptr);
    if (jit_stack_ != nullptr) {
      pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
    }
  }
  ~ThreadMatchState() {
    pcre2_match_data_free(match_data_);
    pcre2_match_context_free(context_);
    if (jit_stack_ != nullptr) pcre2_jit_stack_free(jit_stack_);
  }
  ThreadMatchState(const ThreadMatchState&) = delete;
  ThreadMatchState& operator=(const ThreadMatchState&) = delete;

  pcre2_match_data* match_data() { return match_data_; }
  pcre2_match_context* context() { return context_; }

 private:
  pcre2_match_data* match_data_;
  pcre2_match_context* context_;
  pcre2_jit_stack* jit_stack_;
};

ThreadMatchState& MatchState() {
  thread_local ThreadMatchState state;
  return state;
}

std::string EscapeForPcre2(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '_')) {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

// Oniguruma (and Rust's regex crate) define \s as White_Space and \w as
// UTS #18 word characters; PCRE2's UCP classes differ at the edges (U+180E is
// \s in PCRE2, U+00B2 is \w). Rewrites those escapes into explicit properties;
// also Ruby's \h (a hex digit). Inside a character class only the positive
// forms can be rewritten; \W and \H there keep PCRE2's meaning.
constexpr std::string_view kWordItems = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}";
constexpr std::string_view kHexItems = "0-9a-fA-F";

std::string TranslateForPcre2(std::string_view regex) {
  std::string out;
  out.reserve(regex.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < regex.size(); ++i) {
    const char c = regex[i];
    if (c != '\\' || i + 1 >= regex.size()) {
      if (!in_class && c == '[') {
        in_class = true;
        out.push_back(c);
        // A ']' right after '[' or '[^' is a literal member.
        if (i + 1 < regex.size() && regex[i + 1] == '^') out.push_back(regex[++i]);
        if (i + 1 < regex.size() && regex[i + 1] == ']') out.push_back(regex[++i]);
        continue;
      }
      if (in_class && c == ']') in_class = false;
      out.push_back(c);
      continue;
    }
    const char e = regex[++i];
    switch (e) {
      case 's': out.append("\\p{White_Space}"); break;
      case 'S': out.append("\\P{White_Space}"); break;
      case 'w':
        if (in_class) out.append(kWordItems);
        else out.append("[").append(kWordItems).append("]");
        break;
      case 'W':
        if (in_class) out.append("\\W");
        else out.append("[^").append(kWordItems).append("]");
        break;
      case 'h':
        if (in_class) out.append(kHexItems);
        else out.append("[").append(kHexItems).append("]");
        break;
      case 'H':
        if (in_class) out.append("\\H");
        else out.append("[^").append(kHexItems).append("]");
        break;
      default:
        out.push_back('\\');
        out.push_back(e);
    }
  }
  return out;
}

}  // namespace

struct Pattern::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

Pattern::Pattern(Pattern&&) noexcept = default;
Pattern& Pattern::operator=(Pattern&&) noexcept = default;
Pattern::~Pattern() = default;

absl::StatusOr<Pattern> Pattern::Literal(std::string_view text) {
  if (text.empty()) {
    // Matches the empty string at every character boundary, as an escaped
    // empty regex does in `tokenizers`.
    return Regex(EscapeForPcre2(text));
  }
  Pattern p;
  p.is_literal_ = true;
  p.literal_ = std::string(text);
  return p;
}

absl::StatusOr<Pattern> Pattern::Regex(std::string_view regex) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  const std::string translated = TranslateForPcre2(regex);
  pcre2_code* code = pcre2_compile(
      reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
      PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return absl::InvalidArgumentError(
        Cat("cannot compile regex \"", regex, "\" (as \"", translated, "\") at offset ",
            error_offset, ": ", reinterpret_cast<const char*>(message)));
  }
  // JIT is an optimisation only: without it pcre2_match interprets.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  Pattern p;
  p.compiled_ = std::make_unique<Compiled>();
  p.compiled_->code = code;
  return p;
}

absl::Status Pattern::FindAll(std::string_view text,
                              std::vector<std::pair<size_t, size_t>>* out) const {
  if (is_literal_) {
    size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
      out->emplace_back(pos, pos + literal_.size());
      pos += literal_.size();
    }
    return absl::OkStatus();
  }
  ThreadMatchState& state = MatchState();
  size_t search_from = 0;
  bool have_last = false;
  size_t last_match_end = 0;
  while (search_from <= text.size()) {
    const int rc = pcre2_match(compiled_->code, reinterpret_cast<PCRE2_SPTR>(text.data()),
                               text.size(), search_from, PCRE2_NO_UTF_CHECK,
                               state.match_data(), state.context());
    // rc == 0: the one-pair ovector was too small for the groups; pair 0 is set.
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      return absl::ResourceExhaustedError(
          Cat("regex match failed on a ", text.size(),
                       "-byte piece: ", reinterpret_cast<const char*>(message)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.match_data());
    const size_t begin = ov[0];
    const size_t end = ov[1];
    if (begin == end && have_last && last_match_end == end) {
      if (search_from >= text.size()) break;
      search_from += Utf8CharLength(static_cast<unsigned char>(text[search_from]));
      continue;
    }
    out->emplace_back(begin, end);
    search_from = end;
    have_last = true;
    last_match_end = end;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PatternSpan>> Pattern::FindMatches(
    std::string_view text) const {
  std::vector<PatternSpan> spans;
  if (text.empty()) {
    spans.push_back({0, 0, false});
    return spans;
  }
  std::vector<std::pair<size_t, size_t>> matches;
  HS_RETURN_IF_ERROR(FindAll(text, &matches));
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (prev != begin) spans.push_back({prev, begin, false});
    spans.push_back({begin, end, true});
    prev = end;
  }
  if (prev != text.size()) spans.push_back({prev, text.size(), false});
  return spans;
}

}  // namespace hybridserve::engine::tokenizer
