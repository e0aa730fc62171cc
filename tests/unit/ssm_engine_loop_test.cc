// The engine loop with SSM models (no gRPC): tiny Mamba-2 and Bamba
// (attention at layer 1 of 4) checkpoints from the tiny-model maker. Greedy
// through the loop equals greedy through Engine::Step; every state slot (and,
// for Bamba, every KV block) is back in the pool after any mix of finished,
// cancelled (running and waiting), expired and stopped requests; and a reused
// slot starts from a zero state, so a request gives the same tokens after it.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/runtime/engine.h"
#include "gtest/gtest.h"
#include "scheduler/engine_loop.h"
#include "scheduler/token_stream.h"
#include "tests/testing/engine_test_util.h"
#include "tests/testing/loop_test_util.h"
#include "tests/testing/test_env.h"
#include "tools/lib/tiny_model.h"

namespace hybridserve::scheduler {
namespace {

using testing::TestPrompt;
using tools::TinyArchitecture;
using Result = testing::StreamResult;

class SsmEngineLoopTest
    : public testing::EngineLoopFixture<::testing::TestWithParam<TinyArchitecture>> {
 protected:
  void SetUp() override {
    collect_timeout_ = absl::Seconds(120);
    auto o = tools::TinyModelPreset(GetParam(), "tiny");
    ASSERT_TRUE(o.ok());
    o->seed = 9;
    dir_ = testing::MakeTempDir() / "model";
    ASSERT_TRUE(tools::WriteTinyModel(*o, dir_).ok());
  }

  // A loop of at most `max_num_seqs` running sequences (and as many slots).
  void MakeLoop(int64_t max_num_seqs) {
    engine::EngineOptions eo;
    eo.model_dir = dir_;
    eo.device = "cpu";
    eo.num_threads = testing::TestCpuThreads();
    eo.kv_cache_bytes = 8 << 20;
    eo.max_num_tokens = 256;
    eo.max_num_seqs = max_num_seqs;
    eo.max_model_len = 512;
    EngineLoopOptions options;
    options.max_num_seqs = max_num_seqs;
    options.max_batched_tokens = 256;
    ASSERT_NO_FATAL_FAILURE(StartLoop(eo, options));
  }

  // Waits for the published load to show an idle loop, then checks every
  // slot and block is free.
  void ExpectAllFree() {
    const LoopLoad load = testing::WaitForIdleLoad(*loop_);
    EXPECT_GT(load.total_state_slots, 0);
    EXPECT_EQ(load.free_state_slots, load.total_state_slots);
    EXPECT_EQ(load.free_kv_blocks, load.total_kv_blocks);
    EXPECT_EQ(load.total_kv_blocks > 0, GetParam() == TinyArchitecture::kBamba);
    EXPECT_EQ(load.running, 0);
    EXPECT_EQ(load.waiting, 0);
  }

  std::filesystem::path dir_;
};

TEST_P(SsmEngineLoopTest, GreedyMatchesDirectEngineSteps) {
  MakeLoop(4);
  for (int len : {1, 9, 70}) {  // 70: more than one KV block (Bamba)
    SCOPED_TRACE(len);
    const std::vector<int32_t> prompt = TestPrompt(len, len);
    Result r = RunAlone(MakeRequest(prompt, 12));
    EXPECT_EQ(r.finish, FinishReason::kLength);
    ASSERT_EQ(r.tokens.size(), 12u);
    // The same greedy continuation straight through Engine::Step. The loop is
    // idle; it touches the engine only when it has work.
    loop_->Stop();
    ASSERT_NO_FATAL_FAILURE(testing::ExpectGreedyThroughEngine(*engine_, prompt, r.tokens));
    MakeLoop(4);
  }
}

TEST_P(SsmEngineLoopTest, EverySlotReturnsAfterFinishedAndCancelledRequests) {
  MakeLoop(3);  // 3 slots: most requests wait for one
  const Result reference = RunAlone(MakeRequest(TestPrompt(11, 1), 20, 0.8f, 42));
  ASSERT_EQ(reference.tokens.size(), 20u);
  ExpectAllFree();

  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    struct Submitted {
      std::shared_ptr<TokenStream> stream;
      enum { kFinish, kCancelRunning, kCancelWaiting, kExpire, kStop } fate;
    };
    std::vector<Submitted> all;
    for (int i = 0; i < 14; ++i) {
      const auto fate = static_cast<decltype(Submitted::fate)>(i % 5);
      auto r = MakeRequest(TestPrompt(3 + 9 * i, i + round),
                           fate == Submitted::kFinish ? 6 + i : 300, i % 2 ? 0.0f : 0.7f, 100 + i);
      // 300 tokens take far longer than 2 ms (one engine step each), so the
      // deadline passes while the request waits or runs.
      if (fate == Submitted::kExpire) r->deadline = absl::Now() + absl::Milliseconds(2);
      if (fate == Submitted::kStop) {
        r->stop.max_new_tokens = 40;
        r->stop.stop_token_ids = {r->prompt_ids[0], r->prompt_ids[1], 258, 261};
      }
      all.push_back({r->stream, fate});
      ASSERT_TRUE(loop_->Submit(std::move(r)).ok());
      // Cancelled before it can have run: the inbox still holds it, or it
      // waits behind the first three for a slot.
      if (fate == Submitted::kCancelWaiting) all.back().stream->Cancel();
    }
    // Cancel the "running" ones once they have produced a token.
    for (Submitted& s : all) {
      if (s.fate != Submitted::kCancelRunning) continue;
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      Result partial;
      while (partial.tokens.empty() && absl::Now() < deadline) {
        if (auto e = s.stream->Pop()) {
          partial.tokens.insert(partial.tokens.end(), e->token_ids.begin(), e->token_ids.end());
          if (e->is_final()) break;
        } else {
          absl::SleepFor(absl::Microseconds(200));
        }
      }
      s.stream->Cancel();
    }
    for (Submitted& s : all) {
      const Result r = Collect(*s.stream);
      switch (s.fate) {
        case Submitted::kFinish:
          EXPECT_EQ(r.finish, FinishReason::kLength);
          break;
        case Submitted::kCancelRunning:
        case Submitted::kCancelWaiting:
          EXPECT_EQ(r.finish, FinishReason::kCancelled);
          EXPECT_EQ(r.status.code(), absl::StatusCode::kCancelled) << r.status;
          break;
        case Submitted::kExpire:
          EXPECT_EQ(r.finish, FinishReason::kCancelled);
          EXPECT_EQ(r.status.code(), absl::StatusCode::kDeadlineExceeded) << r.status;
          break;
        case Submitted::kStop:
          EXPECT_TRUE(r.finish == FinishReason::kStop || r.finish == FinishReason::kLength);
          break;
      }
    }
    ExpectAllFree();
    // Slots that held other sequences' states start from zeros again.
    const Result again = RunAlone(MakeRequest(TestPrompt(11, 1), 20, 0.8f, 42));
    EXPECT_EQ(again.tokens, reference.tokens);
    EXPECT_EQ(again.logprobs, reference.logprobs);  // bitwise
    ExpectAllFree();
  }
}

TEST_P(SsmEngineLoopTest, CancelAllAndStopReturnEverySlot) {
  MakeLoop(2);
  std::vector<std::shared_ptr<TokenStream>> streams;
  for (int i = 0; i < 5; ++i) {
    auto r = MakeRequest(TestPrompt(5 + i, i), 400);
    streams.push_back(r->stream);
    ASSERT_TRUE(loop_->Submit(std::move(r)).ok());
  }
  while (loop_->load().running < 2) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(loop_->CancelAll(absl::UnavailableError("shutting down")), 5);
  for (auto& s : streams) {
    const Result r = Collect(*s);
    EXPECT_EQ(r.finish, FinishReason::kCancelled);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  }
  ExpectAllFree();
}

INSTANTIATE_TEST_SUITE_P(
    Models, SsmEngineLoopTest,
    ::testing::Values(TinyArchitecture::kMamba2, TinyArchitecture::kBamba),
    [](const ::testing::TestParamInfo<TinyArchitecture>& info) {
      return std::string(tools::TinyArchitectureName(info.param));
    });

}  // namespace
}  // namespace hybridserve::scheduler
