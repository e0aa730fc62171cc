// hs_scheduler_bench: what the engine loop costs per step besides the forward
// pass — draining, policy, block and slot allocation, StepPlan building,
// appending tokens, incremental detokenization, stop checks and event
// dispatch — measured on the fake engine (no math) with N running sequences,
// the sampler's own math measured apart and subtracted; and aggregate decode
// tokens/s through the loop on a tiny real model with 1..64 streams.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "absl/strings/numbers.h"
#include "engine/runtime/engine.h"
#include "engine/sampler.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/engine_loop.h"
#include "scheduler/token_stream.h"
#include "tools/lib/fake_engine.h"
#include "tools/lib/tiny_model.h"

ABSL_FLAG(std::string, running, "64,256,1024", "Running-sequence counts for the overhead part.");
ABSL_FLAG(int, steps, 200, "Decode steps measured per count (after warm-up).");
ABSL_FLAG(std::string, streams, "1,8,32,64", "Stream counts for the real-model throughput part.");
ABSL_FLAG(int, tokens_per_stream, 64, "Tokens each stream generates in the throughput part.");
ABSL_FLAG(int, threads, 0, "CPU threads of the real engine; 0 = all cores.");
ABSL_FLAG(std::string, stop, "zzz", "A stop string given to every request (exercises the checker).");

