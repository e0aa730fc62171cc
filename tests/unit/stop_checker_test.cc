#include "scheduler/stop_checker.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hybridserve::scheduler {
namespace {

struct Expected {
  std::string output;  // everything streamed (emits + Flush)
  bool stopped = false;
  int matched_index = -1;
};

// Straightforward reference: scan end positions left to right; at the first
// end where some stop string matches, take the longest one there (the first
// listed among equal strings).
Expected Reference(const std::string& text, const std::vector<std::string>& stops,
                   bool include) {
  for (size_t end = 1; end <= text.size(); ++end) {
    int best = -1;
    for (int i = 0; i < static_cast<int>(stops.size()); ++i) {
      const std::string& s = stops[i];
      if (s.empty() || s.size() > end || text.compare(end - s.size(), s.size(), s) != 0) {
        continue;
      }
      if (best < 0 || s.size() > stops[best].size()) best = i;
    }
    if (best >= 0) {
      return {text.substr(0, include ? end : end - stops[best].size()), true, best};
    }
  }
  return {text, false, -1};
}

// The longest suffix of `text` that is a proper prefix of a stop string.
size_t HoldBack(const std::string& text, const std::vector<std::string>& stops) {
  size_t held = 0;
  for (const std::string& s : stops) {
    for (size_t len = std::min(s.size() - (s.empty() ? 0 : 1), text.size()); len > held;
         --len) {
      if (text.compare(text.size() - len, len, s, 0, len) == 0) {
        held = len;
        break;
      }
    }
  }
  return held;
}

// Feeds `text` cut at `cuts` (increasing byte offsets) and checks the result
// and, after every piece, that exactly the text that cannot start a stop
// string has been emitted.
void FeedAndCheck(const std::string& text, const std::vector<size_t>& cuts,
                  const std::vector<std::string>& stops, bool include) {
  const Expected want = Reference(text, stops, include);
  StopChecker checker(stops, include);
  std::string out;
  bool stopped = false;
  size_t start = 0;
  std::string trace;
  for (size_t i = 0; i <= cuts.size() && !stopped; ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : text.size();
    const std::string piece = text.substr(start, end - start);
    trace += "[" + piece + "]";
    const StopChecker::Result r = checker.Feed(piece);
    out += r.emit;
    stopped = r.stopped;
    if (!stopped) {
      const std::string seen = text.substr(0, end);
      const size_t held = include ? 0 : HoldBack(seen, stops);
      ASSERT_EQ(out, seen.substr(0, seen.size() - held)) << trace;
      ASSERT_EQ(checker.held_bytes(), held) << trace;
    }
    start = end;
  }
  if (!stopped) out += checker.Flush();
  EXPECT_EQ(out, want.output) << trace;
  EXPECT_EQ(stopped, want.stopped) << trace;
  EXPECT_EQ(checker.matched_index(), want.matched_index) << trace;
  EXPECT_EQ(checker.stopped(), want.stopped) << trace;
}

struct Case {
  std::string text;
  std::vector<std::string> stops;
};

const std::vector<Case>& Cases() {
  static const auto* cases = new std::vector<Case>{
      {"Hello world, stop here", {"stop"}},
      {"no match at all", {"xyz", "matchless"}},
      {"partial sto", {"stop"}},  // ends inside a possible stop string
      {"aaab and more", {"aab"}},  // needs the KMP fall-back
      {"ababab!", {"abab"}},
      {"abcd", {"abcd", "bc"}},  // "bc" ends first
      {"xabcx", {"bc", "abc"}},  // same end: the longer wins
      {"xabcx", {"abc", "bc"}},
      {"one two three", {"two three", "two", "one two three"}},
      {"prefixes: ab abc", {"abc", "ab c", "a"}},
      {"line1\n\nline2", {"\n\n", "\n\nline"}},
      {"dup dup", {"dup", "dup", ""}},
      {"caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", {"\xe6\x97\xa5\xe6\x9c\xac"}},
      {"caf\xc3\xa9 caf\xc3\xa8", {"caf\xc3\xa8", "\xc3\xa9 x"}},
      {"emoji \xf0\x9f\x98\x80\xf0\x9f\x98\x81 end", {"\xf0\x9f\x98\x81", "\xf0\x9f\x98\x80 "}},
      {"mississippi", {"issip", "ssi", "sis"}},
      {"", {"a"}},
      {"text", {}},
  };
  return *cases;
}

TEST(StopCheckerTest, EverySplitIntoTwoPieces) {
  for (const Case& c : Cases()) {
    for (bool include : {false, true}) {
      for (size_t cut = 0; cut <= c.text.size(); ++cut) {
        FeedAndCheck(c.text, {cut}, c.stops, include);
      }
    }
  }
}

TEST(StopCheckerTest, OneByteAtATime) {
  for (const Case& c : Cases()) {
    for (bool include : {false, true}) {
      std::vector<size_t> cuts;
      for (size_t i = 1; i < c.text.size(); ++i) cuts.push_back(i);
      FeedAndCheck(c.text, cuts, c.stops, include);
    }
  }
}

TEST(StopCheckerTest, EverySplitOfShortTexts) {
  const std::vector<Case> cases = {
      {"aabaab!c", {"aab", "ab!", "b!c"}},
      {"x\xc3\xa9\xc3\xa9y", {"\xc3\xa9y", "\xc3\xa9\xc3\xa9"}},
      {"abcabd", {"abd", "cab", "abcabe"}},
  };
  for (const Case& c : cases) {
    const size_t n = c.text.size();
    for (uint32_t mask = 0; mask < (1u << (n - 1)); ++mask) {
      std::vector<size_t> cuts;
      for (size_t i = 1; i < n; ++i) {
        if (mask & (1u << (i - 1))) cuts.push_back(i);
      }
      for (bool include : {false, true}) FeedAndCheck(c.text, cuts, c.stops, include);
    }
  }
}

TEST(StopCheckerTest, RandomTextsAndSplits) {
  std::mt19937 rng(7);
  const std::string alphabet = "ab\xc3\xa9 ";
  for (int trial = 0; trial < 2000; ++trial) {
    auto random_string = [&](int max_len) {
      std::string s;
      const int len = 1 + static_cast<int>(rng() % max_len);
      for (int i = 0; i < len; ++i) {
        const size_t k = rng() % 4;
        s += k == 2 ? std::string("\xc3\xa9") : std::string(1, alphabet[k == 3 ? 4 : k]);
      }
      return s;
    };
    const std::string text = random_string(30);
    std::vector<std::string> stops;
    for (int i = 0, n = 1 + static_cast<int>(rng() % 3); i < n; ++i) {
      stops.push_back(random_string(4));
    }
    std::vector<size_t> cuts;
    for (size_t i = 1; i < text.size(); ++i) {
      if (rng() % 3 == 0) cuts.push_back(i);
    }
    FeedAndCheck(text, cuts, stops, trial % 2 == 0);
  }
}

TEST(StopCheckerTest, ExamplesSpelledOut) {
  StopChecker checker({"world"}, false);
  StopChecker::Result r = checker.Feed("hello wor");
  EXPECT_EQ(r.emit, "hello ");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(checker.held_bytes(), 3u);
  r = checker.Feed("ld! and more");
  EXPECT_EQ(r.emit, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(checker.matched_index(), 0);
  // After a stop: nothing more.
  r = checker.Feed("more text");
  EXPECT_EQ(r.emit, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(checker.Flush(), "");

  StopChecker including({"###", "world"}, true);
  r = including.Feed("hello wor");
  EXPECT_EQ(r.emit, "hello wor");  // nothing held back
  r = including.Feed("ld! and more");
  EXPECT_EQ(r.emit, "ld");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(including.matched_index(), 1);

  // Flush at the end returns the held text.
  StopChecker flushing({"</s>"}, false);
  EXPECT_EQ(flushing.Feed("end <").emit, "end ");
  EXPECT_EQ(flushing.Feed("/").emit, "");
  EXPECT_EQ(flushing.Feed("x").emit, "</x");
  EXPECT_EQ(flushing.Feed("</").emit, "");
  EXPECT_EQ(flushing.Flush(), "</");
  EXPECT_FALSE(flushing.stopped());

  // Held text starts at a character boundary: the stop string's first
  // character matched, its second did not.
  StopChecker utf8({"\xc3\xa9t\xc3\xa9"}, false);
  EXPECT_EQ(utf8.Feed("caf\xc3\xa9").emit, "caf");
  EXPECT_EQ(utf8.Feed("!").emit, "\xc3\xa9!");
}

TEST(StopCheckerTest, LongGenerationStaysLinear) {
  // 4 MB fed in 4-byte pieces that keep almost matching: the held text never
  // exceeds the longest stop string and no earlier text is rescanned.
  const std::vector<std::string> stops = {"aaaaaaaaab", "aaaac"};
  StopChecker checker(stops, false);
  size_t emitted = 0;
  for (int i = 0; i < 1000000; ++i) {
    const StopChecker::Result r = checker.Feed("aaaa");
    ASSERT_FALSE(r.stopped);
    emitted += r.emit.size();
    ASSERT_LE(checker.held_bytes(), 9u);
  }
  EXPECT_EQ(emitted + checker.held_bytes(), 4000000u);
  const StopChecker::Result r = checker.Feed("b tail");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(checker.matched_index(), 0);
}

}  // namespace
}  // namespace hybridserve::scheduler
