// hs_client: command-line client of hybridserve's gRPC API (hybridserve.v1.Inference).
//
//   hs_client [--server host:port] generate --prompt "Hello" --max_new_tokens 32
//   hs_client generate --prompt_ids 256,72,105 --temperature 0 --json
//   hs_client tokenize "Hello"          hs_client detokenize --ids 72,105
//   hs_client models [--model NAME]
//
// Uses the gRPC C++ synchronous client. Exit status: 0 success, 1 the server
// answered with a non-OK status (printed on stderr as "error: CODE: message"),
// 2 a usage error.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "hybridserve/v1/inference.grpc.pb.h"

// Connection and output.
ABSL_FLAG(std::string, server, "localhost:50051", "Server address, host:port.");
ABSL_FLAG(std::string, model, "",
          "Served model name (see `models`); empty = the server's only model. With "
          "`models`, asks for that one model (GetModel) instead of the list.");
ABSL_FLAG(bool, json, false,
          "Machine-readable output. generate: one JSON object per streamed response "
          "(proto field names), then {\"summary\": {...}} with all token ids, the whole "
          "text, finish_reason and usage. tokenize / detokenize / models: the response "
          "message as one JSON object.");
ABSL_FLAG(std::string, api_key_file, "",
          "File holding the API key to send (as 'authorization: Bearer <key>'), for "
          "servers started with --api-keys-file. Default: the HS_API_KEY environment "
          "variable when set. (A file or the environment, never the command line, so "
          "the key does not show in process listings.)");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA that signed the server's certificate: connect with TLS. "
          "Empty = plaintext.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate for servers that require one (--tls-client-ca); "
          "needs --tls-key and --tls-ca.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(double, timeout, 0,
          "Deadline of the call in seconds (e.g. 2.5); 0 = none. A generate call that "
          "passes it ends with DEADLINE_EXCEEDED.");

// Input.
ABSL_FLAG(std::string, prompt, "",
          "generate / tokenize: the prompt text (tokenized by the server). Words given "
          "after the subcommand are used when this is empty.");
ABSL_FLAG(std::string, prompt_ids, "",
          "generate: the prompt as token ids, comma-separated (e.g. 256,72,105); "
          "instead of --prompt.");
ABSL_FLAG(std::string, ids, "",
          "detokenize: token ids, comma-separated. Numbers given after the subcommand "
          "are used when this is empty.");
ABSL_FLAG(std::optional<bool>, add_special_tokens, std::nullopt,
          "generate / tokenize with text input: =true|false, add the tokenizer's "
          "special tokens (e.g. BOS). Unset = the server's default (true).");

// Sampling. Unset optional flags leave the field unset: the model's
// generation_config.json default applies, else the API's default.
ABSL_FLAG(std::optional<float>, temperature, std::nullopt,
          "Sampling temperature, >= 0; 0 = greedy. Unset = model default, else 1.0.");
ABSL_FLAG(std::optional<int32_t>, top_k, std::nullopt,
          "Keep the k most likely tokens; 0 or -1 = off.");
ABSL_FLAG(std::optional<float>, top_p, std::nullopt,
          "Nucleus sampling mass in (0, 1]; 1 = off.");
ABSL_FLAG(std::optional<float>, min_p, std::nullopt,
          "Drop tokens below min_p times the top token's probability, in [0, 1]; 0 = off.");
ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt,
          "Seed of the sampler: a seeded request returns the same tokens batched or "
          "alone. Unset = random.");
ABSL_FLAG(std::optional<float>, repetition_penalty, std::nullopt,
          "Repetition penalty, > 0; 1 = off.");
ABSL_FLAG(std::optional<float>, presence_penalty, std::nullopt,
          "Presence penalty in [-2, 2]; 0 = off.");
ABSL_FLAG(std::optional<float>, frequency_penalty, std::nullopt,
          "Frequency penalty in [-2, 2]; 0 = off.");

// Stopping.
ABSL_FLAG(std::optional<int32_t>, max_new_tokens, std::nullopt,
          "Most tokens to generate, >= 1. Unset = the server's --default-max-new-tokens.");
ABSL_FLAG(int32_t, min_new_tokens, 0,
          "End-of-sequence and stop tokens are not sampled before this many tokens.");