namespace hybridserve::tools {
namespace {

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> out;
  for (absl::string_view p : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    int v;
    if (absl::SimpleAtoi(p, &v) && v > 0) out.push_back(v);
  }
  return out;
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

std::unique_ptr<scheduler::Request> MakeRequest(int prompt_len, int max_new, int salt) {
  auto r = std::make_unique<scheduler::Request>();
  for (int i = 0; i < prompt_len; ++i) r->prompt_ids.push_back((i * 31 + salt) % 250);
  r->sampling.temperature = 0.0f;
  r->sampling.seed = salt;
  r->stop.max_new_tokens = max_new;
  r->stop.ignore_eos = true;
  r->stop.stop_strings = {absl::GetFlag(FLAGS_stop)};
  r->arrival = absl::Now();
  r->stream = std::make_shared<scheduler::TokenStream>(1 << 20);
  return r;
}

// CPU time of the sampler alone on `logits` (rows of `vocab`), called as the
// loop calls it for the benchmark's greedy requests.
double SamplerSeconds(engine::Sampler& sampler, const std::vector<float>& logits,
                      int64_t vocab) {
  engine::SamplingParams params;
  params.temperature = 0.0f;
  const double t0 = ThreadCpuSeconds();
  int64_t sink = 0;
  for (size_t r = 0; r * vocab < logits.size(); ++r) {
    engine::SampleInput in;
    in.logits = absl::MakeConstSpan(logits.data() + r * vocab, vocab);
    in.params = &params;
    in.seed = 1;
    in.token_index = static_cast<int64_t>(r);
    in.want_logprobs = false;  // as for the benchmark's requests
    sink += sampler.Sample(in).token;
  }
  const double t = ThreadCpuSeconds() - t0;
  if (sink < 0) std::abort();  // keeps the calls
  return t;
}

void Overhead(const engine::tokenizer::Tokenizer& tokenizer) {
  std::printf("Per-step loop overhead on the fake engine: CPU time of the loop thread minus the\n"
              "fake forward pass (plan validation + logits fill). loop_us includes the\n"
              "sampler (greedy over a 256-token vocabulary); sampler_us is the sampler alone\n"
              "re-run on the same logits; overhead_us = loop_us - sampler_us is what the\n"
              "loop costs besides the forward pass and the sampler's math.\n");
  std::printf("%10s %10s %11s %12s %10s %10s %14s\n", "running", "loop_us", "sampler_us",
              "overhead_us", "p90_us", "max_us", "us_per_seq");
  const int steps = absl::GetFlag(FLAGS_steps);
  for (int n : ParseList(absl::GetFlag(FLAGS_running))) {
    FakeEngineOptions fo;
    // Room for every sequence's whole length: no preemption in this measurement.
    fo.num_blocks = n * ((16 + steps + 100 + 15) / 16 + 1);
    fo.block_tokens = 16;
    fo.max_num_tokens = std::max(2048, n);
    fo.max_model_len = 4096;
    fo.step_fixed_seconds = 0;
    fo.step_per_token_seconds = 0;
    FakeEngine fake(fo);
    fake.set_record_history(false);
    fake.set_keep_logits(true);
    engine::Sampler sampler;
    scheduler::EngineLoopOptions lo;
    lo.max_num_seqs = n;
    lo.max_batched_tokens = fo.max_num_tokens;
    lo.max_queue = n + 1;
    scheduler::EngineLoop loop(&fake, &tokenizer, lo);
    std::vector<std::shared_ptr<scheduler::TokenStream>> streams;
    for (int i = 0; i < n; ++i) {
      auto r = MakeRequest(16, steps + 100, i);
      streams.push_back(r->stream);
      if (!loop.Submit(std::move(r)).ok()) std::abort();
    }
    for (int i = 0; i < 20; ++i) loop.RunOnce();  // admit and prefill everyone
    std::vector<double> us, loop_us, sampler_us;
    for (int i = 0; i < steps; ++i) {
      const double t0 = ThreadCpuSeconds();
      const double fake0 = fake.step_cpu_seconds();
      loop.RunOnce();
      const double fake_s = fake.step_cpu_seconds() - fake0;
      const double loop_s = ThreadCpuSeconds() - t0 - fake_s;
      const double sampler_s = SamplerSeconds(sampler, fake.last_logits(), fo.vocab_size);
      loop_us.push_back(loop_s * 1e6);
      sampler_us.push_back(sampler_s * 1e6);
      us.push_back((loop_s - sampler_s) * 1e6);
      for (auto& s : streams) {
        while (s->Pop()) {
        }
      }
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    const double loop_median = median(loop_us), sampler_median = median(sampler_us);
    std::sort(us.begin(), us.end());
    const double overhead = us[us.size() / 2];
    std::printf("%10d %10.1f %11.1f %12.1f %10.1f %10.1f %14.3f\n", n, loop_median,
                sampler_median, overhead, us[us.size() * 9 / 10], us.back(), overhead / n);
    loop.CancelAll(absl::CancelledError("benchmark done"));
  }
}

void Throughput(const std::filesystem::path& model_dir, const engine::tokenizer::Tokenizer& tokenizer) {
  std::printf("\nAggregate decode throughput through the loop, tiny real Llama (%s)\n", model_dir.c_str());
  std::printf("%10s %14s %16s %12s\n", "streams", "tokens/s", "ratio_to_1", "seconds");
  engine::EngineOptions eo;
  eo.model_dir = model_dir;
  eo.device = "cpu";
  eo.num_threads = absl::GetFlag(FLAGS_threads);
  eo.max_num_seqs = 64;
  auto engine = engine::Engine::Create(eo);
  if (!engine.ok()) {
    std::fprintf(stderr, "error: %s\n", engine.status().ToString().c_str());
    return;
  }
  double base = 0;
  const int per_stream = absl::GetFlag(FLAGS_tokens_per_stream);
  for (int n : ParseList(absl::GetFlag(FLAGS_streams))) {
    scheduler::EngineLoopOptions lo;
    lo.max_num_seqs = 64;
    scheduler::EngineLoop loop(engine->get(), &tokenizer, lo);
    std::vector<std::shared_ptr<scheduler::TokenStream>> streams;
    for (int i = 0; i < n; ++i) {
      auto r = MakeRequest(16, per_stream, i);
      streams.push_back(r->stream);
      if (!loop.Submit(std::move(r)).ok()) std::abort();
    }
    const auto t0 = std::chrono::steady_clock::now();
    while (loop.RunOnce()) {
      for (auto& s : streams) {
        while (s->Pop()) {
        }
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tps = n * per_stream / secs;
    if (base == 0) base = tps;
    std::printf("%10d %14.1f %16.2f %12.3f\n", n, tps, tps / base, secs);
  }
}

int Run() {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                     ("hs_scheduler_bench_" + std::to_string(getpid()));
  TinyLlamaOptions options;  // "tiny" sizes
  if (absl::Status st = WriteTinyLlama(options, dir); !st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.ToString().c_str());
    return 1;
  }
  auto tokenizer = engine::tokenizer::Tokenizer::FromFile(dir);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "error: %s\n", tokenizer.status().ToString().c_str());
    return 1;
  }
  Overhead(**tokenizer);
  Throughput(dir, **tokenizer);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace hybridserve::tools

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures the engine loop's per-step overhead (fake engine) and its aggregate decode\n"
      "throughput on a tiny real model.\n  hs_scheduler_bench [--running 64,256,1024] "
      "[--streams 1,8,32,64]");
  absl::ParseCommandLine(argc, argv);
  // As the server does: no deadlock-detection graph updates per lock.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return hybridserve::tools::Run();
}
