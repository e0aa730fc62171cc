// The engine loop with SSM models (no gRPC): tiny Mamba-2 and Bamba
// (attention at layer 1 of 4) checkpoints from the tiny-model maker. Greedy
// through the loop equals greedy through Engine::Step; every state slot (and,
// for Bamba, every KV block) is back in the pool after any mix of finished,
// cancelled (running and waiting), expired and stopped requests; and a reused
// slot starts from a zero state, so a request gives the same tokens after it.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/runtime/engine.h"
#include "engine/runtime/plan_builder.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "scheduler/engine_loop.h"
#include "scheduler/token_stream.h"
#include "tests/testing/test_env.h"
#include "tools/lib/tiny_model.h"

namespace hybridserve::scheduler {
namespace {

using tools::TinyArchitecture;

struct Result {
  std::vector<int32_t> tokens;
  std::vector<double> logprobs;
  FinishReason finish = FinishReason::kNone;
  absl::Status status;
};

// Reads a stream to its end (busy-polling; the tests are short).
Result Collect(TokenStream& stream, absl::Duration timeout = absl::Seconds(120)) {
  Result r;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::optional<TokenEvent> e = stream.Pop();
    if (!e) {
      absl::SleepFor(absl::Microseconds(200));
      continue;
    }
    r.tokens.insert(r.tokens.end(), e->token_ids.begin(), e->token_ids.end());
    for (const auto& lp : e->logprobs) r.logprobs.push_back(lp.logprob);
    if (e->is_final()) {
      r.finish = e->finish;
      r.status = e->status;
      return r;
    }
  }
  ADD_FAILURE() << "stream did not finish";
  return r;
}

std::vector<int32_t> Prompt(int n, int salt) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = (i * 37 + salt * 11) % 256;
  return p;
}

class SsmEngineLoopTest : public ::testing::TestWithParam<TinyArchitecture> {
 protected:
  void SetUp() override {
    auto o = tools::TinyModelPreset(GetParam(), "tiny");
    ASSERT_TRUE(o.ok());
    o->seed = 9;
    dir_ = testing::MakeTempDir() / "model";
    ASSERT_TRUE(tools::WriteTinyModel(*o, dir_).ok());
    auto t = engine::tokenizer::Tokenizer::FromFile(dir_);
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
  }

  // A loop of at most `max_num_seqs` running sequences (and as many slots).
  void MakeLoop(int64_t max_num_seqs) {
    loop_.reset();
    engine::EngineOptions eo;
    eo.model_dir = dir_;
    eo.device = "cpu";
    eo.num_threads = testing::TestCpuThreads();
    eo.kv_cache_bytes = 8 << 20;
    eo.max_num_tokens = 256;
    eo.max_num_seqs = max_num_seqs;
    eo.max_model_len = 512;
    auto e = engine::Engine::Create(eo);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = *std::move(e);
    EngineLoopOptions options;
    options.max_num_seqs = max_num_seqs;
    options.max_batched_tokens = 256;
    loop_ = std::make_unique<EngineLoop>(engine_.get(), tokenizer_.get(), options);
    ASSERT_TRUE(loop_->Warmup().ok());
    loop_->Start();
  }

  std::unique_ptr<Request> MakeRequest(std::vector<int32_t> prompt, int max_new,
                                       float temperature = 0.0f, uint64_t seed = 1) {
    auto r = std::make_unique<Request>();
    r->prompt_ids = std::move(prompt);
    r->sampling.temperature = temperature;
    r->sampling.seed = seed;
    r->stop.max_new_tokens = max_new;
    r->stop.ignore_eos = true;
    r->logprobs = 0;
    r->arrival = absl::Now();
    r->stream = std::make_shared<TokenStream>(1024);
    return r;
  }

  Result RunAlone(std::unique_ptr<Request> r) {
    auto stream = r->stream;
    EXPECT_TRUE(loop_->Submit(std::move(r)).ok());
    return Collect(*stream);
  }

  // Waits for the published load to show an idle loop, then checks every
  // slot and block is free.
  void ExpectAllFree() {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    LoopLoad load = loop_->load();
    while ((load.free_state_slots != load.total_state_slots ||
            load.free_kv_blocks != load.total_kv_blocks || load.running != 0 ||
            load.waiting != 0) &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(2));
      load = loop_->load();
    }
    EXPECT_GT(load.total_state_slots, 0);
    EXPECT_EQ(load.free_state_slots, load.total_state_slots);
    EXPECT_EQ(load.free_kv_blocks, load.total_kv_blocks);
    EXPECT_EQ(load.total_kv_blocks > 0, GetParam() == TinyArchitecture::kBamba);
    EXPECT_EQ(load.running, 0);
    EXPECT_EQ(load.waiting, 0);
  }

  std::filesystem::path dir_;
  std::unique_ptr<engine::tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<EngineLoop> loop_;
};

TEST_P(SsmEngineLoopTest, GreedyMatchesDirectEngineSteps) {
  MakeLoop(4);
  for (int len : {1, 9, 70}) {  // 70: more than one KV block (Bamba)
    SCOPED_TRACE(len);
    const std::vector<int32_t> prompt = Prompt(len, len);
    Result r = RunAlone(MakeRequest(prompt, 12));
    EXPECT_EQ(r.finish, FinishReason::kLength);
    ASSERT_EQ(r.tokens.size(), 12u);
    // The same greedy continuation straight through Engine::Step. The loop is
    // idle; it touches the engine only when it has work.
    const engine::MemoryPlan& mp = engine_->memory_plan();
    engine::PlanBuilder builder(mp.num_blocks, mp.block_tokens, mp.num_state_slots);
    engine::StepOutput out;
    auto plan = builder.Build({{.seq_id = 0, .tokens = prompt}});
    ASSERT_TRUE(plan.ok()) << plan.status();
    loop_->Stop();
    ASSERT_TRUE(engine_->Step(*plan, &out).ok());
    for (size_t i = 0; i < r.tokens.size(); ++i) {
      const int32_t next = static_cast<int32_t>(
          std::max_element(out.logits.begin(), out.logits.end()) - out.logits.begin());
      EXPECT_EQ(r.tokens[i], next) << "token " << i;
      plan = builder.Build({{.seq_id = 0, .tokens = {next}}});
      ASSERT_TRUE(plan.ok());
      ASSERT_TRUE(engine_->Step(*plan, &out).ok());
    }
    MakeLoop(4);
  }
}

TEST_P(SsmEngineLoopTest, EverySlotReturnsAfterFinishedAndCancelledRequests) {
  MakeLoop(3);  // 3 slots: most requests wait for one
  const Result reference = RunAlone(MakeRequest(Prompt(11, 1), 20, 0.8f, 42));
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
      auto r = MakeRequest(Prompt(3 + 9 * i, i + round), fate == Submitted::kFinish ? 6 + i : 300,
                           i % 2 ? 0.0f : 0.7f, 100 + i);
      if (fate == Submitted::kExpire) r->deadline = absl::Now() + absl::Milliseconds(30);
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
    const Result again = RunAlone(MakeRequest(Prompt(11, 1), 20, 0.8f, 42));
    EXPECT_EQ(again.tokens, reference.tokens);
    EXPECT_EQ(again.logprobs, reference.logprobs);  // bitwise
    ExpectAllFree();
  }
}

TEST_P(SsmEngineLoopTest, CancelAllAndStopReturnEverySlot) {
  MakeLoop(2);
  std::vector<std::shared_ptr<TokenStream>> streams;
  for (int i = 0; i < 5; ++i) {
    auto r = MakeRequest(Prompt(5 + i, i), 400);
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
