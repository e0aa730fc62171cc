#include "server/config.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

ABSL_FLAG(std::string, model, "",
          "Hugging Face checkpoint folder to serve (config.json, *.safetensors, "
          "tokenizer.json). Required.");
ABSL_FLAG(std::string, served_model_name, "",
          "Name clients use for the model (ListModels, GenerateRequest.model). "
          "Default: the model folder's name.");
ABSL_FLAG(std::string, host, "0.0.0.0", "Address the gRPC server listens on.");
ABSL_FLAG(int, port, 50051, "gRPC port; 0 picks a free port (printed at start-up).");
ABSL_FLAG(int, metrics_port, 9464,
          "Port of the Prometheus /metrics endpoint (same host as --host); 0 picks "
          "a free port, -1 turns the endpoint off. If the default port is taken "
          "the server runs without metrics and says so; a port given here must bind.");
ABSL_FLAG(double, cost_per_device_hour, 0.0,
          "Price of the device per hour (e.g. USD): requests' usage.cost_usd and "
          "the cost metrics (hybridserve_cost_usd_total) use it. 0 = no cost.");
ABSL_FLAG(std::string, device, "auto",
          "auto | cpu | cuda. auto uses CUDA when the build has it and a GPU is "
          "present, else the CPU.");
ABSL_FLAG(std::string, dtype, "auto",
          "auto | f32 | bf16 | f16: precision of the weights. The CPU computes in "
          "f32 (bf16/f16 round the weights); auto keeps the checkpoint's.");
ABSL_FLAG(int, threads, 0, "CPU threads for the CPU backend's ops (results do not depend on it); 0 = all cores.");
ABSL_FLAG(int64_t, max_num_seqs, 64, "Most sequences running at once.");
ABSL_FLAG(int64_t, max_batched_tokens, 2048,
          "Most tokens in one forward pass (prefill chunks + decode tokens). "
          "Must be >= --max-num-seqs.");
ABSL_FLAG(int64_t, max_model_len, 0,
          "Longest sequence, prompt + generated; 0 = the model's "
          "max_position_embeddings.");
ABSL_FLAG(int64_t, block_tokens, 16, "Tokens per KV cache block.");
ABSL_FLAG(int64_t, kv_cache_bytes, 256ll << 20,
          "CPU: bytes of KV cache (a fixed size, not a fraction of RAM, so that "
          "parallel servers cannot exhaust memory).");
ABSL_FLAG(double, gpu_memory_fraction, 0.9,
          "CUDA: fraction of GPU memory for weights, workspace, KV cache and "
          "state slots.");
ABSL_FLAG(int64_t, max_queue, 1024,
          "Most requests waiting to run; more get RESOURCE_EXHAUSTED.");
ABSL_FLAG(double, drain_timeout, 30.0,
          "Seconds running requests may take to finish after SIGTERM before they "
          "are cancelled (UNAVAILABLE).");
ABSL_FLAG(int, default_max_new_tokens, 256,
          "max_new_tokens of requests that do not set it (capped by what is left "
          "of --max-model-len).");
ABSL_FLAG(int, max_logprobs, 20, "Largest logprobs / prompt_logprobs N a request may ask.");
ABSL_FLAG(int64_t, max_input_bytes, 1 << 20, "Largest prompt text, in bytes.");
ABSL_FLAG(int64_t, max_stop_strings, 16, "Most stop strings per request.");
ABSL_FLAG(int64_t, max_stop_string_bytes, 256, "Longest stop string, in bytes.");
ABSL_FLAG(int64_t, outbox_events, 512,
          "Responses that may wait unread per stream; a client that falls this "
          "far behind is cancelled so it cannot stall the others.");
ABSL_FLAG(int64_t, max_message_bytes, 4 << 20,
          "Largest gRPC message a client may send, in bytes (the server's max "
          "receive size); a larger one is refused with RESOURCE_EXHAUSTED giving "
          "both sizes. Must exceed --max-input-bytes.");
ABSL_FLAG(int64_t, max_prompt_tokens, 0,
          "Most prompt tokens per request (text after tokenizing, or token_ids); "
          "more is INVALID_ARGUMENT. 0 = only --max-model-len bounds the prompt.");
ABSL_FLAG(int, max_new_tokens, 32768,
          "Largest stopping.max_new_tokens a request may ask (INVALID_ARGUMENT "
          "above it); also caps --default-max-new-tokens. Bounds how long one "
          "request can run, which --max-model-len does not for pure SSM models.");
ABSL_FLAG(int, max_streams_per_connection, 256,
          "Most Generate (and other) calls one client connection may have open "
          "at once (HTTP/2 MAX_CONCURRENT_STREAMS); further calls wait in the "
          "client until one ends.");
ABSL_FLAG(std::string, ready_file, "",
          "When set, once the server is ready this file gets the gRPC port on its "
          "first line, the metrics port on its second (-1: none) and, with "
          "--health-port, the health port on its third (for scripts and tests).");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain (leaf first) of the gRPC port: with --tls-key the "
          "port speaks TLS only. Give both or neither.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key (unencrypted) of --tls-cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: turns on mutual TLS; clients must present a certificate "
          "this CA signed. Requires --tls-cert and --tls-key.");
