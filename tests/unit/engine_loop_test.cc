// The engine loop with the real engine on a tiny Llama (no gRPC): batching
// changes nothing (class (b)), seeded sampling is batch-independent, stops,
// cancellation, deadlines, slow readers, queue bounds and draining.
#include "scheduler/engine_loop.h"

#include <algorithm>
#include <memory>
#include <thread>

#include "gtest/gtest.h"
#include "scheduler/token_stream.h"
#include "tests/testing/engine_test_util.h"
#include "tests/testing/loop_test_util.h"
#include "tests/testing/test_env.h"
#include "tools/lib/tiny_model.h"

namespace hybridserve::scheduler {
namespace {

using Result = testing::StreamResult;

class EngineLoopTest : public testing::EngineLoopFixture<::testing::Test> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(testing::MakeTempDir() / "tiny");
    tools::TinyLlamaOptions o;  // the "tiny" sizes
    o.seed = 3;
    ASSERT_TRUE(tools::WriteTinyLlama(o, *dir_).ok());
  }

  void SetUp() override { MakeLoop({}); }

  void MakeLoop(EngineLoopOptions options, uint64_t kv_bytes = 8 << 20) {
    engine::EngineOptions eo;
    eo.model_dir = *dir_;
    eo.device = "cpu";
    eo.num_threads = testing::TestCpuThreads();
    eo.kv_cache_bytes = kv_bytes;
    eo.max_num_tokens = options.max_batched_tokens;
    eo.max_num_seqs = options.max_num_seqs;
    eo.max_model_len = 512;
    ASSERT_NO_FATAL_FAILURE(StartLoop(eo, options));
  }

  void ExpectAllFree() {
    const LoopLoad load = testing::WaitForIdleLoad(*loop_);
    EXPECT_EQ(load.free_kv_blocks, load.total_kv_blocks);
    EXPECT_EQ(load.running, 0);
    EXPECT_EQ(load.waiting, 0);
  }

  static std::vector<int32_t> Prompt(int n, int salt) { return testing::TestPrompt(n, salt); }

  static std::filesystem::path* dir_;
};

std::filesystem::path* EngineLoopTest::dir_ = nullptr;

TEST_F(EngineLoopTest, GreedyMatchesDirectEngineSteps) {
  const std::vector<int32_t> prompt = Prompt(9, 1);
  Result r = RunAlone(MakeRequest(prompt, 12));
  EXPECT_EQ(r.finish, FinishReason::kLength);
  ASSERT_EQ(r.tokens.size(), 12u);
  // The same greedy continuation straight through Engine::Step. The loop
  // owns the engine while running: stop it first.
  loop_->Stop();
  testing::ExpectGreedyThroughEngine(*engine_, prompt, r.tokens);
}

TEST_F(EngineLoopTest, SixteenConcurrentRequestsEqualAlone) {
  std::vector<Result> alone;
  for (int i = 0; i < 16; ++i) {
    const float temperature = i % 2 ? 0.0f : 0.8f;  // greedy and seeded sampled
    alone.push_back(RunAlone(MakeRequest(Prompt(3 + 5 * i, i), 10 + i, temperature, 100 + i)));
  }
  std::vector<std::shared_ptr<TokenStream>> streams;
  for (int i = 0; i < 16; ++i) {
    const float temperature = i % 2 ? 0.0f : 0.8f;
    auto r = MakeRequest(Prompt(3 + 5 * i, i), 10 + i, temperature, 100 + i);
    streams.push_back(r->stream);
    ASSERT_TRUE(loop_->Submit(std::move(r)).ok());
  }
  for (int i = 0; i < 16; ++i) {
    Result together = Collect(*streams[i]);
    EXPECT_EQ(together.tokens, alone[i].tokens) << "request " << i;
    EXPECT_EQ(together.logprobs, alone[i].logprobs) << "request " << i;  // bitwise
    EXPECT_EQ(together.text, alone[i].text) << "request " << i;
  }
  ExpectAllFree();
}

