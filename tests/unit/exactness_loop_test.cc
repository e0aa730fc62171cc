// Class (b) through the engine loop (no gRPC), for every architecture: each
// request run alone, then all of them at once in a loop whose token budget
// splits prompts at varying points and mixes prefill chunks with decodes,
// whose running set is capped (requests wait) and, for models with attention,
// whose KV cache is too small for all of them (sequences are preempted and
// recomputed). Tokens and logprobs must be bitwise those of the runs alone,
// greedy and seeded-sampled alike.
#include <atomic>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/runtime/engine.h"
#include "gtest/gtest.h"
#include "scheduler/engine_loop.h"
#include "scheduler/loop_observer.h"
#include "tests/testing/loop_test_util.h"
#include "tests/testing/test_env.h"
#include "tools/lib/tiny_model.h"

namespace hybridserve::scheduler {
namespace {

using tools::TinyArchitecture;
using Result = testing::StreamResult;

class ExactnessLoopTest
    : public testing::EngineLoopFixture<::testing::TestWithParam<TinyArchitecture>> {
 protected:
  void SetUp() override {
    collect_timeout_ = absl::Seconds(300);
    auto o = tools::TinyModelPreset(GetParam(), "tiny");
    ASSERT_TRUE(o.ok());
    o->seed = 5;
    dir_ = testing::MakeTempDir() / "model";
    ASSERT_TRUE(tools::WriteTinyModel(*o, dir_).ok());
  }

  void MakeLoop(int64_t max_num_seqs, int64_t max_batched_tokens, uint64_t kv_bytes,
                int threads, LoopObserver* observer) {
    engine::EngineOptions eo;
    eo.model_dir = dir_;
    eo.device = "cpu";
    eo.num_threads = threads;
    eo.kv_cache_bytes = kv_bytes;
    eo.max_num_tokens = max_batched_tokens;
    eo.max_num_seqs = max_num_seqs;
    eo.max_model_len = 512;
    EngineLoopOptions options;
    options.max_num_seqs = max_num_seqs;
    options.max_batched_tokens = max_batched_tokens;
    options.check_invariants = true;
    options.observer = observer;
    ASSERT_NO_FATAL_FAILURE(StartLoop(eo, options));
  }

  bool has_attention() const {
    return tools::IsDenseTransformer(GetParam()) || GetParam() == TinyArchitecture::kBamba;
  }

  std::filesystem::path dir_;
};

struct PreemptionCounter : LoopObserver {
  void OnPreemption() override { ++preemptions; }
  std::atomic<int> preemptions{0};
};

TEST_P(ExactnessLoopTest, RequestsUnderLoadAreBitwiseThoseRunAlone) {
  // 16 requests: prompts of 1 to 300 tokens, 24 new tokens each; every third
  // one sampled (temperature 0.8, its own seed).
  std::mt19937 gen(21);
  std::uniform_int_distribution<int> len(1, 300);
  struct Spec {
    std::vector<int32_t> prompt;
    float temperature;
    uint64_t seed;
  };
  std::vector<Spec> specs;
  for (int i = 0; i < 16; ++i) {
    specs.push_back({testing::TestPrompt(i == 0 ? 300 : len(gen), i), i % 3 == 2 ? 0.8f : 0.0f,
                     static_cast<uint64_t>(100 + i)});
  }
  constexpr int kNewTokens = 24;
  auto request = [&](const Spec& s) {
    return MakeRequest(s.prompt, kNewTokens, s.temperature, s.seed);
  };

  // Alone: one request at a time, whole prompts in one step, 2 threads.
  ASSERT_NO_FATAL_FAILURE(MakeLoop(4, 512, 8 << 20, 2, nullptr));
  std::vector<Result> alone;
  for (const Spec& s : specs) alone.push_back(RunAlone(request(s)));

  // Together: 1 thread, at most 6 running, 48 tokens a step; with attention, a
  // KV cache of about 1,000 tokens for 16 x up to 324.
  PreemptionCounter observer;
  uint64_t kv_bytes = 8 << 20;
  if (has_attention()) {
    const uint64_t per_token = engine_->memory_plan().kv_bytes_per_token;
    kv_bytes = per_token * 1024 + engine_->memory_plan().state_bytes_per_slot * 6;
  }
  ASSERT_NO_FATAL_FAILURE(MakeLoop(6, 48, kv_bytes, 1, &observer));
  std::vector<std::shared_ptr<TokenStream>> streams;
  for (const Spec& s : specs) {
    auto r = request(s);
    streams.push_back(r->stream);
    ASSERT_TRUE(loop_->Submit(std::move(r)).ok());
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    const Result together = Collect(*streams[i]);
    EXPECT_EQ(together.finish, FinishReason::kLength) << "request " << i;
    EXPECT_EQ(together.tokens, alone[i].tokens) << "request " << i;
    ASSERT_EQ(together.logprobs.size(), alone[i].logprobs.size()) << "request " << i;
    for (size_t j = 0; j < together.logprobs.size(); ++j) {
      // Exact: not a tolerance.
      EXPECT_EQ(together.logprobs[j], alone[i].logprobs[j])
          << "request " << i << " token " << j << " (prompt " << specs[i].prompt.size()
          << " tokens)";
    }
  }
  const int preemptions = observer.preemptions.load();
  std::printf("[exactness] %s: 16 requests, %d preemptions\n",
              std::string(tools::TinyArchitectureName(GetParam())).c_str(), preemptions);
  if (has_attention()) {
    EXPECT_GT(preemptions, 0) << "the KV cache was meant to run out";
  }
  loop_.reset();  // the loop reports to `observer` until it stops
}

INSTANTIATE_TEST_SUITE_P(Models, ExactnessLoopTest,
                         ::testing::ValuesIn(tools::AllTinyArchitectures()),
                         [](const ::testing::TestParamInfo<TinyArchitecture>& info) {
                           return std::string(tools::TinyArchitectureName(info.param));
                         });

}  // namespace
}  // namespace hybridserve::scheduler
