// Scheduling policy of the engine loop on the fake engine (no math), driven
// one iteration at a time: chunked prefill within the token budget, decodes
// first, admission with a watermark, preemption and recompute, priorities and
// aging, and a long randomized run with the invariants checked every step.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <set>

#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "scheduler/engine_loop.h"
#include "scheduler/token_stream.h"
#include "tests/testing/test_env.h"
#include "tools/lib/fake_engine.h"
#include "tools/lib/tiny_model.h"

namespace hybridserve::scheduler {
namespace {

using tools::FakeEngine;
using tools::FakeEngineOptions;

class CountingObserver : public LoopObserver {
 public:
  void OnPreemption() override { ++preemptions; }
  int preemptions = 0;
};

class SchedulerPolicyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto dir = testing::MakeTempDir() / "tok";
    ASSERT_TRUE(tools::WriteTinyLlama({}, dir).ok());
    auto t = engine::tokenizer::Tokenizer::FromFile(dir);
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = t->release();
  }

  void Make(const FakeEngineOptions& fo, EngineLoopOptions lo) {
    loop_.reset();
    engine_ = std::make_unique<FakeEngine>(fo);
    lo.observer = &observer_;
    lo.check_invariants = true;
    loop_ = std::make_unique<EngineLoop>(engine_.get(), tokenizer_, lo);
  }

  std::shared_ptr<TokenStream> Submit(std::vector<int32_t> prompt, int max_new, int priority = 0,
                                      size_t outbox = 1 << 20) {
    auto r = std::make_unique<Request>();
    r->prompt_ids = std::move(prompt);
    r->sampling.temperature = 0.0f;
    r->sampling.seed = 1;
    r->stop.max_new_tokens = max_new;
    r->stop.ignore_eos = true;
    r->priority = priority;
    r->arrival = absl::Now();
    r->stream = std::make_shared<TokenStream>(outbox);
    auto stream = r->stream;
    absl::Status st = loop_->Submit(std::move(r));
    EXPECT_TRUE(st.ok()) << st;
    return stream;
  }

  // Tokens and finish of a stream read to its end (after the loop ran).
  static std::pair<std::vector<int32_t>, FinishReason> Drain(TokenStream& s) {
    std::vector<int32_t> tokens;
    while (auto e = s.Pop()) {
      tokens.insert(tokens.end(), e->token_ids.begin(), e->token_ids.end());
      if (e->is_final()) return {tokens, e->finish};
    }
    return {tokens, FinishReason::kNone};
  }

  // The greedy continuation the fake engine gives `prompt`.
  std::vector<int32_t> Expected(const std::vector<int32_t>& prompt, int n) const {
    std::vector<int32_t> seq = prompt, out;
    for (int i = 0; i < n; ++i) {
      const int32_t t = engine_->NextToken(seq.back(), static_cast<int32_t>(seq.size() - 1));
      seq.push_back(t);
      out.push_back(t);
    }
    return out;
  }

  void RunUntilIdle(int max_steps = 100000) {
    for (int i = 0; i < max_steps && loop_->RunOnce(); ++i) {
    }
  }

  static std::vector<int32_t> Prompt(int n, int salt) {
    std::vector<int32_t> p(n);
    for (int i = 0; i < n; ++i) p[i] = (i * 13 + salt * 7) % 200;
    return p;
  }

  static engine::tokenizer::Tokenizer* tokenizer_;
  CountingObserver observer_;
  std::unique_ptr<FakeEngine> engine_;
  std::unique_ptr<EngineLoop> loop_;
};

engine::tokenizer::Tokenizer* SchedulerPolicyTest::tokenizer_ = nullptr;

TEST_F(SchedulerPolicyTest, ChunkedPrefillAndDecodesFirstByIteration) {
  EngineLoopOptions lo;
  lo.max_batched_tokens = 8;
  lo.max_num_seqs = 4;
  Make({}, lo);
  Submit(Prompt(10, 1), 3);  // A
  Submit(Prompt(3, 2), 2);   // B
  // {new tokens per scheduled sequence, in plan order} for each step.
  const std::vector<std::vector<int32_t>> expected = {
      {8},     // A's first chunk fills the budget; B waits
      {2, 3},  // A's last chunk, B admitted with its whole prompt
      {1, 1},  // both decode
      {1},     // A decodes its last token (3 in all); B finished with 2
  };
  for (size_t step = 0; step < expected.size(); ++step) {
    ASSERT_TRUE(loop_->RunOnce()) << "step " << step;
    EXPECT_EQ(engine_->history().back().new_tokens, expected[step]) << "step " << step;
  }
  EXPECT_FALSE(loop_->RunOnce());
}