ABSL_FLAG(std::string, stop, "",
          "A stop string; repeat the flag for several (--stop=A --stop=B). Each value "
          "is one string, taken literally except for C escapes (\\n, \\t, \\\\, \\x41), "
          "so it may contain commas. The stop string is not returned unless "
          "--include_stop_str_in_output.");
ABSL_FLAG(std::string, stop_token_ids, "",
          "Token ids that end generation (returned), comma-separated.");
ABSL_FLAG(bool, ignore_eos, false, "Do not stop at the model's end-of-sequence token(s).");
ABSL_FLAG(bool, include_stop_str_in_output, false,
          "Return the matched stop string at the end of the text.");

// Output detail and scheduling.
ABSL_FLAG(std::optional<int32_t>, logprobs, std::nullopt,
          "Return each generated token's logprob (0) and the top N alternatives (N). "
          "Shown with --json.");
ABSL_FLAG(std::optional<int32_t>, prompt_logprobs, std::nullopt,
          "The same for every prompt position from the second on (first response). "
          "Shown with --json.");
ABSL_FLAG(int32_t, priority, 0, "Lower values are served first.");
ABSL_FLAG(std::optional<bool>, skip_special_tokens, std::nullopt,
          "=true|false: leave special tokens out of the text (generate, detokenize). "
          "Unset = true.");
ABSL_FLAG(std::string, request_id, "",
          "generate: an id for the server's logs and the responses; empty = assigned "
          "by the server.");

namespace hybridserve::tools {
namespace {

namespace v1 = ::hybridserve::v1;

constexpr int kExitOk = 0;
constexpr int kExitRpcError = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage =
    "Command-line client of a hybridserve server (gRPC, hybridserve.v1.Inference).\n"
    "\n"
    "Usage: hs_client [--server host:port] [--tls_ca ca.pem] [--api_key_file F] [--json]\n"
    "                 SUBCOMMAND [flags] [args]\n"
    "\n"
    "Subcommands:\n"
    "  generate    Stream a completion. Text is written to stdout as it arrives;\n"
    "              finish reason and usage go to stderr at the end. Input:\n"
    "              --prompt TEXT, words after the subcommand, or --prompt_ids 1,2,3.\n"
    "              Sampling: --temperature --top_k --top_p --min_p --seed\n"
    "              --repetition_penalty --presence_penalty --frequency_penalty.\n"
    "              Stopping: --max_new_tokens --min_new_tokens --stop (repeatable)\n"
    "              --stop_token_ids --ignore_eos --include_stop_str_in_output.\n"
    "              Also --logprobs --prompt_logprobs --priority --skip_special_tokens\n"
    "              --request_id --model --timeout.\n"
    "  tokenize    Text to token ids (--prompt TEXT or words after the subcommand;\n"
    "              --add_special_tokens=false to leave out BOS). Prints 1,2,3.\n"
    "  detokenize  Token ids to text (--ids 1,2,3 or numbers after the subcommand;\n"
    "              --skip_special_tokens=false to keep special tokens).\n"
    "  models      The served models with shape, memory and live load\n"
    "              (ListModels; GetModel with --model NAME).\n"
    "\n"
    "With --json every subcommand prints JSON (generate: one object per streamed\n"
    "response, then {\"summary\": ...}). Exit status: 0 success; 1 the server\n"
    "returned an error (\"error: CODE: message\" on stderr); 2 a usage error.\n"
    "\n"
    "Examples:\n"
    "  hs_client generate --prompt 'Once upon a time' --max_new_tokens 64\n"
    "  hs_client --server 10.0.0.5:50051 generate --prompt_ids 256,72,105 \\\n"
    "      --temperature 0 --ignore_eos --json\n"
    "  hs_client generate --prompt 'Q: 2+2?' --stop=$'\\n' --stop='Q:' --timeout 10\n"
    "  hs_client models --json";

const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN_CODE";
  }
}

const char* FinishReasonName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_LENGTH: return "length";
    case v1::FINISH_REASON_STOP: return "stop";
    case v1::FINISH_REASON_EOS: return "eos";
    case v1::FINISH_REASON_CANCELLED: return "cancelled";
    case v1::FINISH_REASON_ERROR: return "error";
    default: return "unspecified";
  }
}

