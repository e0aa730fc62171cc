// ServerConfig: every command-line flag of the server, parsed and validated.
#ifndef HYBRIDSERVE_SERVER_CONFIG_H_
#define HYBRIDSERVE_SERVER_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hybridserve::server {

struct ServerConfig {
  std::string model;              // checkpoint folder
  std::string served_model_name;  // default: the folder's name
  std::string host = "0.0.0.0";
  int port = 50051;               // 0: pick a free port
  int metrics_port = 9464;        // 0: pick a free port; -1: no metrics endpoint
  bool metrics_port_is_default = true;  // not given on the command line
  double cost_per_device_hour = 0.0;
  std::string device = "auto";
  std::string dtype = "auto";
  int threads = 0;
  int64_t max_num_seqs = 64;
  int64_t max_batched_tokens = 2048;
  int64_t max_model_len = 0;
  int64_t block_tokens = 16;
  uint64_t kv_cache_bytes = 256ull << 20;
  double gpu_memory_fraction = 0.9;
  int64_t max_queue = 1024;
  absl::Duration drain_timeout = absl::Seconds(30);
  int32_t default_max_new_tokens = 256;
  int32_t max_logprobs = 20;
  int64_t max_input_bytes = 1 << 20;
  int64_t max_stop_strings = 16;
  int64_t max_stop_string_bytes = 256;
  int64_t outbox_events = 512;
  // Limits on what one client may ask (DESIGN.md section 5).
  int64_t max_message_bytes = 4 << 20;      // gRPC receive size
  int64_t max_prompt_tokens = 0;            // 0: only --max-model-len bounds the prompt
  int32_t max_new_tokens = 32768;           // cap on stopping.max_new_tokens
  int32_t max_streams_per_connection = 256; // HTTP/2 concurrent streams
  std::string ready_file;  // written with the ports once serving
  // Security (docs/deploy.md): TLS on the main port, mutual TLS with a client
  // CA, a plaintext health-only port, API keys.
  std::string tls_cert;       // PEM certificate chain; with tls_key, or neither
  std::string tls_key;        // PEM private key
  std::string tls_client_ca;  // PEM CA bundle: clients must present a cert it signed
  int health_port = -1;       // plaintext grpc.health.v1.Health; 0: a free port; -1: off
  std::string api_keys_file;  // '<name> <key>' lines; empty: no keys needed
};

// Parses argv (flags may be spelled --foo-bar or --foo_bar). Prints usage and
// exits on --help. Errors name the flag and the allowed values.
absl::StatusOr<ServerConfig> ParseServerFlags(int argc, char** argv);

// Checks ranges and combinations; errors name the flag.
absl::Status Validate(const ServerConfig& config);

}  // namespace hybridserve::server

#endif  // HYBRIDSERVE_SERVER_CONFIG_H_