ABSL_FLAG(int, health_port, -1,
          "Plaintext gRPC port serving only grpc.health.v1.Health (same host as "
          "--host), for kubelet gRPC probes when the main port uses TLS; it "
          "reports what the main port's health service does (NOT_SERVING while "
          "draining). 0 picks a free port, -1 turns it off.");
ABSL_FLAG(std::string, api_keys_file, "",
          "File of API keys, one '<name> <key>' per line ('#' comments; names "
          "[A-Za-z0-9_.-], keys >= 16 printable characters). When set, every RPC "
          "but health and reflection needs metadata 'authorization: Bearer <key>' "
          "(else UNAUTHENTICATED); requests and tokens are counted per key name. "
          "SIGHUP reloads the file (an invalid file keeps the keys in use).");

namespace hybridserve::server {
namespace {

constexpr char kUsage[] =
    "hybridserve: a gRPC inference server for Transformer, Mamba and hybrid LLMs.\n"
    "\n"
    "  hybridserve --model DIR [--port 50051] [flags]\n"
    "\n"
    "Flags may be written --flag-name or --flag_name.";

// Prints every flag of this program (not the libraries') with its help text
// and default, spelled with dashes.
void PrintHelp() {
  std::map<std::string, const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (flag->Filename().find("server/config.cc") == std::string::npos) continue;
    flags[std::string(name)] = flag;
  }
  std::printf("%s\n\nFlags:\n", kUsage);
  for (const auto& [name, flag] : flags) {
    std::printf("  --%s (default: %s)\n      %s\n",
                absl::StrReplaceAll(name, {{"_", "-"}}).c_str(),
                flag->DefaultValue().empty() ? "\"\"" : flag->DefaultValue().c_str(),
                flag->Help().c_str());
  }
}

// TLS files, the health port and the API keys file: combinations, ranges, and
// that each file can be read (its content is checked where it is used).
absl::Status ValidateSecurity(const ServerConfig& c) {
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return bad("--tls-cert and --tls-key go together: give both or neither");
  }
  if (!c.tls_client_ca.empty() && c.tls_cert.empty()) {
    return bad("--tls-client-ca (mutual TLS) requires --tls-cert and --tls-key");
  }
  if (c.health_port < -1 || c.health_port > 65535) {
    return bad("--health-port must be -1 (off) or in [0, 65535], got ", c.health_port);
  }
  if (c.health_port > 0 && c.health_port == c.port) {
    return bad("--health-port and --port must differ (both ", c.port, ")");
  }
  const std::pair<const char*, const std::string*> files[] = {
      {"--tls-cert", &c.tls_cert}, {"--tls-key", &c.tls_key},
      {"--tls-client-ca", &c.tls_client_ca}, {"--api-keys-file", &c.api_keys_file}};
  for (const auto& [flag, path] : files) {
    if (path->empty()) continue;
    std::error_code ec;
    if (std::filesystem::is_directory(*path, ec)) return bad(flag, ": ", *path, " is a folder");
    if (!std::ifstream(*path, std::ios::binary)) return bad(flag, ": cannot read ", *path);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ServerConfig> ParseServerFlags(int argc, char** argv) {
  // --foo-bar → --foo_bar (only the name part), and our own --help.
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0 && a.rfind("--", 0) == 0) {
      const size_t eq = a.find('=');
      std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (name == "help" || name == "helpfull") {
        PrintHelp();
        std::exit(0);
      }
      a = "--" + absl::StrReplaceAll(name, {{"-", "_"}}) +
          (eq == std::string::npos ? "" : a.substr(eq));
    }
    args.push_back(std::move(a));
  }
  std::vector<char*> ptrs;
  for (auto& a : args) ptrs.push_back(a.data());
  absl::SetProgramUsageMessage(kUsage);
  const std::vector<char*> rest = absl::ParseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
  if (rest.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", rest[1],
                                                   "' (see --help)"));
  }
  ServerConfig c;
  c.model = absl::GetFlag(FLAGS_model);
  c.served_model_name = absl::GetFlag(FLAGS_served_model_name);
  if (c.served_model_name.empty() && !c.model.empty()) {
    c.served_model_name = std::filesystem::path(c.model).lexically_normal().filename().string();
    if (c.served_model_name.empty()) {
      c.served_model_name =
          std::filesystem::path(c.model).lexically_normal().parent_path().filename().string();
    }
  }
  c.host = absl::GetFlag(FLAGS_host);
  c.port = absl::GetFlag(FLAGS_port);
  c.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  for (const std::string& a : args) {
    if (a.rfind("--metrics_port", 0) == 0) c.metrics_port_is_default = false;
  }
  c.cost_per_device_hour = absl::GetFlag(FLAGS_cost_per_device_hour);
  c.device = absl::GetFlag(FLAGS_device);
  c.dtype = absl::GetFlag(FLAGS_dtype);
  c.threads = absl::GetFlag(FLAGS_threads);
  c.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  c.max_batched_tokens = absl::GetFlag(FLAGS_max_batched_tokens);
  c.max_model_len = absl::GetFlag(FLAGS_max_model_len);
  c.block_tokens = absl::GetFlag(FLAGS_block_tokens);
  const int64_t kv = absl::GetFlag(FLAGS_kv_cache_bytes);
  if (kv <= 0) return absl::InvalidArgumentError("--kv-cache-bytes must be > 0");
  c.kv_cache_bytes = static_cast<uint64_t>(kv);
  c.gpu_memory_fraction = absl::GetFlag(FLAGS_gpu_memory_fraction);
  c.max_queue = absl::GetFlag(FLAGS_max_queue);
  const double drain = absl::GetFlag(FLAGS_drain_timeout);
  if (!(drain >= 0)) return absl::InvalidArgumentError("--drain-timeout must be >= 0 seconds");
  c.drain_timeout = absl::Seconds(drain);
  c.default_max_new_tokens = absl::GetFlag(FLAGS_default_max_new_tokens);
  c.max_logprobs = absl::GetFlag(FLAGS_max_logprobs);
  c.max_input_bytes = absl::GetFlag(FLAGS_max_input_bytes);
  c.max_stop_strings = absl::GetFlag(FLAGS_max_stop_strings);
  c.max_stop_string_bytes = absl::GetFlag(FLAGS_max_stop_string_bytes);
  c.outbox_events = absl::GetFlag(FLAGS_outbox_events);
  c.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  c.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  c.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  c.max_streams_per_connection = absl::GetFlag(FLAGS_max_streams_per_connection);
  c.ready_file = absl::GetFlag(FLAGS_ready_file);
  c.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  c.tls_key = absl::GetFlag(FLAGS_tls_key);
  c.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  c.health_port = absl::GetFlag(FLAGS_health_port);
  c.api_keys_file = absl::GetFlag(FLAGS_api_keys_file);
  return c;
}

