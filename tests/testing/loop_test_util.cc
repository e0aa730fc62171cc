#include "tests/testing/loop_test_util.h"

#include <optional>
#include <utility>

#include "gtest/gtest.h"

namespace hybridserve::testing {

using scheduler::TokenEvent;

StreamResult CollectStream(scheduler::TokenStream& stream, absl::Duration timeout) {
  StreamResult r;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::optional<TokenEvent> e = stream.Pop();
    if (!e) {
      absl::SleepFor(absl::Microseconds(200));
      continue;
    }
    ++r.events;
    r.tokens.insert(r.tokens.end(), e->token_ids.begin(), e->token_ids.end());
    for (const auto& lp : e->logprobs) r.logprobs.push_back(lp.logprob);
    r.text += e->text;
    if (e->is_final()) {
      r.finish = e->finish;
      r.status = e->status;
      return r;
    }
  }
  ADD_FAILURE() << "stream did not finish";
  return r;
}

std::unique_ptr<scheduler::Request> MakeTestRequest(std::vector<int32_t> prompt, int max_new,
                                                    float temperature, uint64_t seed) {
  auto r = std::make_unique<scheduler::Request>();
  r->prompt_ids = std::move(prompt);
  r->sampling.temperature = temperature;
  r->sampling.seed = seed;
  r->stop.max_new_tokens = max_new;
  r->stop.ignore_eos = true;
  r->logprobs = 0;
  r->arrival = absl::Now();
  r->stream = std::make_shared<scheduler::TokenStream>(1024);
  return r;
}

StreamResult RunAlone(scheduler::EngineLoop& loop, std::unique_ptr<scheduler::Request> r,
                      absl::Duration timeout) {
  auto stream = r->stream;
  EXPECT_TRUE(loop.Submit(std::move(r)).ok());
  return CollectStream(*stream, timeout);
}

std::vector<int32_t> TestPrompt(int n, int salt) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = (i * 37 + salt * 11) % 256;
  return p;
}

scheduler::LoopLoad WaitForIdleLoad(const scheduler::EngineLoop& loop) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  scheduler::LoopLoad load = loop.load();
  while ((load.free_state_slots != load.total_state_slots ||
          load.free_kv_blocks != load.total_kv_blocks || load.running != 0 ||
          load.waiting != 0) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
    load = loop.load();
  }
  return load;
}

}  // namespace hybridserve::testing
