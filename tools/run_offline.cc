// hs_run_offline: runs a model on the Engine without a server. Token ids in;
// per-position top-N logprobs of the prompt and of N greedy continuation
// tokens out, as JSON on stdout; load progress and timings on stderr.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/logprobs.h"
#include "engine/runtime/plan_builder.h"
#include "rapidjson/ostreamwrapper.h"
#include "rapidjson/writer.h"

ABSL_FLAG(std::string, model, "", "Hugging Face checkpoint folder (config.json, *.safetensors). Required.");
ABSL_FLAG(std::string, prompt_ids, "", "Prompt token ids, comma-separated, e.g. 1,2,3. Required.");
ABSL_FLAG(int, max_new_tokens, 16, "Greedy tokens to generate after the prompt.");
ABSL_FLAG(int, top_n, 5, "Top-N logprobs reported at each prompt and generated position.");
ABSL_FLAG(std::string, device, "auto", "auto | cpu | cuda.");
ABSL_FLAG(std::string, dtype, "auto", "auto | f32 | bf16 | f16: precision of the weights (CPU computes in f32).");
ABSL_FLAG(int, threads, 0, "CPU threads for ops and BLAS; 0 = all cores.");
ABSL_FLAG(int64_t, kv_cache_bytes, 256ll << 20, "Bytes of KV cache to allocate.");
ABSL_FLAG(int64_t, block_tokens, 16, "Tokens per KV cache block.");
ABSL_FLAG(int64_t, max_model_len, 0, "Longest sequence (prompt + generated); 0 = the model's max_position_embeddings.");
ABSL_FLAG(int64_t, prefill_chunk, 0, "Prefill the prompt in chunks of this many tokens (0 = all at once).");
ABSL_FLAG(bool, quiet, false, "Do not print load progress and timings on stderr.");

