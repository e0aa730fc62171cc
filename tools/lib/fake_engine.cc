#include "tools/lib/fake_engine.h"

#include <time.h>

#include <algorithm>

#include "engine/status_macros.h"

namespace hybridserve::tools {

FakeEngine::FakeEngine(const FakeEngineOptions& o) : options_(o) {
  plan_.block_tokens = o.block_tokens;
  plan_.num_blocks = o.num_blocks;
  plan_.kv_bytes_per_token = o.num_blocks > 0 ? 1024 : 0;
  plan_.kv_bytes_per_block = plan_.kv_bytes_per_token * o.block_tokens;
  plan_.kv_cache_bytes = plan_.kv_bytes_per_block * o.num_blocks;
  plan_.num_state_slots = o.num_state_slots;
  plan_.state_bytes_per_slot = o.num_state_slots > 0 ? 65536 : 0;
  plan_.state_cache_bytes = plan_.state_bytes_per_slot * o.num_state_slots;
  limits_.vocab_size = o.vocab_size;
  limits_.block_tokens = o.block_tokens;
  limits_.num_blocks = o.num_blocks;
  limits_.num_state_slots = o.num_state_slots;
  limits_.max_num_tokens = o.max_num_tokens;
  limits_.max_context_len = o.max_model_len;
}

int32_t FakeEngine::NextToken(int32_t token, int32_t position) const {
  const uint64_t h = (static_cast<uint64_t>(token) * 0x9E3779B97F4A7C15ull) ^
                     (static_cast<uint64_t>(position) * 0xC2B2AE3D27D4EB4Full);
  return static_cast<int32_t>((h >> 17) % static_cast<uint64_t>(options_.vocab_size));
}

namespace {
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
}  // namespace

absl::Status FakeEngine::Step(const engine::StepPlan& plan, engine::StepOutput* out) {
  const double cpu_start = ThreadCpuSeconds();
  struct Charge {
    double start;
    double* total;
    ~Charge() { *total += ThreadCpuSeconds() - start; }
  } charge{cpu_start, &step_cpu_seconds_};
  HS_RETURN_IF_ERROR(engine::ValidateStepPlan(plan, limits_, &plan_check_));
  const int64_t vocab = options_.vocab_size;
  out->vocab_size = vocab;
  out->logits.assign(plan.logits_indices.size() * vocab, 0.0f);
  for (size_t r = 0; r < plan.logits_indices.size(); ++r) {
    const int32_t i = plan.logits_indices[r];
    out->logits[r * vocab + NextToken(plan.token_ids[i], plan.positions[i])] = 10.0f;
  }
  if (keep_logits_) last_logits_ = out->logits;
  out->forward_seconds = options_.step_fixed_seconds +
                         options_.step_per_token_seconds * plan.num_tokens();
  if (record_history_) {
    FakeStepRecord rec;
    rec.num_tokens = plan.num_tokens();
    for (int32_t s = 0; s < plan.num_seqs(); ++s) {
      rec.new_tokens.push_back(plan.query_start[s + 1] - plan.query_start[s]);
      rec.context_len.push_back(plan.context_len[s]);
      if (!plan.state_slot.empty()) rec.state_slot.push_back(plan.state_slot[s]);
    }
    history_.push_back(std::move(rec));
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::tools
