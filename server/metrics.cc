#include "server/metrics.h"

#include <exception>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"

namespace hybridserve::server {
namespace {

using prometheus::Histogram;

// Latencies of whole requests and first tokens: 5 ms to 10 minutes.
const Histogram::BucketBoundaries kRequestBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600};
// Steps and inter-token gaps: 100 µs to 10 s.
const Histogram::BucketBoundaries kStepBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
const Histogram::BucketBoundaries kBatchTokenBuckets = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};
const Histogram::BucketBoundaries kBatchSeqBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

// Bytes of memory the OS can still give this process (CPU device).
double HostMemAvailableBytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024.0;
  }
  return 0.0;
}

const char* ReasonLabel(scheduler::FinishReason r) { return scheduler::FinishReasonName(r); }

}  // namespace

// hybridserve_cost_usd_total: wall time since start x the hourly price,
// computed when scraped (idle time included, as DESIGN.md section 6 says).
class ServerMetrics::CostCollectable final : public prometheus::Collectable {
 public:
  CostCollectable(prometheus::Labels labels, double price_per_hour)
      : labels_(std::move(labels)), price_per_hour_(price_per_hour), start_(absl::Now()) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily family;
    family.name = "hybridserve_cost_usd_total";
    family.help = "Wall time since start times --cost-per-device-hour (idle time included)";
    family.type = prometheus::MetricType::Counter;
    prometheus::ClientMetric metric;
    for (const auto& [k, v] : labels_) metric.label.push_back({k, v});
    metric.counter.value = absl::ToDoubleHours(absl::Now() - start_) * price_per_hour_;
    family.metric.push_back(std::move(metric));
    return {std::move(family)};
  }

 private:
  const prometheus::Labels labels_;
  const double price_per_hour_;
  const absl::Time start_;
};

prometheus::Labels ServerMetrics::L(prometheus::Labels extra) const {
  extra["model"] = options_.model;
  extra["architecture"] = options_.architecture;
  return extra;
}

ServerMetrics::ServerMetrics(const MetricsOptions& options)
    : options_(options), registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  auto& r = *registry_;
  ttft_ = &BuildHistogram().Name("hybridserve_time_to_first_token_seconds")
               .Help("Request arrival to its first generated token").Register(r)
               .Add(L(), kRequestBuckets);
  itl_ = &BuildHistogram().Name("hybridserve_inter_token_latency_seconds")
              .Help("Gap between consecutive generated tokens of a sequence").Register(r)
              .Add(L(), kStepBuckets);
  duration_ = &BuildHistogram().Name("hybridserve_request_duration_seconds")
                   .Help("Request arrival to finish, by finish_reason").Register(r);
  queue_ = &BuildHistogram().Name("hybridserve_request_queue_seconds")
                .Help("Request arrival to first scheduled").Register(r)
                .Add(L(), kRequestBuckets);
  step_ = &BuildHistogram().Name("hybridserve_engine_step_seconds")
               .Help("One forward pass, by phase (prefill, decode, mixed)").Register(r);
  batch_tokens_ = &BuildHistogram().Name("hybridserve_batch_tokens")
                       .Help("Tokens in each step").Register(r).Add(L(), kBatchTokenBuckets);
  batch_seqs_ = &BuildHistogram().Name("hybridserve_batch_sequences")
                     .Help("Sequences in each step").Register(r).Add(L(), kBatchSeqBuckets);
  prompt_tokens_ = &BuildCounter().Name("hybridserve_prompt_tokens_total")
                        .Help("Prompt tokens (counted once, even if recomputed)").Register(r).Add(L());
  generation_tokens_ = &BuildCounter().Name("hybridserve_generation_tokens_total")
                            .Help("Generated tokens").Register(r).Add(L());
  requests_total_ = &BuildCounter().Name("hybridserve_requests_total")
                         .Help("Finished requests by finish_reason").Register(r);
  preemptions_ = &BuildCounter().Name("hybridserve_preemptions_total")
                      .Help("Sequences preempted").Register(r).Add(L());
  busy_seconds_ = &BuildCounter().Name("hybridserve_device_busy_seconds_total")
                       .Help("Time the device spent in forward passes").Register(r).Add(L());
  auto& requests = BuildGauge().Name("hybridserve_requests")
                       .Help("Requests by state (running, waiting)").Register(r);
  running_ = &requests.Add(L({{"state", "running"}}));
  waiting_ = &requests.Add(L({{"state", "waiting"}}));
  auto& blocks = BuildGauge().Name("hybridserve_kv_cache_blocks")
                     .Help("KV cache blocks by state (used, free)").Register(r);
  kv_used_ = &blocks.Add(L({{"state", "used"}}));
  kv_free_ = &blocks.Add(L({{"state", "free"}}));
  auto& slots = BuildGauge().Name("hybridserve_ssm_state_slots")
                    .Help("SSM state slots by state (used, free)").Register(r);
  slots_used_ = &slots.Add(L({{"state", "used"}}));
  slots_free_ = &slots.Add(L({{"state", "free"}}));
  const engine::MemoryPlan& m = options.memory;
  auto& memory = BuildGauge().Name("hybridserve_memory_bytes")
                     .Help("Device memory by pool (weights, kv_cache, ssm_state, workspace, free)")
                     .Register(r);
  memory.Add(L({{"pool", "weights"}})).Set(static_cast<double>(m.weight_bytes));
  memory.Add(L({{"pool", "kv_cache"}})).Set(static_cast<double>(m.kv_cache_bytes));
  memory.Add(L({{"pool", "ssm_state"}})).Set(static_cast<double>(m.state_cache_bytes));
  memory.Add(L({{"pool", "workspace"}})).Set(static_cast<double>(m.workspace_bytes));
  memory.Add(L({{"pool", "free"}})).Set(HostMemAvailableBytes());
  BuildGauge().Name("hybridserve_kv_cache_bytes_per_token")
      .Help("KV cache bytes one token takes over all attention layers").Register(r)
      .Add(L()).Set(static_cast<double>(m.kv_bytes_per_token));
  BuildGauge().Name("hybridserve_ssm_state_bytes_per_sequence")
      .Help("SSM state bytes (conv window + state) one sequence takes over all SSM layers")
      .Register(r).Add(L()).Set(static_cast<double>(m.state_bytes_per_slot));
  BuildGauge().Name("hybridserve_cost_per_device_second")
      .Help("--cost-per-device-hour / 3600, for the busy-only cost per token").Register(r)
      .Add(L()).Set(options.cost_per_device_hour / 3600.0);
  // Zero series for every finish reason and phase, so rates exist from the start.
  for (auto reason : {scheduler::FinishReason::kLength, scheduler::FinishReason::kStop,
                      scheduler::FinishReason::kEos, scheduler::FinishReason::kCancelled,
                      scheduler::FinishReason::kError}) {
    requests_total_->Add(L({{"finish_reason", ReasonLabel(reason)}}));
    duration_->Add(L({{"finish_reason", ReasonLabel(reason)}}), kRequestBuckets);
  }
  for (const char* phase : {"prefill", "decode", "mixed"}) {
    step_->Add(L({{"phase", phase}}), kStepBuckets);
  }
  requests_by_key_ = &BuildCounter().Name("hybridserve_requests_by_key_total")
                          .Help("RPCs authenticated with each API key, by key_name and rpc")
                          .Register(r);
  tokens_by_key_ = &BuildCounter().Name("hybridserve_tokens_by_key_total")
                        .Help("Tokens of Generate calls per API key, by key_name and kind "
                              "(prompt, generation), from each stream's final usage")
                        .Register(r);
  unauthenticated_ = &BuildCounter().Name("hybridserve_unauthenticated_requests_total")
                          .Help("RPCs refused for a missing or invalid API key").Register(r)
                          .Add(L());
  cost_ = std::make_shared<CostCollectable>(L(), options.cost_per_device_hour);
}