int UsageError(const std::string& message) {
  std::fprintf(stderr, "error: %s (see hs_client --help)\n", message.c_str());
  return kExitUsage;
}

int RpcError(const grpc::Status& status) {
  std::fprintf(stderr, "error: %s: %s\n", StatusCodeName(status.error_code()),
               status.error_message().c_str());
  return kExitRpcError;
}

// Prints `message` as one line of JSON with proto field names.
void PrintJson(const google::protobuf::Message& message, const char* wrapper_key = nullptr) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;  // token id 0 is a token, not "absent"
  std::string json;
  // MessageToJsonString only fails on unresolvable Any fields, which our API has not.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  if (wrapper_key != nullptr) json = absl::StrCat("{\"", wrapper_key, "\":", json, "}");
  std::fwrite(json.data(), 1, json.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

absl::StatusOr<std::vector<int32_t>> ParseIds(absl::string_view flag, absl::string_view text) {
  std::vector<int32_t> ids;
  for (absl::string_view piece : absl::StrSplit(text, absl::ByAnyChar(", "), absl::SkipWhitespace())) {
    int32_t id;
    if (!absl::SimpleAtoi(piece, &id)) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": '", piece, "' is not an integer"));
    }
    ids.push_back(id);
  }
  return ids;
}

// Words after the subcommand, joined by spaces.
std::string JoinArgs(const std::vector<std::string>& args) { return absl::StrJoin(args, " "); }

// The API key every call sends, if any (read once in main).
std::string& ApiKey() {
  static std::string key;
  return key;
}

absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read '", path, "'"));
  std::stringstream data;
  data << in.rdbuf();
  return data.str();
}

// TLS credentials from --tls-ca / --tls-cert / --tls-key, or plaintext.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials() {
  const std::string ca = absl::GetFlag(FLAGS_tls_ca);
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  if (ca.empty()) {
    if (!cert.empty() || !key.empty()) {
      return absl::InvalidArgumentError("--tls_cert and --tls_key need --tls_ca");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError("give both --tls_cert and --tls_key, or neither");
  }
  grpc::SslCredentialsOptions options;
  auto root = ReadFile("--tls_ca", ca);
  if (!root.ok()) return root.status();
  options.pem_root_certs = *root;
  if (!cert.empty()) {
    auto chain = ReadFile("--tls_cert", cert);
    if (!chain.ok()) return chain.status();
    auto private_key = ReadFile("--tls_key", key);
    if (!private_key.ok()) return private_key.status();
    options.pem_cert_chain = *chain;
    options.pem_private_key = *private_key;
  }
  return grpc::SslCredentials(options);
}

// The key from --api-key-file, else $HS_API_KEY, else none.
absl::StatusOr<std::string> LoadApiKey() {
  std::string key;
  const std::string path = absl::GetFlag(FLAGS_api_key_file);
  if (!path.empty()) {
    auto data = ReadFile("--api_key_file", path);
    if (!data.ok()) return data.status();
    key = std::string(absl::StripAsciiWhitespace(*data));
    if (key.empty()) return absl::InvalidArgumentError("--api_key_file: the file is empty");
  } else if (const char* env = std::getenv("HS_API_KEY"); env != nullptr) {
    key = std::string(absl::StripAsciiWhitespace(env));
  }
  return key;
}

// Sets what every call carries: the API key and the deadline.
void PrepareContext(grpc::ClientContext* context) {
  if (!ApiKey().empty()) context->AddMetadata("authorization", "Bearer " + ApiKey());
  const double seconds = absl::GetFlag(FLAGS_timeout);
  if (seconds > 0) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(
                              std::chrono::duration<double>(seconds)));
  }
}

