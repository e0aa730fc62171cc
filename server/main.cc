// hybridserve: flags → Engine, tokenizer, EngineLoop, gRPC services → warm up →
// serve → drain on SIGTERM.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/self_check.h"
#include "engine/tokenizer/tokenizer.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "scheduler/engine_loop.h"
#include "server/api_keys.h"
#include "server/config.h"
#include "server/inference_service.h"
#include "server/metrics.h"
#include "server/tls.h"

namespace hybridserve::server {
namespace {

void Log(const std::string& line) {
  const std::string now = absl::FormatTime("%Y-%m-%d %H:%M:%E3S", absl::Now(), absl::LocalTimeZone());
  std::fprintf(stderr, "%s %s\n", now.c_str(), line.c_str());
}

int Fail(const absl::Status& status) {
  Log(absl::StrCat("error: ", status.ToString()));
  return 1;
}

std::vector<int32_t> MergeEos(const engine::ModelConfig& m, const engine::GenerationConfig& g) {
  std::vector<int32_t> ids;
  for (int64_t id : m.eos_token_ids) ids.push_back(static_cast<int32_t>(id));
  for (int64_t id : g.eos_token_ids) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

int Serve(int argc, char** argv) {
  // Signals are taken by sigwait below: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);  // reloads --api-keys-file
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Abseil's mutex deadlock detector costs a graph update per lock; the
  // lock order here is simple and covered by tests.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::StatusOr<ServerConfig> parsed = ParseServerFlags(argc, argv);
  if (!parsed.ok()) return Fail(parsed.status());
  const ServerConfig& config = *parsed;
  if (absl::Status st = Validate(config); !st.ok()) return Fail(st);
  // TLS files and API keys are checked before the model loads: a bad file fails fast.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = MainPortCredentials(config);
  if (!credentials.ok()) return Fail(credentials.status());
  ApiKeyStore api_keys;
  std::vector<std::string> key_names;
  if (!config.api_keys_file.empty()) {
    absl::StatusOr<std::vector<std::string>> loaded = api_keys.Load(config.api_keys_file);
    if (!loaded.ok()) {
      return Fail(absl::Status(loaded.status().code(),
                               absl::StrCat("--api-keys-file: ", loaded.status().message())));
    }
    key_names = *std::move(loaded);
    Log(absl::StrCat("API keys: ", key_names.size(), " loaded from ", config.api_keys_file, " (",
                     absl::StrJoin(key_names, ", "), ")"));
  }

  engine::EngineOptions eo;
  eo.model_dir = config.model;
  eo.device = config.device;
  eo.dtype = config.dtype;
  eo.num_threads = config.threads;
  eo.kv_cache_bytes = config.kv_cache_bytes;
  eo.gpu_memory_fraction = config.gpu_memory_fraction;
  eo.block_tokens = config.block_tokens;
  eo.max_num_tokens = config.max_batched_tokens;
  eo.max_num_seqs = config.max_num_seqs;
  eo.max_model_len = config.max_model_len;
  eo.log = Log;
  absl::StatusOr<std::unique_ptr<engine::Engine>> engine = engine::Engine::Create(eo);
  if (!engine.ok()) return Fail(engine.status());
  Log(absl::StrCat("loading tokenizer from ", config.model));
  engine::tokenizer::TokenizerOptions to;
  to.max_input_bytes = static_cast<size_t>(config.max_input_bytes);
  auto tokenizer = engine::tokenizer::Tokenizer::FromFile(config.model, to);
  if (!tokenizer.ok()) return Fail(tokenizer.status());

  MetricsOptions mo;
  mo.model = config.served_model_name;
  mo.architecture = std::string(engine::FamilyName((*engine)->config().family()));
  mo.cost_per_device_hour = config.cost_per_device_hour;
  mo.memory = (*engine)->memory_plan();
  ServerMetrics metrics(mo);
  int metrics_port = -1;
  if (config.metrics_port >= 0) {
    absl::StatusOr<int> bound = metrics.Expose(config.host, config.metrics_port);
    if (bound.ok()) {
      metrics_port = *bound;
      Log(absl::StrCat("metrics on http://", config.host, ":", metrics_port, "/metrics"));
    } else if (config.metrics_port_is_default) {
      // Another server on this machine has the default port: serve without
      // metrics rather than not at all (an explicit --metrics-port must bind).
      Log(absl::StrCat("warning: ", bound.status().message(),
                       "; no metrics endpoint (set --metrics-port)"));
    } else {
      return Fail(bound.status());
    }
  }

  scheduler::EngineLoopOptions lo;
  lo.observer = &metrics;
  lo.max_num_seqs = config.max_num_seqs;
  lo.max_batched_tokens = config.max_batched_tokens;
  lo.max_queue = config.max_queue;
  scheduler::EngineLoop loop(engine->get(), tokenizer->get(), lo);
  Log(absl::StrCat("self-check: GEMM on the ", (*engine)->device_name(),
                   " backend against a plain loop"));
  if (absl::Status st = engine::RunSelfChecks((*engine)->backend()); !st.ok()) return Fail(st);
  Log("warm-up step");
  const absl::Time warm_start = absl::Now();
  if (absl::Status st = loop.Warmup(); !st.ok()) return Fail(st);
  (*engine)->FinishWarmup();  // no device allocation in the step loop from here
  Log(absl::StrFormat("warm-up done in %.2f s", absl::ToDoubleSeconds(absl::Now() - warm_start)));

  ModelContext model;
  model.config = config;
  model.served_name = config.served_model_name;
  model.model = (*engine)->config();
  model.generation = (*engine)->generation_config();
  model.memory = (*engine)->memory_plan();
  model.max_model_len = (*engine)->max_model_len();
  model.device = (*engine)->device_name();
  model.eos_token_ids = MergeEos(model.model, model.generation);
  model.tokenizer = tokenizer->get();
  model.loop = &loop;

  InferenceService service(&model);
  metrics.AddKeyNames(key_names);
  service.RequireApiKeys(&api_keys, &metrics);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::StrCat(config.host, ":", config.port),
                           *credentials, &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, config.max_streams_per_connection);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return Fail(absl::UnavailableError(absl::StrCat("cannot listen on ", config.host, ":", config.port)));
  }
  std::unique_ptr<HealthPortServer> health_port;
  if (config.health_port >= 0) {
    absl::StatusOr<std::unique_ptr<HealthPortServer>> started =
        HealthPortServer::Start(config.host, config.health_port);
    if (!started.ok()) return Fail(started.status());
    health_port = *std::move(started);
  }
  loop.Start();
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(v1::Inference::service_full_name(), true);
  if (health_port) health_port->SetServing(v1::Inference::service_full_name(), true);
  Log(absl::StrCat("serving '", model.served_name, "' on ", config.host, ":", port,
                   " (gRPC hybridserve.v1.Inference, ", TransportName(config),
                   "; health and reflection enabled", api_keys.enabled() ? "; API keys required" : "",
                   ")"));
  if (health_port) {
    Log(absl::StrCat("plaintext health on ", config.host, ":", health_port->port(),
                     " (grpc.health.v1.Health only)"));
  }
  if (!config.ready_file.empty()) {
    const std::string tmp = config.ready_file + ".tmp";
    std::ofstream ready(tmp);
    ready << port << "\n" << metrics_port << "\n";
    if (health_port) ready << health_port->port() << "\n";
    ready.close();
    std::rename(tmp.c_str(), config.ready_file.c_str());
  }

  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    if (config.api_keys_file.empty()) {
      Log("SIGHUP: no --api-keys-file to reload");
      continue;
    }
    absl::StatusOr<std::vector<std::string>> reloaded = api_keys.Load(config.api_keys_file);
    if (!reloaded.ok()) {
      Log(absl::StrCat("SIGHUP: keeping the API keys in use: ", reloaded.status().ToString()));
      continue;
    }
    metrics.AddKeyNames(*reloaded);
    Log(absl::StrCat("SIGHUP: API keys reloaded: ", reloaded->size(), " (",
                     absl::StrJoin(*reloaded, ", "), ")"));
  }
  Log(absl::StrCat("signal ", signal_number, ": draining (up to ",
                   absl::FormatDuration(config.drain_timeout), ")"));
  health->SetServingStatus(false);
  health->SetServingStatus(v1::Inference::service_full_name(), false);
  if (health_port) health_port->SetServing(v1::Inference::service_full_name(), false);
  service.StopAccepting();
  loop.BeginDrain();
  if (!loop.WaitUntilIdle(absl::Now() + config.drain_timeout)) {
    const int ended = loop.CancelAll(absl::UnavailableError("the server shut down before the request finished"));
    Log(absl::StrCat("drain timeout: cancelled ", ended, " requests"));
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (health_port) health_port->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  loop.Stop();
  Log("stopped");
  return 0;
}

}  // namespace
}  // namespace hybridserve::server

int main(int argc, char** argv) { return hybridserve::server::Serve(argc, argv); }