namespace hybridserve::tools {
namespace {

using engine::TokenLogprob;
using Writer = rapidjson::Writer<rapidjson::OStreamWrapper>;

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id;
    if (!absl::SimpleAtoi(piece, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("--prompt_ids: '", piece, "' is not an integer"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError("--prompt_ids is empty");
  return ids;
}

void WriteTop(Writer& w, const std::vector<TokenLogprob>& top) {
  w.Key("top");
  w.StartArray();
  for (const TokenLogprob& t : top) {
    w.StartObject();
    w.Key("id");
    w.Int(t.id);
    w.Key("logprob");
    w.Double(t.logprob);
    w.EndObject();
  }
  w.EndArray();
}

// Writes {"id", "logprob" (of `id` under `logits`, or null), "top"}.
void WritePosition(Writer& w, int32_t id, const float* logits, int64_t vocab, int top_n) {
  w.StartObject();
  w.Key("id");
  w.Int(id);
  w.Key("logprob");
  if (logits == nullptr) {
    w.Null();
    w.Key("top");
    w.StartArray();
    w.EndArray();
  } else {
    absl::Span<const float> row(logits, vocab);
    w.Double(logits[id] - engine::LogSumExp(row));
    WriteTop(w, engine::TopLogprobs(row, top_n));
  }
  w.EndObject();
}

int Run() {
  const bool quiet = absl::GetFlag(FLAGS_quiet);
  auto log = [quiet](const std::string& line) {
    if (!quiet) std::fprintf(stderr, "%s\n", line.c_str());
  };
  if (absl::GetFlag(FLAGS_model).empty()) {
    std::fprintf(stderr, "error: --model is required (see --help)\n");
    return 2;
  }
  auto prompt = ParseIds(absl::GetFlag(FLAGS_prompt_ids));
  if (!prompt.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(prompt.status().message()).c_str());
    return 2;
  }
  engine::EngineOptions options;
  options.model_dir = absl::GetFlag(FLAGS_model);
  options.device = absl::GetFlag(FLAGS_device);
  options.dtype = absl::GetFlag(FLAGS_dtype);
  options.num_threads = absl::GetFlag(FLAGS_threads);
  options.kv_cache_bytes = absl::GetFlag(FLAGS_kv_cache_bytes);
  options.block_tokens = absl::GetFlag(FLAGS_block_tokens);
  options.max_model_len = absl::GetFlag(FLAGS_max_model_len);
  options.max_num_seqs = 1;
  options.log = log;
  auto engine = engine::Engine::Create(options);
  if (!engine.ok()) {
    std::fprintf(stderr, "error: %s\n", engine.status().ToString().c_str());
    return 1;
  }
  engine::Engine& e = **engine;
  const int64_t vocab = e.config().vocab_size;
  const int top_n = absl::GetFlag(FLAGS_top_n);
  const int max_new = absl::GetFlag(FLAGS_max_new_tokens);
  const std::vector<int32_t>& ids = *prompt;
  if (static_cast<int64_t>(ids.size()) + max_new > e.max_model_len()) {
    std::fprintf(stderr, "error: prompt (%zu) + --max_new_tokens (%d) exceeds the max model length %lld\n",
                 ids.size(), max_new, static_cast<long long>(e.max_model_len()));
    return 2;
  }
  const int64_t chunk = absl::GetFlag(FLAGS_prefill_chunk) > 0
                            ? absl::GetFlag(FLAGS_prefill_chunk)
                            : std::min<int64_t>(ids.size(), e.limits().max_num_tokens);
  engine::PlanBuilder builder(e.memory_plan().num_blocks, e.memory_plan().block_tokens);

  // Prefill: logits of every prompt position (for prompt logprobs).
  std::vector<float> prompt_logits;  // [prompt_len, vocab]
  engine::StepOutput out;
  const absl::Time prefill_start = absl::Now();
  for (size_t first = 0; first < ids.size(); first += chunk) {
    const size_t n = std::min<size_t>(chunk, ids.size() - first);
    engine::PlanBuilder::Chunk c{.seq_id = 0,
                                 .tokens = {ids.begin() + first, ids.begin() + first + n},
                                 .all_logits = true};
    auto plan = builder.Build({c});
    absl::Status st = plan.ok() ? e.Step(*plan, &out) : plan.status();
    if (!st.ok()) {
      std::fprintf(stderr, "error: prefill: %s\n", st.ToString().c_str());
      return 1;
    }
    prompt_logits.insert(prompt_logits.end(), out.logits.begin(), out.logits.end());
  }
  const double prefill_s = absl::ToDoubleSeconds(absl::Now() - prefill_start);

  // Greedy decode, one token per step.
  std::vector<int32_t> generated;
  std::vector<std::vector<float>> gen_logits;
  std::vector<float> last(prompt_logits.end() - vocab, prompt_logits.end());
  const absl::Time decode_start = absl::Now();
  for (int i = 0; i < max_new; ++i) {
    const int32_t next = engine::Argmax(last);
    generated.push_back(next);
    gen_logits.push_back(last);
    if (i + 1 == max_new) break;
    auto plan = builder.Build({{.seq_id = 0, .tokens = {next}}});
    absl::Status st = plan.ok() ? e.Step(*plan, &out) : plan.status();
    if (!st.ok()) {
      std::fprintf(stderr, "error: decode: %s\n", st.ToString().c_str());
      return 1;
    }
    last = out.logits;
  }
  const double decode_s = absl::ToDoubleSeconds(absl::Now() - decode_start);
  const int decode_steps = std::max(0, max_new - 1);

  rapidjson::OStreamWrapper os(std::cout);
  Writer w(os);
  w.StartObject();
  w.Key("model");
  w.String(options.model_dir.string().c_str());
  w.Key("prompt");
  w.StartArray();
  for (size_t i = 0; i < ids.size(); ++i) {
    WritePosition(w, ids[i], i == 0 ? nullptr : &prompt_logits[(i - 1) * vocab], vocab, top_n);
  }
  w.EndArray();
  w.Key("generated");
  w.StartArray();
  for (size_t i = 0; i < generated.size(); ++i) {
    WritePosition(w, generated[i], gen_logits[i].data(), vocab, top_n);
  }
  w.EndArray();
  w.Key("timing");
  w.StartObject();
  w.Key("threads");
  w.Int(options.num_threads);
  w.Key("prefill_tokens");
  w.Int64(ids.size());
  w.Key("prefill_seconds");
  w.Double(prefill_s);
  w.Key("prefill_tokens_per_s");
  w.Double(ids.size() / prefill_s);
  w.Key("decode_steps");
  w.Int(decode_steps);
  w.Key("decode_seconds");
  w.Double(decode_s);
  w.Key("decode_tokens_per_s");
  w.Double(decode_steps > 0 ? decode_steps / decode_s : 0.0);
  w.EndObject();
  w.EndObject();
  std::cout << "\n";
  log(absl::StrFormat("prefill: %d tokens in %.3f s (%.1f tokens/s); decode: %d steps in %.3f s (%.1f tokens/s)",
                      ids.size(), prefill_s, ids.size() / prefill_s, decode_steps, decode_s,
                      decode_steps > 0 ? decode_steps / decode_s : 0.0));
  return 0;
}

}  // namespace
}  // namespace hybridserve::tools

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs a Hugging Face checkpoint on the engine without a server.\n"
      "  hs_run_offline --model DIR --prompt_ids 1,2,3 [--max_new_tokens 16] [--top_n 5]\n"
      "Prints JSON: per prompt position and per greedy continuation token, the\n"
      "token's logprob and the top-N logprobs; plus prefill/decode timings.");
  absl::ParseCommandLine(argc, argv);
  return hybridserve::tools::Run();
}
