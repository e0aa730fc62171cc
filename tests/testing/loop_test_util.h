// Helpers for tests of the engine loop with a real engine (no gRPC): requests
// with fixed sampling, streams read to their end, and waiting for the loop to
// go idle.
#ifndef HYBRIDSERVE_TESTS_TESTING_LOOP_TEST_UTIL_H_
#define HYBRIDSERVE_TESTS_TESTING_LOOP_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/runtime/engine.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "scheduler/engine_loop.h"
#include "scheduler/request.h"
#include "scheduler/token_stream.h"

namespace hybridserve::testing {

// What a stream delivered, up to and including its final event.
struct StreamResult {
  std::vector<int32_t> tokens;
  std::vector<double> logprobs;
  std::string text;
  scheduler::FinishReason finish = scheduler::FinishReason::kNone;
  absl::Status status;
  int events = 0;
};

// Reads `stream` to its final event (busy-polling; the tests are short). Adds
// a test failure when it does not finish within `timeout`.
StreamResult CollectStream(scheduler::TokenStream& stream, absl::Duration timeout);

// A request for `prompt` generating exactly `max_new` tokens (EOS ignored):
// greedy at temperature 0, else sampled with `seed`; no logprobs; a stream of
// 1024 events.
std::unique_ptr<scheduler::Request> MakeTestRequest(std::vector<int32_t> prompt, int max_new,
                                                    float temperature = 0.0f,
                                                    uint64_t seed = 1);

// Submits `r` (expecting it accepted) and collects its stream.
StreamResult RunAlone(scheduler::EngineLoop& loop, std::unique_ptr<scheduler::Request> r,
                      absl::Duration timeout);

// A prompt of `n` tokens below 256; different salts give different prompts.
std::vector<int32_t> TestPrompt(int n, int salt);

// Waits up to 10 s for the loop's published load to show every KV block and
// state slot free and nothing running or waiting (it is published after each
// step); returns the last load read.
scheduler::LoopLoad WaitForIdleLoad(const scheduler::EngineLoop& loop);

// Base of engine-loop test fixtures (TestBase: ::testing::Test or a
// ::testing::TestWithParam): an engine, its tokenizer and a started loop over
// them, with the helpers above bound to them.
template <typename TestBase>
class EngineLoopFixture : public TestBase {
 protected:
  // Replaces the loop by one with `options` over a new engine made from
  // `engine_options` (the tokenizer read from its model_dir), warmed up and
  // started. Fatal failure on error.
  void StartLoop(const engine::EngineOptions& engine_options,
                 const scheduler::EngineLoopOptions& options) {
    loop_.reset();
    auto e = engine::Engine::Create(engine_options);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = *std::move(e);
    auto t = engine::tokenizer::Tokenizer::FromFile(engine_options.model_dir);
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
    loop_ = std::make_unique<scheduler::EngineLoop>(engine_.get(), tokenizer_.get(), options);
    ASSERT_TRUE(loop_->Warmup().ok());
    loop_->Start();
  }

  static std::unique_ptr<scheduler::Request> MakeRequest(std::vector<int32_t> prompt,
                                                         int max_new, float temperature = 0.0f,
                                                         uint64_t seed = 1) {
    return MakeTestRequest(std::move(prompt), max_new, temperature, seed);
  }
  StreamResult Collect(scheduler::TokenStream& stream) const {
    return CollectStream(stream, collect_timeout_);
  }
  StreamResult RunAlone(std::unique_ptr<scheduler::Request> r) {
    return testing::RunAlone(*loop_, std::move(r), collect_timeout_);
  }

  // How long Collect and RunAlone wait for a stream to finish.
  absl::Duration collect_timeout_ = absl::Seconds(60);
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<engine::tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<scheduler::EngineLoop> loop_;
};

}  // namespace hybridserve::testing

#endif  // HYBRIDSERVE_TESTS_TESTING_LOOP_TEST_UTIL_H_
