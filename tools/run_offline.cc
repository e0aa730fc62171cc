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
ABSL_FLAG(int, threads, 0, "CPU threads for the CPU backend's ops (results do not depend on it); 0 = all cores.");
ABSL_FLAG(int64_t, kv_cache_bytes, 256ll << 20, "Bytes of KV cache to allocate.");
ABSL_FLAG(int64_t, block_tokens, 16, "Tokens per KV cache block.");
ABSL_FLAG(int64_t, max_model_len, 0, "Longest sequence (prompt + generated); 0 = the model's max_position_embeddings.");
ABSL_FLAG(int64_t, prefill_chunk, 0, "Prefill each prompt in chunks of at most this many tokens (0 = as many as a step holds).");
ABSL_FLAG(int, num_seqs, 1, "Run this many copies of the prompt as a batch (prefills packed into steps of at most the engine's token budget, then one decode token per sequence per step). The JSON reports sequence 0 and whether every copy came out bitwise identical to it.");
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
  const int num_seqs = absl::GetFlag(FLAGS_num_seqs);
  if (num_seqs < 1) {
    std::fprintf(stderr, "error: --num_seqs must be at least 1\n");
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
  options.max_num_seqs = num_seqs;
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
  const int64_t len = static_cast<int64_t>(ids.size());
  if (len + max_new > e.max_model_len()) {
    std::fprintf(stderr, "error: prompt (%zu) + --max_new_tokens (%d) exceeds the max model length %lld\n",
                 ids.size(), max_new, static_cast<long long>(e.max_model_len()));
    return 2;
  }
  const int64_t step_tokens = e.limits().max_num_tokens;
  const int64_t chunk = absl::GetFlag(FLAGS_prefill_chunk) > 0
                            ? std::min(absl::GetFlag(FLAGS_prefill_chunk), step_tokens)
                            : step_tokens;
  engine::PlanBuilder builder(e.memory_plan().num_blocks, e.memory_plan().block_tokens,
                              e.memory_plan().num_state_slots);
  auto run_step = [&](const std::vector<engine::PlanBuilder::Chunk>& chunks,
                      engine::StepOutput* out) {
    auto plan = builder.Build(chunks);
    return plan.ok() ? e.Step(*plan, out) : plan.status();
  };

  // Prefill: every prompt in chunks of at most `chunk` tokens, packed into
  // steps of at most `step_tokens`. Sequence 0 asks for the logits of every
  // prompt position (for prompt logprobs), the others for their last one.
  std::vector<float> prompt_logits;                    // [len, vocab], sequence 0
  std::vector<std::vector<float>> last(num_seqs);      // [vocab] per sequence
  std::vector<int64_t> done(num_seqs, 0);              // prompt tokens prefilled
  engine::StepOutput out;
  const absl::Time prefill_start = absl::Now();
  for (int next_seq = 0; next_seq < num_seqs;) {
    std::vector<engine::PlanBuilder::Chunk> chunks;
    int64_t room = step_tokens;
    for (int s = next_seq; s < num_seqs && room > 0; ++s) {
      if (done[s] == len) continue;
      const int64_t n = std::min({chunk, room, len - done[s]});
      chunks.push_back({.seq_id = s,
                        .tokens = {ids.begin() + done[s], ids.begin() + done[s] + n},
                        .all_logits = s == 0,
                        .last_logits = done[s] + n == len});
      room -= n;
    }
    if (absl::Status st = run_step(chunks, &out); !st.ok()) {
      std::fprintf(stderr, "error: prefill: %s\n", st.ToString().c_str());
      return 1;
    }
    size_t row = 0;  // out.logits rows, in chunk order
    for (const auto& c : chunks) {
      const int64_t s = c.seq_id, n = static_cast<int64_t>(c.tokens.size());
      done[s] += n;
      const size_t rows = c.all_logits ? n : (c.last_logits ? 1 : 0);
      const float* first = out.logits.data() + row * vocab;
      if (s == 0) prompt_logits.insert(prompt_logits.end(), first, first + rows * vocab);
      if (done[s] == len) last[s].assign(first + (rows - 1) * vocab, first + rows * vocab);
      row += rows;
    }
    while (next_seq < num_seqs && done[next_seq] == len) ++next_seq;
  }
  const double prefill_s = absl::ToDoubleSeconds(absl::Now() - prefill_start);

  // Greedy decode, one token per sequence per step.
  bool identical = true;  // every sequence's logits bitwise equal to sequence 0's
  auto check_identical = [&] {
    for (int s = 1; s < num_seqs; ++s) identical = identical && last[s] == last[0];
  };
  check_identical();
  std::vector<int32_t> generated;
  std::vector<std::vector<float>> gen_logits;
  const absl::Time decode_start = absl::Now();
  for (int i = 0; i < max_new; ++i) {
    std::vector<engine::PlanBuilder::Chunk> chunks;
    for (int s = 0; s < num_seqs; ++s) {
      const int32_t next = engine::Argmax(last[s]);
      if (s == 0) {
        generated.push_back(next);
        gen_logits.push_back(last[0]);
      }
      chunks.push_back({.seq_id = s, .tokens = {next}});
    }
    if (i + 1 == max_new) break;
    if (absl::Status st = run_step(chunks, &out); !st.ok()) {
      std::fprintf(stderr, "error: decode: %s\n", st.ToString().c_str());
      return 1;
    }
    for (int s = 0; s < num_seqs; ++s) {
      last[s].assign(out.logits.begin() + s * vocab, out.logits.begin() + (s + 1) * vocab);
    }
    check_identical();
  }
  const double decode_s = absl::ToDoubleSeconds(absl::Now() - decode_start);
  const int decode_steps = std::max(0, max_new - 1);
  const int64_t prefill_tokens = len * num_seqs;
  const int64_t decode_tokens = static_cast<int64_t>(decode_steps) * num_seqs;

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
  w.Key("num_seqs");
  w.Int(num_seqs);
  w.Key("prefill_tokens");
  w.Int64(prefill_tokens);
  w.Key("prefill_seconds");
  w.Double(prefill_s);
  w.Key("prefill_tokens_per_s");
  w.Double(prefill_tokens / prefill_s);
  w.Key("decode_steps");
  w.Int(decode_steps);
  w.Key("decode_seconds");
  w.Double(decode_s);
  w.Key("decode_tokens_per_s");
  w.Double(decode_steps > 0 ? decode_tokens / decode_s : 0.0);
  w.EndObject();
  w.Key("sequences_identical");
  w.Bool(identical);
  w.EndObject();
  std::cout << "\n";
  log(absl::StrFormat("prefill: %d tokens in %.3f s (%.1f tokens/s); decode: %d tokens in %.3f s "
                      "(%.1f tokens/s); %d sequences%s",
                      prefill_tokens, prefill_s, prefill_tokens / prefill_s, decode_tokens,
                      decode_s, decode_steps > 0 ? decode_tokens / decode_s : 0.0, num_seqs,
                      num_seqs > 1 ? (identical ? ", all bitwise identical"
                                                : ", NOT bitwise identical")
                                   : ""));
  return 0;
}

}  // namespace
}  // namespace hybridserve::tools

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs a Hugging Face checkpoint on the engine without a server.\n"
      "  hs_run_offline --model DIR --prompt_ids 1,2,3 [--max_new_tokens 16] [--top_n 5]\n"
      "                 [--num_seqs N] [--threads N] [--prefill_chunk N]\n"
      "Prints JSON: per prompt position and per greedy continuation token, the\n"
      "token's logprob and the top-N logprobs; plus prefill/decode timings.");
  absl::ParseCommandLine(argc, argv);
  return hybridserve::tools::Run();
}
