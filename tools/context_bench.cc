// hs_context_bench: how decode cost and memory per sequence scale with context
// length for a Transformer (Llama), a pure SSM (Mamba-2) and a hybrid (Bamba,
// one attention layer in four) of about equal parameter count, on the engine
// directly (no server).
//
// For each model (written in-process by the tiny-model maker into a temporary
// folder) one sequence is prefilled in chunks up to each context length in
// turn (512, 2k, 8k, 32k by default: the prefill runs once, to the longest);
// at each length the sequence is forked (its KV blocks and state slot copied:
// PlanBuilder::Fork, Engine::CopyKvBlocks / CopyStateSlot) into 1 and into 16
// sequences, and decode steps of those batches are timed. Printed per model
// and context: decode time per step (the median of --decode_steps steps; =
// per token of one sequence), tokens/s over the batch, memory per sequence
// (KV + SSM state, by the model's shape) and each figure's ratio to its value
// at the first context; then the context length from which Bamba's memory per
// sequence is below Llama's.
//
// Default sizes (about 0.86-0.89M parameters each, hidden 128, vocab 266):
// Llama 4 layers (2 heads x 64, 1 kv head, MLP 384); Mamba-2 7 layers (8
// heads x 32, state 64, 1 group); Bamba 4 layers, attention at layer 3, Mamba-2
// mixers as above, MLP 256. The whole run takes 2-3 minutes on 2 cores, most
// of it Llama's 32k-token prefill through the CPU attention loop.
//
//   hs_context_bench
//   hs_context_bench --contexts 512,2048 --json
//   hs_context_bench --contexts 512,2048 --json
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/model_config.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/plan_builder.h"
#include "engine/status_macros.h"
#include "tools/lib/tiny_model.h"

ABSL_FLAG(std::string, contexts, "512,2048,8192,32768",
          "Comma-separated context lengths (tokens), increasing. Ratios are to "
          "the first.");
ABSL_FLAG(std::string, batches, "1,16",
          "Comma-separated decode batch sizes: at each context the prefilled "
          "sequence is forked into this many sequences.");
ABSL_FLAG(int, decode_steps, 16,
          "Timed decode steps per (model, context, batch), after one untimed "
          "step; the figures are their median.");
ABSL_FLAG(int64_t, prefill_chunk, 2048,
          "Tokens per prefill step (chunked prefill, as the server does).");
ABSL_FLAG(std::string, models, "llama,mamba2,bamba",
          "Which of llama, mamba2, bamba to run.");
ABSL_FLAG(int64_t, hidden_size, 128, "Model width of all three models.");
ABSL_FLAG(int64_t, num_heads, 2,
          "Attention heads (Llama, Bamba's attention layers); head_dim is "
          "hidden_size / num_heads. Few heads keep the CPU attention loop's "
          "32k-token prefill to a minute or two.");
ABSL_FLAG(int64_t, num_kv_heads, 1, "Key/value heads (Llama, Bamba).");
ABSL_FLAG(int64_t, llama_layers, 4, "Llama layers (all attention).");
ABSL_FLAG(int64_t, llama_intermediate_size, 384, "Llama's SwiGLU width.");
ABSL_FLAG(int64_t, mamba2_layers, 7, "Mamba-2 layers (no MLP).");
ABSL_FLAG(int64_t, bamba_layers, 4,
          "Bamba layers; attention at every fourth (3, 7, ...), Mamba-2 mixers "
          "elsewhere, a SwiGLU after each.");
ABSL_FLAG(int64_t, bamba_intermediate_size, 256, "Bamba's SwiGLU width.");
ABSL_FLAG(int64_t, ssm_state_size, 64, "Mamba-2 state size N (Mamba-2 and Bamba).");
ABSL_FLAG(int64_t, ssm_head_dim, 32,
          "Mamba-2 head dimension; heads = 2 x hidden_size / this.");
ABSL_FLAG(int, threads, 0, "CPU threads (0: all cores).");
ABSL_FLAG(int64_t, block_tokens, 16, "KV block size in tokens.");
ABSL_FLAG(bool, json, false,
          "Print one JSON object instead of the table (progress goes to stderr "
          "either way).");

namespace hybridserve {
namespace {

using engine::Engine;
using engine::PlanBuilder;
using tools::TinyArchitecture;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Progress(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

absl::StatusOr<std::vector<int64_t>> ParseList(const std::string& text,
                                               const char* flag) {
  std::vector<int64_t> values;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": expected positive integers, got '", text, "'"));
    }
    values.push_back(v);
  }
  if (values.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " is empty"));
  }
  return values;
}