// Builds the GenerateRequest from the flags. On error, returns the usage message.
absl::StatusOr<v1::GenerateRequest> BuildGenerateRequest(const std::vector<std::string>& args,
                                                         const std::vector<std::string>& stops) {
  v1::GenerateRequest req;
  req.set_model(absl::GetFlag(FLAGS_model));
  req.set_request_id(absl::GetFlag(FLAGS_request_id));
  std::string text = absl::GetFlag(FLAGS_prompt);
  if (text.empty()) text = JoinArgs(args);
  const std::string ids_flag = absl::GetFlag(FLAGS_prompt_ids);
  if (!ids_flag.empty() && !text.empty()) {
    return absl::InvalidArgumentError("give either a text prompt or --prompt_ids, not both");
  }
  if (!ids_flag.empty()) {
    auto ids = ParseIds("--prompt_ids", ids_flag);
    if (!ids.ok()) return ids.status();
    req.mutable_token_ids()->mutable_ids()->Add(ids->begin(), ids->end());
  } else if (!text.empty()) {
    req.set_text(text);
  } else {
    return absl::InvalidArgumentError("generate needs --prompt TEXT, words, or --prompt_ids");
  }
  if (auto v = absl::GetFlag(FLAGS_add_special_tokens)) req.set_add_special_tokens(*v);

  v1::SamplingParams* s = req.mutable_sampling();
  if (auto v = absl::GetFlag(FLAGS_temperature)) s->set_temperature(*v);
  if (auto v = absl::GetFlag(FLAGS_top_k)) s->set_top_k(*v);
  if (auto v = absl::GetFlag(FLAGS_top_p)) s->set_top_p(*v);
  if (auto v = absl::GetFlag(FLAGS_min_p)) s->set_min_p(*v);
  if (auto v = absl::GetFlag(FLAGS_seed)) s->set_seed(*v);
  if (auto v = absl::GetFlag(FLAGS_repetition_penalty)) s->set_repetition_penalty(*v);
  if (auto v = absl::GetFlag(FLAGS_presence_penalty)) s->set_presence_penalty(*v);
  if (auto v = absl::GetFlag(FLAGS_frequency_penalty)) s->set_frequency_penalty(*v);

  v1::StoppingCriteria* st = req.mutable_stopping();
  if (auto v = absl::GetFlag(FLAGS_max_new_tokens)) st->set_max_new_tokens(*v);
  st->set_min_new_tokens(absl::GetFlag(FLAGS_min_new_tokens));
  for (const std::string& stop : stops) st->add_stop(stop);
  auto stop_ids = ParseIds("--stop_token_ids", absl::GetFlag(FLAGS_stop_token_ids));
  if (!stop_ids.ok()) return stop_ids.status();
  st->mutable_stop_token_ids()->Add(stop_ids->begin(), stop_ids->end());
  st->set_ignore_eos(absl::GetFlag(FLAGS_ignore_eos));
  st->set_include_stop_str_in_output(absl::GetFlag(FLAGS_include_stop_str_in_output));

  if (auto v = absl::GetFlag(FLAGS_logprobs)) req.set_logprobs(*v);
  if (auto v = absl::GetFlag(FLAGS_prompt_logprobs)) req.set_prompt_logprobs(*v);
  req.set_priority(absl::GetFlag(FLAGS_priority));
  if (auto v = absl::GetFlag(FLAGS_skip_special_tokens)) req.set_skip_special_tokens(*v);
  return req;
}

int Generate(v1::Inference::Stub& stub, const std::vector<std::string>& args,
             const std::vector<std::string>& stops) {
  auto req = BuildGenerateRequest(args, stops);
  if (!req.ok()) return UsageError(std::string(req.status().message()));
  const bool json = absl::GetFlag(FLAGS_json);

  grpc::ClientContext context;
  PrepareContext(&context);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader = stub.Generate(&context, *req);
  v1::GenerateResponse response;
  v1::GenerateResponse summary;  // every response's tokens and text; the last one's finish and usage
  while (reader->Read(&response)) {
    if (json) {
      PrintJson(response);
    } else if (!response.text().empty()) {
      std::fwrite(response.text().data(), 1, response.text().size(), stdout);
      std::fflush(stdout);
    }
    if (summary.request_id().empty()) summary.set_request_id(response.request_id());
    if (summary.prompt_token_ids().empty()) {
      *summary.mutable_prompt_token_ids() = response.prompt_token_ids();
    }
    summary.mutable_token_ids()->MergeFrom(response.token_ids());
    summary.mutable_text()->append(response.text());
    summary.mutable_logprobs()->MergeFrom(response.logprobs());
    if (response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      summary.set_finish_reason(response.finish_reason());
    }
    if (response.has_usage()) *summary.mutable_usage() = response.usage();
  }
  const grpc::Status status = reader->Finish();
  if (!json && !summary.text().empty()) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  if (!status.ok()) return RpcError(status);
  if (json) {
    PrintJson(summary, "summary");
  } else {
    const v1::Usage& u = summary.usage();
    std::fprintf(stderr,
                 "[finish: %s | prompt %d tokens, completion %d tokens | first token %.3f s, "
                 "total %.3f s]\n",
                 FinishReasonName(summary.finish_reason()), u.prompt_tokens(),
                 u.completion_tokens(), u.first_token_seconds(), u.total_seconds());
  }
  return kExitOk;
}

