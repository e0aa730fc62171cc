// StopChecker: stop strings matched on a sequence's detokenized text, with
// hold-back (DESIGN.md 2.2). Feed it each new text piece; it returns the text
// that is safe to stream now. Text that could still be the start of a stop
// string is held back until it is resolved (a later piece completes the stop
// string or rules it out), so the client never sees any part of a stop string
// unless include_stop_str_in_output is set.
//
// Which stop string wins: the match that ends first in the text (the one
// that stops the text earliest, read left to right); among matches ending at
// the same byte, the longest (it starts first). The result therefore does not
// depend on how the text is split into pieces. vLLM checks the stop strings in
// request order after every token and takes the first found; the two rules
// agree except when one token's text completes two different stop strings.
//
// On a match, everything after the stop string's end is dropped; the text
// before it is returned (and the stop string itself when
// include_stop_str_in_output). With include_stop_str_in_output nothing is held
// back: every byte up to a match's end is returned anyway.
//
// Matching is on bytes, so it is exact for UTF-8: a valid UTF-8 stop string
// only matches at character boundaries of valid UTF-8 text, and what is held
// back starts at a character boundary. With valid UTF-8 pieces every returned
// piece is valid UTF-8. Empty stop strings are ignored (validation should
// reject them); duplicates count once.
//
// Cost: O(piece length × number of stop strings) per Feed (one KMP automaton
// per stop string; no rescans of earlier text); the held-back text is shorter
// than the longest stop string. Token-id stops (EOS, stop_token_ids,
// min_new_tokens) are the engine loop's, not this class's.
//
// Thread-compatible; owned by the engine loop (one per sequence).
#ifndef HYBRIDSERVE_SCHEDULER_STOP_CHECKER_H_
#define HYBRIDSERVE_SCHEDULER_STOP_CHECKER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hybridserve::scheduler {

class StopChecker {
 public:
  StopChecker(const std::vector<std::string>& stop_strings,
              bool include_stop_str_in_output);

  struct Result {
    std::string emit;      // text to stream now (possibly empty)
    bool stopped = false;  // a stop string completed: generation ends
  };

  // Appends `new_text` to the text seen so far. Returns the text now safe to
  // emit; when a stop string completes, the rest of the text up to it (or up
  // to its end, when including it) and stopped = true. After a stop, Feed
  // returns {"", true} and ignores its input.
  Result Feed(std::string_view new_text);

  // At the end of generation (length, EOS, ...): returns the held-back text
  // and forgets it. Returns "" after a stop.
  std::string Flush();

  bool stopped() const { return matched_index_ >= 0; }
  // Index in the constructor's list of the stop string that matched; -1 if
  // none has.
  int matched_index() const { return matched_index_; }
  // Bytes fed but not yet returned.
  size_t held_bytes() const { return pending_.size(); }

 private:
  struct Pattern {
    std::string text;
    // failure[i]: length of the longest proper prefix of text[0..i] that is
    // also its suffix (the KMP prefix function).
    std::vector<int32_t> failure;
    int32_t matched = 0;  // longest prefix of `text` that ends the text fed
    int index = 0;        // in the constructor's list
  };

  std::vector<Pattern> patterns_;
  bool include_stop_str_;
  std::string pending_;  // fed, not yet returned
  int matched_index_ = -1;
};

}  // namespace hybridserve::scheduler

#endif  // HYBRIDSERVE_SCHEDULER_STOP_CHECKER_H_
