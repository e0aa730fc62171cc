// FakeEngine: a StepEngine that computes no math, for scheduler tests and the
// scheduler benchmark. It validates every plan like the real engine, charges a
// modelled cost (fixed + per token) as forward_seconds without sleeping, and
// returns logits whose argmax is a fixed function of (token, position) — so a
// sequence's greedy continuation depends only on its own tokens (the same
// batched, alone, or recomputed after preemption).
// Thread-compatible.
#ifndef HYBRIDSERVE_TOOLS_LIB_FAKE_ENGINE_H_
#define HYBRIDSERVE_TOOLS_LIB_FAKE_ENGINE_H_

#include <cstdint>
#include <vector>

#include "engine/runtime/engine.h"
#include "engine/runtime/step_engine.h"

namespace hybridserve::tools {

struct FakeEngineOptions {
  int64_t vocab_size = 256;
  int64_t num_blocks = 1024;  // 0: no attention layers
  int64_t block_tokens = 16;
  int64_t num_state_slots = 0;  // > 0: a model with SSM layers
  int64_t max_num_tokens = 2048;
  int64_t max_model_len = 4096;
  double step_fixed_seconds = 0.010;      // modelled cost of a step ...
  double step_per_token_seconds = 2.5e-6;  // ... plus this per token
};

// What one Step saw (for table-driven tests).
struct FakeStepRecord {
  std::vector<int32_t> new_tokens;   // per sequence
  std::vector<int32_t> context_len;  // per sequence
  std::vector<int32_t> state_slot;   // per sequence
  int64_t num_tokens = 0;
};

class FakeEngine final : public engine::StepEngine {
 public:
  explicit FakeEngine(const FakeEngineOptions& options);

  const engine::MemoryPlan& memory_plan() const override { return plan_; }
  const engine::StepPlanLimits& limits() const override { return limits_; }
  int64_t max_model_len() const override { return options_.max_model_len; }
  absl::Status Step(const engine::StepPlan& plan, engine::StepOutput* out) override;

  // The greedy token after `token` at `position`.
  int32_t NextToken(int32_t token, int32_t position) const;

  // CPU time (this thread) spent inside Step so far: what a benchmark
  // subtracts to get the loop's own cost.
  double step_cpu_seconds() const { return step_cpu_seconds_; }

  // Every step so far (cleared by ClearHistory).
  const std::vector<FakeStepRecord>& history() const { return history_; }
  void ClearHistory() { history_.clear(); }
  void set_record_history(bool record) { record_history_ = record; }
  // Keeps a copy of the last step's logits (benchmarks re-run the sampler on
  // them to measure its math alone); the copy is charged to the step.
  void set_keep_logits(bool keep) { keep_logits_ = keep; }
  const std::vector<float>& last_logits() const { return last_logits_; }

 private:
  FakeEngineOptions options_;
  engine::MemoryPlan plan_;
  engine::StepPlanLimits limits_;
  std::vector<FakeStepRecord> history_;
  bool record_history_ = true;
  bool keep_logits_ = false;
  std::vector<float> last_logits_;
  double step_cpu_seconds_ = 0.0;
  engine::PlanCheckScratch plan_check_;
};

}  // namespace hybridserve::tools

#endif  // HYBRIDSERVE_TOOLS_LIB_FAKE_ENGINE_H_
