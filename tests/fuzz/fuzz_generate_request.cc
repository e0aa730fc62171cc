// libFuzzer target: arbitrary bytes → GenerateRequest (ParseFromArray) → the
// server's request validation and building (server/request_builder), against
// the contexts of two served models that share a real tokenizer (Llama-3's from
// the shared test data, or $HS_FUZZ_TOKENIZER): one with attention layers (KV
// blocks, tight limits) and one pure SSM (no blocks, default limits).
// Every rejection must be INVALID_ARGUMENT, NOT_FOUND or RESOURCE_EXHAUSTED,
// and every accepted request must respect the limits it was checked against.
//
// With HS_FUZZ_WRITE_SEEDS=<dir> set, initialisation first writes serialized
// valid requests there (the seed corpus scripts/fuzz.sh uses).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/model_config.h"
#include "engine/tokenizer/tokenizer.h"
#include "hybridserve/v1/inference.pb.h"
#include "server/model_context.h"
#include "server/request_builder.h"

namespace {

namespace v1 = hybridserve::v1;
using hybridserve::engine::tokenizer::Tokenizer;
using hybridserve::server::ModelContext;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fuzz_generate_request: %s\n", what.c_str());
  std::abort();
}

const Tokenizer& TheTokenizer() {
  static const Tokenizer* t = [] {
    const char* dir = std::getenv("HS_FUZZ_TOKENIZER");
    auto loaded = Tokenizer::FromFile(dir != nullptr ? dir : HS_FUZZ_DEFAULT_TOKENIZER);
    if (!loaded.ok()) Die(std::string(loaded.status().message()));
    return loaded->release();
  }();
  return *t;
}

hybridserve::engine::ModelConfig LlamaConfig(int64_t vocab_size) {
  const std::string json = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 8,
    "num_key_value_heads": 2, "num_hidden_layers": 2, "head_dim": 8, "hidden_act": "silu",
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": false,
    "vocab_size": )" + std::to_string(vocab_size) + "}";
  auto config = hybridserve::engine::ParseModelConfig(json, "fuzz/config.json");
  if (!config.ok()) Die(std::string(config.status().message()));
  return *config;
}

struct Contexts {
  ModelContext attention;  // KV blocks; tight limits; sampling defaults from generation_config
  ModelContext ssm;        // no KV blocks (max_new_tokens not bounded by the context)
};

const Contexts& TheContexts() {
  static const Contexts* c = [] {
    auto* out = new Contexts;
    const Tokenizer& tok = TheTokenizer();
    const int64_t vocab = tok.vocab_size();

    ModelContext& a = out->attention;
    a.served_name = "tiny-llama";
    a.config.served_model_name = a.served_name;
    a.config.max_logprobs = 5;
    a.config.max_input_bytes = 2048;
    a.config.max_stop_strings = 4;
    a.config.max_stop_string_bytes = 32;
    a.config.max_prompt_tokens = 512;
    a.config.max_new_tokens = 1024;
    a.config.default_max_new_tokens = 64;
    a.model = LlamaConfig(vocab);
    a.generation.do_sample = true;
    a.generation.temperature = 0.7;
    a.generation.top_p = 0.9;
    a.generation.top_k = 50;
    a.memory.block_tokens = 16;
    a.memory.num_blocks = 256;
    a.max_model_len = 4096;
    a.eos_token_ids = {2};
    a.tokenizer = &tok;

    ModelContext& s = out->ssm;
    s.served_name = "tiny-mamba";
    s.config.served_model_name = s.served_name;
    s.model = a.model;
    s.memory.num_state_slots = 8;
    s.max_model_len = int64_t{1} << 20;
    s.eos_token_ids = {2, 3};
    s.tokenizer = &tok;
    return out;
  }();
  return *c;
}

void Check(bool ok, const char* what, const v1::GenerateRequest& proto) {
  if (!ok) Die(std::string("accepted request breaks: ") + what + "\n" + proto.DebugString());
}

