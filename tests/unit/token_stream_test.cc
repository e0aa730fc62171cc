// TokenStream: order, capacity and the final event, including readers that
// catch up and readers that lag for a long time (the queue compacts itself).
#include "scheduler/token_stream.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace hybridserve::scheduler {
namespace {

TokenEvent Event(int32_t id) {
  TokenEvent e;
  e.token_ids = {id};
  e.text = "t" + std::to_string(id);
  return e;
}

TEST(TokenStreamTest, FifoWithCapacityAndFinal) {
  TokenStream s(3);
  EXPECT_TRUE(s.Push(Event(0)));
  EXPECT_TRUE(s.Push(Event(1)));
  EXPECT_TRUE(s.Push(Event(2)));
  EXPECT_FALSE(s.Push(Event(3))) << "a fourth unread event exceeds the capacity";
  TokenEvent final_event = Event(9);
  final_event.finish = FinishReason::kLength;
  s.PushFinal(final_event);  // always fits
  EXPECT_TRUE(s.final_pushed());
  EXPECT_FALSE(s.Push(Event(4))) << "nothing after the final event";
  for (int32_t want : {0, 1, 2, 9}) {
    auto e = s.Pop();
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->token_ids[0], want);
    EXPECT_EQ(e->text, "t" + std::to_string(want));
  }
  EXPECT_FALSE(s.Pop().has_value());
}

// A reader that stays `lag` events behind for 20,000 events: every event comes
// out once, in order, and the capacity check counts only unread events.
TEST(TokenStreamTest, LaggingReaderKeepsOrder) {
  for (int lag : {1, 2, 7, 15}) {
    TokenStream s(16);
    int32_t next_pop = 0;
    for (int32_t i = 0; i < 20000; ++i) {
      ASSERT_TRUE(s.Push(Event(i))) << "lag " << lag << " event " << i;
      if (i >= lag) {
        auto e = s.Pop();
        ASSERT_TRUE(e.has_value());
        ASSERT_EQ(e->token_ids[0], next_pop++);
      }
    }
    while (auto e = s.Pop()) ASSERT_EQ(e->token_ids[0], next_pop++);
    EXPECT_EQ(next_pop, 20000);
  }
}

TEST(TokenStreamTest, ConcurrentWriterAndReader) {
  TokenStream s(8);
  constexpr int32_t kEvents = 50000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int32_t i = 0; i < kEvents;) {
      if (s.Push(Event(i))) ++i;
    }
    done = true;
  });
  int32_t next = 0;
  while (next < kEvents) {
    if (auto e = s.Pop()) {
      ASSERT_EQ(e->token_ids[0], next);
      ++next;
    }
  }
  writer.join();
  EXPECT_TRUE(done);
  EXPECT_FALSE(s.Pop().has_value());
}

}  // namespace
}  // namespace hybridserve::scheduler