TEST_F(EngineLoopTest, CancelledRequestFreesItsBlocks) {
  auto r = MakeRequest(Prompt(40, 2), 400);
  auto stream = r->stream;
  ASSERT_TRUE(loop_->Submit(std::move(r)).ok());
  // Wait for a few tokens, then cancel.
  int seen = 0;
  while (seen < 3) {
    if (auto e = stream->Pop()) seen += static_cast<int>(e->token_ids.size());
  }
  stream->Cancel();
  Result rest = Collect(*stream);
  EXPECT_EQ(rest.finish, FinishReason::kCancelled);
  EXPECT_EQ(rest.status.code(), absl::StatusCode::kCancelled);
  ExpectAllFree();
}

TEST_F(EngineLoopTest, DeadlineInTheQueueOrRunning) {
  // 400 tokens take far longer than 2 ms (one engine step each).
  auto r = MakeRequest(Prompt(10, 3), 400);
  r->deadline = absl::Now() + absl::Milliseconds(2);
  Result res = RunAlone(std::move(r));
  EXPECT_EQ(res.finish, FinishReason::kCancelled);
  EXPECT_EQ(res.status.code(), absl::StatusCode::kDeadlineExceeded);
  ExpectAllFree();
}

TEST_F(EngineLoopTest, StopTokenEosAndMinTokens) {
  // Greedy continuation, then stop on its 4th token.
  Result base = RunAlone(MakeRequest(Prompt(7, 4), 8));
  ASSERT_EQ(base.tokens.size(), 8u);
  auto r = MakeRequest(Prompt(7, 4), 8);
  r->stop.stop_token_ids = {base.tokens[3]};
  Result stopped = RunAlone(std::move(r));
  const size_t first = std::find(base.tokens.begin(), base.tokens.end(), base.tokens[3]) - base.tokens.begin();
  EXPECT_EQ(stopped.finish, FinishReason::kStop);
  EXPECT_EQ(stopped.tokens.size(), first + 1);
  // The same id as EOS.
  r = MakeRequest(Prompt(7, 4), 8);
  r->stop.ignore_eos = false;
  r->stop.eos_token_ids = {base.tokens[3]};
  Result eos = RunAlone(std::move(r));
  EXPECT_EQ(eos.finish, FinishReason::kEos);
  EXPECT_EQ(eos.tokens.size(), first + 1);
  // min_new_tokens bans it before then.
  r = MakeRequest(Prompt(7, 4), 8);
  r->stop.ignore_eos = false;
  r->stop.eos_token_ids = {base.tokens[3]};
  r->stop.min_new_tokens = 8;
  Result min_tokens = RunAlone(std::move(r));
  EXPECT_EQ(min_tokens.tokens.size(), 8u);
  EXPECT_EQ(min_tokens.finish, FinishReason::kLength);
  for (int32_t t : min_tokens.tokens) EXPECT_NE(t, base.tokens[3]);
}

TEST_F(EngineLoopTest, StopStringEndsTheTextBeforeIt) {
  auto r = MakeRequest(Prompt(5, 5), 30);
  r->stop.ignore_eos = true;
  Result base = RunAlone(std::move(r));
  // Pick a stop string from the middle of the greedy text (a valid UTF-8 run).
  const std::string& text = base.text;
  ASSERT_GE(text.size(), 6u) << "greedy text too short to pick a stop string";
  size_t start = text.size() / 2;
  while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
  size_t end = start + 1;
  while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
  const std::string stop = text.substr(start, end - start);
  const size_t first = text.find(stop);
  r = MakeRequest(Prompt(5, 5), 30);
  r->stop.stop_strings = {stop};
  Result stopped = RunAlone(std::move(r));
  EXPECT_EQ(stopped.finish, FinishReason::kStop);
  EXPECT_EQ(stopped.text, text.substr(0, first));
}

TEST_F(EngineLoopTest, SlowReaderIsCancelledOthersUnaffected) {
  Result alone = RunAlone(MakeRequest(Prompt(6, 6), 40));
  auto slow = MakeRequest(Prompt(6, 7), 300);
  slow->stream = std::make_shared<TokenStream>(4);  // never read below
  auto slow_stream = slow->stream;
  auto fast = MakeRequest(Prompt(6, 6), 40);
  auto fast_stream = fast->stream;
  ASSERT_TRUE(loop_->Submit(std::move(slow)).ok());
  ASSERT_TRUE(loop_->Submit(std::move(fast)).ok());
  Result fast_result = Collect(*fast_stream);
  EXPECT_EQ(fast_result.tokens, alone.tokens);
  // The slow stream's outbox filled: the request was ended with an error.
  Result slow_result = Collect(*slow_stream);
  EXPECT_EQ(slow_result.finish, FinishReason::kCancelled);
  EXPECT_EQ(slow_result.status.code(), absl::StatusCode::kResourceExhausted);
  ExpectAllFree();
}