struct Row {
  int64_t context = 0;
  double prefill_seconds = 0.0;  // prefill from the previous context to this one
  std::vector<double> step_seconds;  // per batch size: median decode step
  uint64_t memory_bytes = 0;         // KV + state of one sequence at `context`
};

struct ModelResult {
  std::string name;                // "llama", ...
  std::string architecture;        // "LlamaForCausalLM", ...
  std::string layers;              // e.g. "A M M M"
  int64_t num_parameters = 0;
  uint64_t kv_bytes_per_token = 0;
  uint64_t state_bytes_per_seq = 0;
  std::vector<Row> rows;
};

tools::TinyModelOptions ModelOptions(TinyArchitecture a) {
  tools::TinyModelOptions o;
  o.architecture = a;
  o.seed = 1;
  o.vocab_size = tools::kTinyLlamaMinVocabSize;
  o.hidden_size = absl::GetFlag(FLAGS_hidden_size);
  o.num_heads = absl::GetFlag(FLAGS_num_heads);
  o.num_kv_heads = absl::GetFlag(FLAGS_num_kv_heads);
  o.head_dim = o.hidden_size / std::max<int64_t>(1, o.num_heads);
  o.ssm_expand = 2;
  o.ssm_head_dim = absl::GetFlag(FLAGS_ssm_head_dim);
  o.ssm_num_heads = 2 * o.hidden_size / std::max<int64_t>(1, o.ssm_head_dim);
  o.ssm_state_size = absl::GetFlag(FLAGS_ssm_state_size);
  o.ssm_n_groups = 1;
  switch (a) {
    case TinyArchitecture::kLlama:
    case TinyArchitecture::kQwen3:
    case TinyArchitecture::kQwen2:
    case TinyArchitecture::kMistral:
      o.num_layers = absl::GetFlag(FLAGS_llama_layers);
      o.intermediate_size = absl::GetFlag(FLAGS_llama_intermediate_size);
      break;
    case TinyArchitecture::kMamba2:
      o.num_layers = absl::GetFlag(FLAGS_mamba2_layers);
      break;
    case TinyArchitecture::kBamba:
      o.num_layers = absl::GetFlag(FLAGS_bamba_layers);
      o.intermediate_size = absl::GetFlag(FLAGS_bamba_intermediate_size);
      for (int64_t i = 3; i < o.num_layers; i += 4) o.attn_layer_indices.push_back(i);
      break;
    case TinyArchitecture::kMamba:
      break;
  }
  return o;
}