absl::Status Validate(const ServerConfig& c) {
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (c.model.empty()) return bad("--model is required (a Hugging Face checkpoint folder)");
  if (c.port < 0 || c.port > 65535) return bad("--port must be in [0, 65535], got ", c.port);
  if (c.metrics_port < -1 || c.metrics_port > 65535) {
    return bad("--metrics-port must be -1 (off) or in [0, 65535], got ", c.metrics_port);
  }
  if (!(c.cost_per_device_hour >= 0)) {
    return bad("--cost-per-device-hour must be >= 0, got ", c.cost_per_device_hour);
  }
  if (c.threads < 0) return bad("--threads must be >= 0, got ", c.threads);
  if (c.max_num_seqs < 1) return bad("--max-num-seqs must be >= 1, got ", c.max_num_seqs);
  if (c.max_batched_tokens < c.max_num_seqs) {
    return bad("--max-batched-tokens (", c.max_batched_tokens,
               ") must be >= --max-num-seqs (", c.max_num_seqs, ")");
  }
  if (c.max_model_len < 0) return bad("--max-model-len must be >= 0, got ", c.max_model_len);
  if (c.block_tokens < 1 || c.block_tokens > 1024) {
    return bad("--block-tokens must be in [1, 1024], got ", c.block_tokens);
  }
  if (!(c.gpu_memory_fraction > 0 && c.gpu_memory_fraction <= 1)) {
    return bad("--gpu-memory-fraction must be in (0, 1], got ", c.gpu_memory_fraction);
  }
  if (c.max_queue < 1) return bad("--max-queue must be >= 1, got ", c.max_queue);
  if (c.default_max_new_tokens < 1) {
    return bad("--default-max-new-tokens must be >= 1, got ", c.default_max_new_tokens);
  }
  if (c.max_logprobs < 0) return bad("--max-logprobs must be >= 0, got ", c.max_logprobs);
  if (c.max_input_bytes < 1) return bad("--max-input-bytes must be >= 1");
  if (c.max_stop_strings < 0 || c.max_stop_string_bytes < 1) {
    return bad("--max-stop-strings must be >= 0 and --max-stop-string-bytes >= 1");
  }
  if (c.outbox_events < 2) return bad("--outbox-events must be >= 2, got ", c.outbox_events);
  if (c.max_message_bytes <= c.max_input_bytes || c.max_message_bytes > (int64_t{1} << 31) - 1) {
    return bad("--max-message-bytes must be > --max-input-bytes (", c.max_input_bytes,
               ") and < 2^31, got ", c.max_message_bytes);
  }
  if (c.max_prompt_tokens < 0) {
    return bad("--max-prompt-tokens must be >= 0 (0: no limit but --max-model-len), got ",
               c.max_prompt_tokens);
  }
  if (c.max_new_tokens < 1) return bad("--max-new-tokens must be >= 1, got ", c.max_new_tokens);
  if (c.max_streams_per_connection < 1) {
    return bad("--max-streams-per-connection must be >= 1, got ", c.max_streams_per_connection);
  }
  if (absl::Status st = ValidateSecurity(c); !st.ok()) return st;
  return absl::OkStatus();
}

}  // namespace hybridserve::server