void BuildAndCheck(const v1::GenerateRequest& proto, const ModelContext& m) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  auto built = hybridserve::server::BuildRequest(proto, m, now, now + absl::Seconds(30));
  if (!built.ok()) {
    const absl::StatusCode code = built.status().code();
    if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kNotFound &&
        code != absl::StatusCode::kResourceExhausted) {
      Die("rejection with an unexpected code: " + built.status().ToString());
    }
    if (built.status().message().empty()) Die("rejection without a message");
    return;
  }
  const auto& r = **built;
  const auto& c = m.config;
  const int64_t prompt_len = static_cast<int64_t>(r.prompt_ids.size());
  const int64_t id_limit = std::max<int64_t>(m.model.vocab_size, m.tokenizer->vocab_size());
  Check(prompt_len > 0, "empty prompt", proto);
  Check(prompt_len < m.max_model_len, "prompt beyond max_model_len", proto);
  Check(c.max_prompt_tokens == 0 || prompt_len <= c.max_prompt_tokens, "prompt tokens", proto);
  for (int32_t id : r.prompt_ids) Check(id >= 0 && id < id_limit, "prompt id range", proto);
  Check(r.stop.max_new_tokens >= 1 && r.stop.max_new_tokens <= c.max_new_tokens,
        "max_new_tokens range", proto);
  if (m.memory.num_blocks > 0) {
    Check(prompt_len + r.stop.max_new_tokens <= m.max_model_len, "context overflow", proto);
  }
  Check(r.stop.min_new_tokens >= 0 && r.stop.min_new_tokens <= r.stop.max_new_tokens,
        "min_new_tokens", proto);
  Check(static_cast<int64_t>(r.stop.stop_strings.size()) <= c.max_stop_strings, "stop count",
        proto);
  for (const std::string& s : r.stop.stop_strings) {
    Check(!s.empty() && static_cast<int64_t>(s.size()) <= c.max_stop_string_bytes, "stop size",
          proto);
  }
  for (int32_t id : r.stop.stop_token_ids) {
    Check(id >= 0 && id < m.model.vocab_size, "stop id range", proto);
  }
  Check(!r.logprobs || (*r.logprobs >= 0 && *r.logprobs <= c.max_logprobs), "logprobs", proto);
  Check(!r.prompt_logprobs || (*r.prompt_logprobs >= 0 && *r.prompt_logprobs <= c.max_logprobs),
        "prompt_logprobs", proto);
  Check(r.sampling.logprobs >= 0 && r.sampling.logprobs <= c.max_logprobs, "sampling.logprobs",
        proto);
  Check(r.sampling.temperature >= 0 && r.sampling.top_p > 0 && r.sampling.top_p <= 1,
        "sampling ranges", proto);
}

// Valid requests that reach the deeper checks (the seed corpus).
std::vector<v1::GenerateRequest> SeedRequests() {
  std::vector<v1::GenerateRequest> seeds;
  v1::GenerateRequest r;
  r.set_text("Hello, world! How are you?");
  r.mutable_stopping()->set_max_new_tokens(16);
  seeds.push_back(r);

  r.Clear();
  r.set_model("tiny-llama");
  for (int id : {128000, 9906, 11, 1917, 0, 5}) r.mutable_token_ids()->add_ids(id);
  r.mutable_sampling()->set_temperature(0.8f);
  r.mutable_sampling()->set_top_k(40);
  r.mutable_sampling()->set_top_p(0.95f);
  r.mutable_sampling()->set_min_p(0.05f);
  r.mutable_sampling()->set_seed(7);
  r.mutable_sampling()->set_repetition_penalty(1.1f);
  r.mutable_sampling()->set_presence_penalty(0.5f);
  r.mutable_sampling()->set_frequency_penalty(-0.5f);
  r.set_logprobs(3);
  r.set_prompt_logprobs(2);
  r.set_priority(-4);
  r.set_request_id("seed-2");
  seeds.push_back(r);

  r.Clear();
  r.set_text("Once upon a time\nthere was a stop");
  auto* s = r.mutable_stopping();
  s->set_max_new_tokens(100);
  s->set_min_new_tokens(3);
  s->add_stop("\n\n");
  s->add_stop("END");
  s->add_stop_token_ids(2);
  s->set_ignore_eos(true);
  s->set_include_stop_str_in_output(true);
  r.set_add_special_tokens(false);
  r.set_skip_special_tokens(false);
  seeds.push_back(r);

  r.Clear();
  r.set_model("tiny-mamba");
  r.set_text("\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 caf\xc3\xa9");
  r.mutable_stopping()->set_max_new_tokens(20000);
  r.mutable_sampling()->set_temperature(0.0f);
  seeds.push_back(r);
  return seeds;
}

void WriteSeeds(const char* dir) {
  std::filesystem::create_directories(dir);
  const std::vector<v1::GenerateRequest> seeds = SeedRequests();
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::ofstream out(std::filesystem::path(dir) / ("seed_" + std::to_string(i) + ".pb"),
                      std::ios::binary);
    out << seeds[i].SerializeAsString();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("HS_FUZZ_WRITE_SEEDS"); dir != nullptr && *dir != '\0') {
    WriteSeeds(dir);
  }
  (void)TheContexts();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  v1::GenerateRequest proto;
  if (!proto.ParseFromArray(data, static_cast<int>(size))) return 0;
  const Contexts& c = TheContexts();
  BuildAndCheck(proto, c.attention);
  BuildAndCheck(proto, c.ssm);
  return 0;
}