// Forks sequence 0 into sequences first_id .. first_id + n - 1.
absl::Status ForkBatch(Engine& e, PlanBuilder& builder, int64_t first_id, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    HS_ASSIGN_OR_RETURN(PlanBuilder::ForkCopies copies, builder.Fork(0, first_id + i));
    HS_RETURN_IF_ERROR(e.CopyKvBlocks(copies.src_blocks, copies.dst_blocks));
    if (copies.src_slot >= 0) {
      HS_RETURN_IF_ERROR(e.CopyStateSlot(copies.src_slot, copies.dst_slot));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelResult> RunModel(TinyArchitecture a,
                                     const std::filesystem::path& root,
                                     const std::vector<int64_t>& contexts,
                                     const std::vector<int64_t>& batches) {
  const tools::TinyModelOptions options = ModelOptions(a);
  ModelResult result;
  result.name = std::string(tools::TinyArchitectureName(a));
  result.architecture = std::string(tools::TinyArchitectureClass(a));
  result.num_parameters = tools::TinyModelNumParameters(options);
  const std::filesystem::path dir = root / result.name;
  tools::TinyModelOptions write = options;
  const int64_t steps = absl::GetFlag(FLAGS_decode_steps);
  const int64_t max_batch = *std::max_element(batches.begin(), batches.end());
  const int64_t max_len = contexts.back() + steps + 2;
  write.max_position_embeddings = max_len;
  HS_RETURN_IF_ERROR(tools::WriteTinyModel(write, dir));

  // Size the cache for the prefilled sequence and its largest batch of forks.
  HS_ASSIGN_OR_RETURN(engine::ModelConfig config, engine::LoadModelConfig(dir));
  for (engine::LayerKind k : config.layer_kinds) {
    absl::StrAppend(&result.layers, result.layers.empty() ? "" : " ",
                    k == engine::LayerKind::kAttention ? "A" : "M");
  }
  const int64_t bt = absl::GetFlag(FLAGS_block_tokens);
  const uint64_t kv_per_token = static_cast<uint64_t>(config.num_attention_layers()) * 2 *
                                config.num_kv_heads * config.head_dim * sizeof(float);
  const int64_t seqs = max_batch + 1;
  const uint64_t blocks_per_seq = static_cast<uint64_t>((max_len + bt - 1) / bt);
  engine::EngineOptions eo;
  eo.model_dir = dir;
  eo.device = "cpu";
  eo.num_threads = absl::GetFlag(FLAGS_threads);
  eo.block_tokens = bt;
  eo.max_num_seqs = seqs;
  eo.max_num_tokens = std::max(absl::GetFlag(FLAGS_prefill_chunk), max_batch);
  eo.max_model_len = max_len;
  eo.kv_cache_bytes = seqs * (blocks_per_seq * bt * kv_per_token + config.state_bytes_per_seq()) +
                      (1 << 20);
  HS_ASSIGN_OR_RETURN(std::unique_ptr<Engine> e, Engine::Create(eo));
  const engine::MemoryPlan& mp = e->memory_plan();
  result.kv_bytes_per_token = mp.kv_bytes_per_token;
  result.state_bytes_per_seq = mp.state_bytes_per_slot;
  Progress(absl::StrFormat(
      "%s: %s, %d parameters, layers [%s]; KV %d B/token, state %d B/sequence; %s",
      result.name, result.architecture, result.num_parameters, result.layers,
      mp.kv_bytes_per_token, mp.state_bytes_per_slot, mp.ToString()));

  PlanBuilder builder(mp.num_blocks, mp.block_tokens, mp.num_state_slots);
  engine::StepOutput out;
  // The prompt: a fixed pseudo-random walk over the byte tokens.
  auto token_at = [](int64_t pos) { return static_cast<int32_t>((pos * 7919 + 13) % 256); };
  int64_t len = 0;
  for (int64_t context : contexts) {
    Row row;
    row.context = context;
    const auto prefill_start = Clock::now();
    while (len < context) {
      const int64_t n = std::min(absl::GetFlag(FLAGS_prefill_chunk), context - len);
      PlanBuilder::Chunk chunk{.seq_id = 0, .tokens = {}};
      for (int64_t i = 0; i < n; ++i) chunk.tokens.push_back(token_at(len + i));
      HS_ASSIGN_OR_RETURN(engine::StepPlan plan, builder.Build({chunk}));
      HS_RETURN_IF_ERROR(e->Step(plan, &out));
      len += n;
    }
    row.prefill_seconds = Seconds(prefill_start);
    row.memory_bytes = mp.kv_bytes_per_token * context + mp.state_bytes_per_slot;
    for (int64_t batch : batches) {
      constexpr int64_t kFirstFork = 1000;
      HS_RETURN_IF_ERROR(ForkBatch(*e, builder, kFirstFork, batch));
      std::vector<double> timed;  // seconds of each timed step
      for (int64_t step = 0; step <= steps; ++step) {
        std::vector<PlanBuilder::Chunk> chunks;
        for (int64_t i = 0; i < batch; ++i) {
          chunks.push_back({.seq_id = kFirstFork + i, .tokens = {token_at(context + step)}});
        }
        HS_ASSIGN_OR_RETURN(engine::StepPlan plan, builder.Build(chunks));
        const auto start = Clock::now();
        HS_RETURN_IF_ERROR(e->Step(plan, &out));
        if (step > 0) timed.push_back(Seconds(start));  // step 0 warms up
      }
      // The median: robust to other processes taking the cores for a while.
      std::sort(timed.begin(), timed.end());
      const size_t mid = timed.size() / 2;
      row.step_seconds.push_back(timed.size() % 2 ? timed[mid]
                                                  : 0.5 * (timed[mid - 1] + timed[mid]));
      for (int64_t i = 0; i < batch; ++i) builder.Free(kFirstFork + i);
    }
    std::string line = absl::StrFormat("%s: context %d: prefill %.1f s", result.name,
                                       context, row.prefill_seconds);
    for (size_t b = 0; b < batches.size(); ++b) {
      absl::StrAppendFormat(&line, ", batch %d %.2f ms/step", batches[b],
                            1e3 * row.step_seconds[b]);
    }
    Progress(line);
    result.rows.push_back(std::move(row));
  }
  return result;
}

// The smallest context (tokens) at which the hybrid's memory per sequence is
// below the transformer's, or -1 when it never is.
int64_t Crossover(const ModelResult& transformer, const ModelResult& hybrid) {
  const double t_kv = static_cast<double>(transformer.kv_bytes_per_token);
  const double h_kv = static_cast<double>(hybrid.kv_bytes_per_token);
  const double extra_state = static_cast<double>(hybrid.state_bytes_per_seq) -
                             static_cast<double>(transformer.state_bytes_per_seq);
  if (t_kv <= h_kv) return extra_state < 0 ? 0 : -1;
  // hybrid < transformer  ⇔  context > extra_state / (t_kv - h_kv)
  return static_cast<int64_t>(std::floor(extra_state / (t_kv - h_kv))) + 1;
}

std::string Ratio(double value, double base) {
  return base > 0 ? absl::StrFormat("%.2fx", value / base) : "-";
}

void PrintTable(const std::vector<ModelResult>& results, const std::vector<int64_t>& batches) {
  for (const ModelResult& r : results) {
    std::printf("\n%s (%s): %lld parameters, layers [%s], KV %llu B/token, SSM state %llu "
                "B/sequence\n",
                r.name.c_str(), r.architecture.c_str(),
                static_cast<long long>(r.num_parameters), r.layers.c_str(),
                static_cast<unsigned long long>(r.kv_bytes_per_token),
                static_cast<unsigned long long>(r.state_bytes_per_seq));
    std::string header = absl::StrFormat("%8s %9s", "context", "prefill");
    for (int64_t b : batches) {
      absl::StrAppendFormat(&header, " | B=%-3d %8s %6s %9s %6s", b, "ms/tok", "ratio",
                            "tok/s", "ratio");
    }
    absl::StrAppendFormat(&header, " | %11s %6s", "MiB/seq", "ratio");
    std::printf("%s\n", header.c_str());
    const Row& base = r.rows.front();
    for (const Row& row : r.rows) {
      std::string line = absl::StrFormat("%8d %8.1fs", row.context, row.prefill_seconds);
      for (size_t b = 0; b < batches.size(); ++b) {
        const double tps = batches[b] / row.step_seconds[b];
        const double base_tps = batches[b] / base.step_seconds[b];
        absl::StrAppendFormat(&line, " |       %8.3f %6s %9.0f %6s", 1e3 * row.step_seconds[b],
                              Ratio(row.step_seconds[b], base.step_seconds[b]), tps,
                              Ratio(tps, base_tps));
      }
      absl::StrAppendFormat(&line, " | %11.3f %6s", row.memory_bytes / 1048576.0,
                            Ratio(static_cast<double>(row.memory_bytes),
                                  static_cast<double>(base.memory_bytes)));
      std::printf("%s\n", line.c_str());
    }
  }
}

void PrintJson(const std::vector<ModelResult>& results, const std::vector<int64_t>& batches,
               int64_t crossover, bool have_crossover) {
  std::string j = "{\n  \"models\": [";
  for (size_t m = 0; m < results.size(); ++m) {
    const ModelResult& r = results[m];
    absl::StrAppendFormat(&j,
                          "%s\n    {\"name\": \"%s\", \"architecture\": \"%s\", "
                          "\"num_parameters\": %d, \"layers\": \"%s\", "
                          "\"kv_bytes_per_token\": %d, \"state_bytes_per_sequence\": %d, "
                          "\"rows\": [",
                          m ? "," : "", r.name, r.architecture, r.num_parameters, r.layers,
                          r.kv_bytes_per_token, r.state_bytes_per_seq);
    const Row& base = r.rows.front();
    for (size_t i = 0; i < r.rows.size(); ++i) {
      const Row& row = r.rows[i];
      absl::StrAppendFormat(&j,
                            "%s\n      {\"context\": %d, \"prefill_seconds\": %.4f, "
                            "\"memory_bytes_per_sequence\": %d, \"memory_ratio\": %.4f, "
                            "\"decode\": [",
                            i ? "," : "", row.context, row.prefill_seconds, row.memory_bytes,
                            static_cast<double>(row.memory_bytes) / base.memory_bytes);
      for (size_t b = 0; b < batches.size(); ++b) {
        absl::StrAppendFormat(
            &j,
            "%s{\"batch\": %d, \"seconds_per_step\": %.6g, \"tokens_per_second\": %.6g, "
            "\"step_ratio\": %.4f}",
            b ? ", " : "", batches[b], row.step_seconds[b], batches[b] / row.step_seconds[b],
            row.step_seconds[b] / base.step_seconds[b]);
      }
      j += "]}";
    }
    j += "\n    ]}";
  }
  j += "\n  ]";
  if (have_crossover) {
    absl::StrAppendFormat(&j, ",\n  \"bamba_below_llama_from_context\": %d", crossover);
  }
  j += "\n}\n";
  std::fputs(j.c_str(), stdout);
}

int Main() {
  auto contexts = ParseList(absl::GetFlag(FLAGS_contexts), "contexts");
  auto batches = ParseList(absl::GetFlag(FLAGS_batches), "batches");
  if (!contexts.ok() || !batches.ok()) {
    std::fprintf(stderr, "error: %s\n",
                 std::string((contexts.ok() ? batches.status() : contexts.status()).message())
                     .c_str());
    return 2;
  }
  if (!std::is_sorted(contexts->begin(), contexts->end()) ||
      std::adjacent_find(contexts->begin(), contexts->end()) != contexts->end()) {
    std::fprintf(stderr, "error: --contexts must be increasing\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_decode_steps) < 1 || absl::GetFlag(FLAGS_prefill_chunk) < 1) {
    std::fprintf(stderr, "error: --decode_steps and --prefill_chunk must be positive\n");
    return 2;
  }
  std::vector<TinyArchitecture> archs;
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_models), ',',
                                               absl::SkipEmpty())) {
    auto a = tools::ParseTinyArchitecture(std::string(name));
    if (!a.ok() || *a == TinyArchitecture::kMamba) {
      std::fprintf(stderr, "error: --models: expected llama, mamba2 or bamba, got '%s'\n",
                   std::string(name).c_str());
      return 2;
    }
    archs.push_back(*a);
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "hs_context_bench_XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "error: cannot create a temporary folder\n");
    return 1;
  }
  const std::filesystem::path root = tmpl;
  std::vector<ModelResult> results;
  absl::Status status;
  for (TinyArchitecture a : archs) {
    auto r = RunModel(a, root, *contexts, *batches);
    if (!r.ok()) {
      status = r.status();
      break;
    }
    results.push_back(*std::move(r));
  }
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
    return 1;
  }

  const ModelResult* llama = nullptr;
  const ModelResult* bamba = nullptr;
  for (const ModelResult& r : results) {
    if (r.name == "llama") llama = &r;
    if (r.name == "bamba") bamba = &r;
  }
  const bool have_crossover = llama != nullptr && bamba != nullptr;
  const int64_t crossover = have_crossover ? Crossover(*llama, *bamba) : -1;
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(results, *batches, crossover, have_crossover);
    return 0;
  }
  PrintTable(results, *batches);
  if (have_crossover) {
    if (crossover < 0) {
      std::printf("\nBamba's memory per sequence never drops below Llama's (KV %llu vs %llu "
                  "B/token).\n",
                  static_cast<unsigned long long>(bamba->kv_bytes_per_token),
                  static_cast<unsigned long long>(llama->kv_bytes_per_token));
    } else {
      std::printf(
          "\nBamba's memory per sequence is below Llama's from %lld tokens of context on: "
          "its %llu B of SSM state / (%llu - %llu) B of KV per token saved.\n",
          static_cast<long long>(crossover),
          static_cast<unsigned long long>(bamba->state_bytes_per_seq),
          static_cast<unsigned long long>(llama->kv_bytes_per_token),
          static_cast<unsigned long long>(bamba->kv_bytes_per_token));
    }
  }
  return 0;
}

}  // namespace
}  // namespace hybridserve

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "context_bench.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "Context-scaling benchmark: decode time and memory per sequence of a Llama, a "
      "Mamba-2 and a Bamba (one attention layer in four) of about equal parameter "
      "count, at growing context lengths, on the CPU engine. Each context is "
      "prefilled once (chunked), then forked into batches of 1 and 16 sequences.\n\n"
      "  hs_context_bench [--contexts 512,2048,8192,32768] [--batches 1,16] [--json] "
      "[size flags]");
  absl::ParseCommandLine(argc, argv);
  return hybridserve::Main();
}