int Tokenize(v1::Inference::Stub& stub, const std::vector<std::string>& args) {
  v1::TokenizeRequest req;
  req.set_model(absl::GetFlag(FLAGS_model));
  std::string text = absl::GetFlag(FLAGS_prompt);
  if (text.empty()) text = JoinArgs(args);
  if (text.empty()) return UsageError("tokenize needs --prompt TEXT or words");
  req.set_text(text);
  if (auto v = absl::GetFlag(FLAGS_add_special_tokens)) req.set_add_special_tokens(*v);
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::TokenizeResponse response;
  const grpc::Status status = stub.Tokenize(&context, req, &response);
  if (!status.ok()) return RpcError(status);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(response);
  } else {
    std::printf("%s\n", absl::StrJoin(response.token_ids(), ",").c_str());
  }
  return kExitOk;
}

int Detokenize(v1::Inference::Stub& stub, const std::vector<std::string>& args) {
  std::string text = absl::GetFlag(FLAGS_ids);
  if (text.empty()) text = JoinArgs(args);
  auto ids = ParseIds("--ids", text);
  if (!ids.ok()) return UsageError(std::string(ids.status().message()));
  if (ids->empty()) return UsageError("detokenize needs --ids 1,2,3 or numbers");
  v1::DetokenizeRequest req;
  req.set_model(absl::GetFlag(FLAGS_model));
  req.mutable_token_ids()->Add(ids->begin(), ids->end());
  if (auto v = absl::GetFlag(FLAGS_skip_special_tokens)) req.set_skip_special_tokens(*v);
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::DetokenizeResponse response;
  const grpc::Status status = stub.Detokenize(&context, req, &response);
  if (!status.ok()) return RpcError(status);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(response);
  } else {
    std::fwrite(response.text().data(), 1, response.text().size(), stdout);
    std::fputc('\n', stdout);
  }
  return kExitOk;
}

void PrintModel(const v1::ModelInfo& m) {
  const v1::ModelLoad& l = m.load();
  std::printf("%s\n", m.name().c_str());
  std::printf("  architecture        %s (%s)\n", m.architecture().c_str(), m.family().c_str());
  std::printf("  layers              %d (%d attention, %d ssm)\n", m.num_layers(),
              m.num_attention_layers(), m.num_ssm_layers());
  std::printf("  dtype / device      %s / %s\n", m.dtype().c_str(), m.device().c_str());
  std::printf("  vocab_size          %d\n", m.vocab_size());
  std::printf("  max_model_len       %lld\n", static_cast<long long>(m.max_model_len()));
  std::printf("  kv bytes / token    %lld\n", static_cast<long long>(m.kv_cache_bytes_per_token()));
  std::printf("  ssm bytes / seq     %lld\n",
              static_cast<long long>(m.ssm_state_bytes_per_sequence()));
  std::printf("  block_tokens        %d\n", m.block_tokens());
  std::printf("  capacity            %lld sequences, %lld tokens\n",
              static_cast<long long>(m.capacity_sequences()),
              static_cast<long long>(m.capacity_tokens()));
  std::printf("  load                %d running, %d waiting; kv blocks free %lld / %lld; "
              "state slots free %lld / %lld\n",
              l.running_requests(), l.waiting_requests(), static_cast<long long>(l.free_kv_blocks()),
              static_cast<long long>(l.total_kv_blocks()),
              static_cast<long long>(l.free_state_slots()),
              static_cast<long long>(l.total_state_slots()));
}