TEST_F(SchedulerPolicyTest, PreemptsTheMostRecentAndRecomputesIdentically) {
  FakeEngineOptions fo;
  fo.num_blocks = 4;
  fo.block_tokens = 4;
  fo.max_model_len = 16;
  Make(fo, {});
  const auto px = Prompt(4, 3), py = Prompt(4, 4);
  auto x = Submit(px, 8);
  auto y = Submit(py, 8);
  RunUntilIdle();
  EXPECT_GE(observer_.preemptions, 1);
  auto [tx, fx] = Drain(*x);
  auto [ty, fy] = Drain(*y);
  EXPECT_EQ(fx, FinishReason::kLength);
  EXPECT_EQ(fy, FinishReason::kLength);
  EXPECT_EQ(tx, Expected(px, 8));
  EXPECT_EQ(ty, Expected(py, 8));
  // The older request was never preempted: its context only ever grew.
  EXPECT_TRUE(loop_->CheckInvariants().ok());
  EXPECT_EQ(loop_->load().free_kv_blocks, 4);
}

TEST_F(SchedulerPolicyTest, LongPromptDoesNotStallDecodes) {
  Make({}, {});  // default budget 2048, 64 sequences; fake step 10 ms + 2.5 us/token
  std::vector<std::shared_ptr<TokenStream>> decoders;
  for (int i = 0; i < 16; ++i) decoders.push_back(Submit(Prompt(8, i), 200));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(loop_->RunOnce());  // all 16 decoding
  engine_->ClearHistory();
  ASSERT_TRUE(loop_->RunOnce());
  const double gap_before = 0.010 + 2.5e-6 * engine_->history().back().num_tokens;
  auto big = Submit(Prompt(4096, 99), 4);
  int steps = 0;
  bool got_first = false;
  double worst_gap = 0;
  while (!got_first && steps < 20) {
    engine_->ClearHistory();
    ASSERT_TRUE(loop_->RunOnce());
    ++steps;
    const auto& rec = engine_->history().back();
    // Every decoding sequence got its token in this step.
    EXPECT_EQ(std::count(rec.new_tokens.begin(), rec.new_tokens.end(), 1), 16) << "step " << steps;
    worst_gap = std::max(worst_gap, 0.010 + 2.5e-6 * rec.num_tokens);
    while (auto e = big->Pop()) got_first |= !e->token_ids.empty();
  }
  const int bound = static_cast<int>(std::ceil(4096.0 / (2048 - 16))) + 1;
  EXPECT_TRUE(got_first);
  EXPECT_LE(steps, bound);
  EXPECT_LE(worst_gap, 2.0 * gap_before);
  std::printf("[policy] 4k prompt: first token after %d steps (bound %d); decode gap %.2f ms -> %.2f ms\n",
              steps, bound, gap_before * 1e3, worst_gap * 1e3);
}

TEST_F(SchedulerPolicyTest, PriorityOrdersAdmissionAndAgingPreventsStarvation) {
  EngineLoopOptions lo;
  lo.max_num_seqs = 1;
  lo.aging = absl::ZeroDuration();
  Make({}, lo);
  auto low = Submit(Prompt(4, 1), 2, /*priority=*/5);
  auto high = Submit(Prompt(4, 2), 2, /*priority=*/-1);
  ASSERT_TRUE(loop_->RunOnce());
  EXPECT_TRUE(high->Pop().has_value());  // the high-priority one ran first
  EXPECT_FALSE(low->Pop().has_value());
  RunUntilIdle();

  lo.aging = absl::Milliseconds(1);
  Make({}, lo);
  auto blocker = Submit(Prompt(4, 3), 3, 0);
  ASSERT_TRUE(loop_->RunOnce());  // the blocker holds the one place
  auto old_low = Submit(Prompt(5, 4), 2, /*priority=*/3);
  absl::SleepFor(absl::Milliseconds(20));  // ages by ~20 levels: now outranks priority 0
  auto new_high = Submit(Prompt(6, 5), 2, /*priority=*/0);
  engine_->ClearHistory();
  RunUntilIdle();
  // The first prefill after the blocker is old_low's (5 tokens), not new_high's (6).
  int first_prefill = 0;
  for (const auto& rec : engine_->history()) {
    for (int32_t n : rec.new_tokens) {
      if (first_prefill == 0 && n > 1) first_prefill = n;
    }
  }
  EXPECT_EQ(first_prefill, 5);
  EXPECT_EQ(Drain(*old_low).second, FinishReason::kLength);
  EXPECT_EQ(Drain(*new_high).second, FinishReason::kLength);
  EXPECT_EQ(Drain(*blocker).second, FinishReason::kLength);
}