TEST_F(EngineLoopTest, QueueBoundAndDrain) {
  EngineLoopOptions small;
  small.max_num_seqs = 1;
  small.max_batched_tokens = 64;
  small.max_queue = 2;
  MakeLoop(small);
  std::vector<std::shared_ptr<TokenStream>> streams;
  int refused = 0;
  for (int i = 0; i < 6; ++i) {
    auto r = MakeRequest(Prompt(4, i), 50);
    streams.push_back(r->stream);
    absl::Status st = loop_->Submit(std::move(r));
    if (!st.ok()) {
      EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
      streams.pop_back();
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  loop_->BeginDrain();
  EXPECT_EQ(loop_->Submit(MakeRequest(Prompt(4, 9), 5)).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(loop_->WaitUntilIdle(absl::Now() + absl::Seconds(60)));
  for (auto& s : streams) EXPECT_EQ(Collect(*s).finish, FinishReason::kLength);
  ExpectAllFree();
}

TEST_F(EngineLoopTest, CancelAllEndsRunningRequests) {
  auto r = MakeRequest(Prompt(4, 1), 450);
  auto stream = r->stream;
  ASSERT_TRUE(loop_->Submit(std::move(r)).ok());
  while (loop_->load().running == 0) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(loop_->CancelAll(absl::UnavailableError("shutting down")), 1);
  Result res = Collect(*stream);
  EXPECT_EQ(res.finish, FinishReason::kCancelled);
  EXPECT_EQ(res.status.code(), absl::StatusCode::kUnavailable);
  ExpectAllFree();
}

TEST_F(EngineLoopTest, SixtyFourRequestsWithAQuarterOfTheKvCacheAllComplete) {
  // 64 requests x (24 + 40) tokens = 4096 tokens; the cache holds 1024.
  std::vector<Result> alone;
  for (int i = 0; i < 64; ++i) alone.push_back(RunAlone(MakeRequest(Prompt(24, i), 40)));
  struct Observer : LoopObserver {
    void OnPreemption() override { ++preemptions; }
    std::atomic<int> preemptions{0};
  } observer;
  EngineLoopOptions small_cache;
  small_cache.observer = &observer;
  small_cache.check_invariants = true;
  MakeLoop(small_cache, /*kv_bytes=*/1024 * 512);  // 64 blocks x 16 tokens x 512 B
  std::vector<std::shared_ptr<TokenStream>> streams;
  for (int i = 0; i < 64; ++i) {
    auto r = MakeRequest(Prompt(24, i), 40);
    streams.push_back(r->stream);
    ASSERT_TRUE(loop_->Submit(std::move(r)).ok());
  }
  for (int i = 0; i < 64; ++i) {
    Result together = Collect(*streams[i]);
    EXPECT_EQ(together.finish, FinishReason::kLength) << "request " << i;
    // Recompute after preemption is class (c) in general; on the CPU backend
    // every row is batch-invariant, so the greedy tokens are identical.
    EXPECT_EQ(together.tokens, alone[i].tokens) << "request " << i;
  }
  EXPECT_GT(observer.preemptions.load(), 0);
  std::printf("[loop] 64 requests, quarter-size KV cache: %d preemptions\n", observer.preemptions.load());
  ExpectAllFree();
  loop_.reset();  // the loop reports to `observer` until it stops
}

TEST_F(EngineLoopTest, RequestLargerThanTheWholeCacheIsRejected) {
  MakeLoop({}, /*kv_bytes=*/512 * 16 * 32);  // 32 blocks of 16 tokens
  auto r = MakeRequest(Prompt(300, 1), 300);
  EXPECT_EQ(loop_->Submit(std::move(r)).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hybridserve::scheduler