int Models(v1::Inference::Stub& stub) {
  const bool json = absl::GetFlag(FLAGS_json);
  grpc::ClientContext context;
  PrepareContext(&context);
  const std::string name = absl::GetFlag(FLAGS_model);
  if (!name.empty()) {
    v1::GetModelRequest req;
    req.set_model(name);
    v1::ModelInfo info;
    const grpc::Status status = stub.GetModel(&context, req, &info);
    if (!status.ok()) return RpcError(status);
    if (json) {
      PrintJson(info);
    } else {
      PrintModel(info);
    }
    return kExitOk;
  }
  v1::ListModelsResponse response;
  const grpc::Status status = stub.ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return RpcError(status);
  if (json) {
    PrintJson(response);
  } else {
    for (const v1::ModelInfo& m : response.models()) PrintModel(m);
  }
  return kExitOk;
}

// Takes every --stop occurrence out of argv (absl keeps only the last value of a
// repeated flag) and returns the values, C escapes resolved. On error, returns
// the usage message.
absl::StatusOr<std::vector<std::string>> ExtractStops(std::vector<char*>* argv) {
  std::vector<std::string> stops;
  std::vector<char*> rest;
  bool flags_done = false;
  for (size_t i = 0; i < argv->size(); ++i) {
    absl::string_view a = (*argv)[i];
    if (i == 0 || flags_done) {
      rest.push_back((*argv)[i]);
      continue;
    }
    if (a == "--") flags_done = true;
    std::string raw;
    bool found = false;
    for (absl::string_view prefix : {"--stop", "-stop"}) {
      if (a == prefix) {
        if (i + 1 >= argv->size()) return absl::InvalidArgumentError("--stop needs a value");
        raw = (*argv)[++i];
        found = true;
      } else if (absl::StartsWith(a, absl::StrCat(prefix, "="))) {
        raw = std::string(a.substr(prefix.size() + 1));
        found = true;
      }
      if (found) break;
    }
    if (!found) {
      rest.push_back((*argv)[i]);
      continue;
    }
    std::string value;
    std::string error;
    if (!absl::CUnescape(raw, &value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("--stop '", raw, "': ", error));
    }
    if (value.empty()) return absl::InvalidArgumentError("--stop: empty stop string");
    stops.push_back(std::move(value));
  }
  *argv = std::move(rest);
  return stops;
}

int Main(int argc, char** argv) {
  absl::FlagsUsageConfig usage_config;
  auto ours = [](absl::string_view path) { return absl::EndsWith(path, "client.cc"); };
  usage_config.contains_help_flags = ours;
  usage_config.contains_helpshort_flags = ours;
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(kUsage);

  std::vector<char*> args(argv, argv + argc);
  auto stops = ExtractStops(&args);
  if (!stops.ok()) return UsageError(std::string(stops.status().message()));
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  if (positional.size() < 2) return UsageError("missing subcommand: generate, tokenize, detokenize or models");
  const std::string command = positional[1];
  const std::vector<std::string> rest(positional.begin() + 2, positional.end());

  auto credentials = ChannelCredentials();
  if (!credentials.ok()) return UsageError(std::string(credentials.status().message()));
  auto api_key = LoadApiKey();
  if (!api_key.ok()) return UsageError(std::string(api_key.status().message()));
  ApiKey() = *api_key;
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_server), *credentials);
  std::unique_ptr<v1::Inference::Stub> stub = v1::Inference::NewStub(channel);
  if (command == "generate") return Generate(*stub, rest, *stops);
  if (!stops->empty()) return UsageError("--stop applies to generate only");
  if (command == "tokenize") return Tokenize(*stub, rest);
  if (command == "detokenize") return Detokenize(*stub, rest);
  if (command == "models") {
    if (!rest.empty()) return UsageError("models takes no arguments");
    return Models(*stub);
  }
  return UsageError(absl::StrCat("unknown subcommand '", command,
                                 "': expected generate, tokenize, detokenize or models"));
}

}  // namespace
}  // namespace hybridserve::tools

int main(int argc, char** argv) { return hybridserve::tools::Main(argc, argv); }
