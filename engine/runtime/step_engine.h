// StepEngine: what the engine loop needs of an engine — its memory plan and
// limits, and Step. engine::Engine implements it; scheduler tests use a fake
// that computes no math (tests/testing/fake_engine.h).
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_RUNTIME_STEP_ENGINE_H_
#define HYBRIDSERVE_ENGINE_RUNTIME_STEP_ENGINE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "engine/runtime/step_plan.h"

namespace hybridserve::engine {

struct MemoryPlan;
struct StepOutput;

class StepEngine {
 public:
  virtual ~StepEngine() = default;
  virtual const MemoryPlan& memory_plan() const = 0;
  virtual const StepPlanLimits& limits() const = 0;
  virtual int64_t max_model_len() const = 0;
  // Runs one plan; see Engine::Step.
  virtual absl::Status Step(const StepPlan& plan, StepOutput* out) = 0;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_RUNTIME_STEP_ENGINE_H_