ServerMetrics::~ServerMetrics() = default;

absl::StatusOr<int> ServerMetrics::Expose(const std::string& host, int port) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(absl::StrCat(host, ":", port), 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", host, ":", port, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(cost_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError("metrics exposer has no listening port");
  return ports.front();
}

KeyTokenCounters ServerMetrics::OnKeyRequest(const std::string& key_name, const std::string& rpc) {
  requests_by_key_->Add(L({{"key_name", key_name}, {"rpc", rpc}})).Increment();
  KeyTokenCounters counters;
  counters.prompt = &tokens_by_key_->Add(L({{"key_name", key_name}, {"kind", "prompt"}}));
  counters.generation = &tokens_by_key_->Add(L({{"key_name", key_name}, {"kind", "generation"}}));
  return counters;
}

void ServerMetrics::OnUnauthenticated() { unauthenticated_->Increment(); }

void ServerMetrics::AddKeyNames(const std::vector<std::string>& key_names) {
  for (const std::string& name : key_names) {
    for (const char* kind : {"prompt", "generation"}) {
      tokens_by_key_->Add(L({{"key_name", name}, {"kind", kind}}));
    }
    for (const char* rpc : {"Generate", "Tokenize", "Detokenize", "ListModels", "GetModel"}) {
      requests_by_key_->Add(L({{"key_name", name}, {"rpc", rpc}}));
    }
  }
}

void ServerMetrics::OnStep(const scheduler::StepStats& s) {
  const char* phase = s.num_prefill_tokens == 0 ? "decode"
                      : s.num_decode_tokens == 0 ? "prefill"
                                                 : "mixed";
  step_->Add(L({{"phase", phase}}), kStepBuckets).Observe(s.forward_seconds);
  batch_tokens_->Observe(static_cast<double>(s.num_tokens));
  batch_seqs_->Observe(static_cast<double>(s.num_seqs));
  busy_seconds_->Increment(s.forward_seconds);
}

void ServerMetrics::OnFirstScheduled(int64_t prompt_tokens, double queue_seconds) {
  prompt_tokens_->Increment(static_cast<double>(prompt_tokens));
  queue_->Observe(queue_seconds);
}

void ServerMetrics::OnToken(bool first, double since_previous_seconds) {
  generation_tokens_->Increment();
  (first ? ttft_ : itl_)->Observe(since_previous_seconds);
}

void ServerMetrics::OnFinish(scheduler::FinishReason reason, const scheduler::Usage& usage) {
  requests_total_->Add(L({{"finish_reason", ReasonLabel(reason)}})).Increment();
  duration_->Add(L({{"finish_reason", ReasonLabel(reason)}}), kRequestBuckets)
      .Observe(usage.total_seconds);
}

void ServerMetrics::OnPreemption() { preemptions_->Increment(); }

void ServerMetrics::OnPools(const scheduler::PoolUsage& p) {
  running_->Set(p.running);
  waiting_->Set(p.waiting);
  kv_used_->Set(static_cast<double>(p.used_kv_blocks));
  kv_free_->Set(static_cast<double>(p.free_kv_blocks));
  slots_used_->Set(static_cast<double>(p.used_state_slots));
  slots_free_->Set(static_cast<double>(p.free_state_slots));
}

}  // namespace hybridserve::server