TEST_F(SchedulerPolicyTest, RandomizedStepsKeepInvariants) {
  FakeEngineOptions fo;
  fo.num_blocks = 64;
  fo.block_tokens = 8;
  fo.num_state_slots = 12;  // a hybrid: blocks and slots
  fo.max_model_len = 256;
  EngineLoopOptions lo;
  lo.max_batched_tokens = 96;
  lo.max_num_seqs = 16;
  lo.max_queue = 64;
  lo.aging = absl::Milliseconds(5);
  Make(fo, lo);
  std::mt19937 gen(12345);
  struct Tracked {
    std::shared_ptr<TokenStream> stream;
    std::vector<int32_t> prompt;
    bool greedy;
    std::vector<int32_t> tokens;
    FinishReason finish = FinishReason::kNone;
  };
  std::vector<Tracked> open;
  auto read = [](Tracked& t) {
    while (auto e = t.stream->Pop()) {
      t.tokens.insert(t.tokens.end(), e->token_ids.begin(), e->token_ids.end());
      if (e->is_final()) t.finish = e->finish;
    }
  };
  int submitted = 0, steps = 0, cancelled = 0;
  for (; steps < 10000; ++steps) {
    if (gen() % 3 == 0 && submitted < 2500) {
      auto r = std::make_unique<Request>();
      r->prompt_ids = Prompt(1 + gen() % 120, submitted);
      r->sampling.temperature = (gen() % 2) ? 0.0f : 1.0f;
      r->sampling.seed = gen();
      r->stop.max_new_tokens = 1 + gen() % 100;
      r->stop.ignore_eos = true;
      r->priority = static_cast<int32_t>(gen() % 4);
      r->arrival = absl::Now();
      if (gen() % 10 == 0) r->deadline = absl::Now() + absl::Microseconds(gen() % 3000);
      // Some clients read slowly (small outbox): they are cancelled.
      r->stream = std::make_shared<TokenStream>(gen() % 10 == 0 ? 3 : 1 << 20);
      Tracked t{r->stream, r->prompt_ids, r->sampling.temperature == 0.0f, {}, FinishReason::kNone};
      if (loop_->Submit(std::move(r)).ok()) open.push_back(std::move(t));
      ++submitted;
    }
    if (!open.empty() && gen() % 50 == 0) {
      open[gen() % open.size()].stream->Cancel();
      ++cancelled;
    }
    loop_->RunOnce();  // aborts if an invariant breaks (check_invariants)
    for (auto& t : open) {
      if (gen() % 2) read(t);
    }
  }
  RunUntilIdle();
  ASSERT_TRUE(loop_->CheckInvariants().ok());
  const LoopLoad load = loop_->load();
  EXPECT_EQ(load.free_kv_blocks, load.total_kv_blocks);
  EXPECT_EQ(load.free_state_slots, load.total_state_slots);
  EXPECT_EQ(load.running, 0);
  EXPECT_EQ(load.waiting, 0);
  int checked = 0;
  for (auto& t : open) {
    read(t);
    EXPECT_NE(t.finish, FinishReason::kNone);
    // Greedy requests that ran to their length produced exactly the fake
    // model's continuation, preempted and recomputed or not.
    if (t.greedy && t.finish == FinishReason::kLength) {
      EXPECT_EQ(t.tokens, Expected(t.prompt, static_cast<int>(t.tokens.size())));
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
  std::printf("[policy] %d steps, %d requests, %d cancels, %d preemptions\n", steps, submitted,
              cancelled, observer_.preemptions);
  EXPECT_GT(observer_.preemptions, 0);
}

}  // namespace
}  // namespace hybridserve::scheduler
