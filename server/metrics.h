// ServerMetrics: the Prometheus metrics of DESIGN.md section 6, fed by the
// engine loop (LoopObserver) and exposed on --metrics-port. Every series
// carries the `model` and `architecture` labels. The registry is owned here and
// passed to the exposer; there is no global registry.
// Thread-safe (prometheus-cpp metrics are atomic); observer methods run on the
// engine loop thread.
#ifndef HYBRIDSERVE_SERVER_METRICS_H_
#define HYBRIDSERVE_SERVER_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/runtime/engine.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "scheduler/loop_observer.h"

namespace prometheus {
class Exposer;
}

namespace hybridserve::server {

// The token counters of one API key (both null when no keys are configured).
struct KeyTokenCounters {
  prometheus::Counter* prompt = nullptr;
  prometheus::Counter* generation = nullptr;
};

struct MetricsOptions {
  std::string model;         // served model name
  std::string architecture;  // transformer | ssm | hybrid
  double cost_per_device_hour = 0.0;
  engine::MemoryPlan memory;
};

class ServerMetrics final : public scheduler::LoopObserver {
 public:
  explicit ServerMetrics(const MetricsOptions& options);
  ~ServerMetrics() override;

  // Serves /metrics on host:port (0: a free port). Returns the port.
  absl::StatusOr<int> Expose(const std::string& host, int port);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // API keys: a call authenticated with key `key_name` (rpc: the method name).
  // Returns that key's token counters (the Generate reactor adds the tokens of
  // the stream's final usage). Thread-safe.
  KeyTokenCounters OnKeyRequest(const std::string& key_name, const std::string& rpc);
  // A call refused for a missing or invalid API key.
  void OnUnauthenticated();
  // Zero series for these keys, so rates exist from their first request.
  void AddKeyNames(const std::vector<std::string>& key_names);

  // LoopObserver
  void OnStep(const scheduler::StepStats& stats) override;
  void OnFirstScheduled(int64_t prompt_tokens, double queue_seconds) override;
  void OnToken(bool first, double since_previous_seconds) override;
  void OnFinish(scheduler::FinishReason reason, const scheduler::Usage& usage) override;
  void OnPreemption() override;
  void OnPools(const scheduler::PoolUsage& pools) override;

 private:
  class CostCollectable;
  prometheus::Labels L(prometheus::Labels extra = {}) const;

  const MetricsOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<CostCollectable> cost_;
  std::unique_ptr<prometheus::Exposer> exposer_;

  prometheus::Histogram* ttft_;
  prometheus::Histogram* itl_;
  prometheus::Family<prometheus::Histogram>* duration_;
  prometheus::Histogram* queue_;
  prometheus::Family<prometheus::Histogram>* step_;
  prometheus::Histogram* batch_tokens_;
  prometheus::Histogram* batch_seqs_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generation_tokens_;
  prometheus::Family<prometheus::Counter>* requests_total_;
  prometheus::Counter* preemptions_;
  prometheus::Counter* busy_seconds_;
  prometheus::Gauge* running_;
  prometheus::Gauge* waiting_;
  prometheus::Gauge* kv_used_;
  prometheus::Gauge* kv_free_;
  prometheus::Gauge* slots_used_;
  prometheus::Gauge* slots_free_;
  prometheus::Family<prometheus::Counter>* requests_by_key_;
  prometheus::Family<prometheus::Counter>* tokens_by_key_;
  prometheus::Counter* unauthenticated_;
};

}  // namespace hybridserve::server

#endif  // HYBRIDSERVE_SERVER_METRICS_H_
