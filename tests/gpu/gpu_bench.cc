// hs_gpu_bench: decode and prefill speed of the CUDA engine on Bamba-9B- and
// Llama-3-8B-shaped models with random bf16 weights made on the device
// (EngineOptions::random_weights_seed; no checkpoint is read), against two
// ceilings measured in the same process:
//   * HBM bandwidth: a device-to-device copy of 2 GiB timed with CUDA events,
//     counting bytes read plus bytes written;
//   * the bf16 GEMM rate: Backend::Gemm (cuBLAS) at 8192 x 8192 x 8192.
// Decode, at batch 1, 32 and 128 and contexts 1k and 8k: one sequence is
// prefilled to just under the context and forked once into as many sequences
// as the largest batch that fits (PlanBuilder::Fork with Engine::CopyKvBlocks
// / CopyStateSlot); each batch size then decodes on the first `batch` forks
// (median of --decode_steps steps after 2 untimed ones). A step reads every weight except
// the embedding table (only its batch rows), the batch's whole KV cache, and
// reads and writes each sequence's SSM state: bytes per step / step time over
// the measured bandwidth is the fraction reported. Prefill: one 8192-token
// sequence in one step; 2 x tokens x (weights of the linear layers) FLOPs over
// the time, over the measured GEMM rate. Cells whose KV blocks or state slots
// do not fit the GPU are skipped, and the reason printed.
//
// Model shapes (from the Hugging Face config.json files):
//   ibm-ai-platform/Bamba-9B: hidden 4096, 32 layers, attention at layers 9,
//     18, 27 (32 heads / 8 KV heads of 128, rotary on 64 dims, theta 1e4),
//     Mamba-2 mixers elsewhere (128 heads of 64, d_state 128, 1 group,
//     d_conv 4, expand 2, chunk 256, conv bias, no projection bias), SwiGLU
//     MLP 14336 after every mixer, vocabulary 128256, untied;
//     max_position_embeddings 262144 (transformers' BambaConfig default).
//   meta-llama/Meta-Llama-3-8B: hidden 4096, 32 layers of attention (32 heads /
//     8 KV heads of 128, theta 5e5), SwiGLU MLP 14336, vocabulary 128256,
//     untied, max_position_embeddings 8192.
// Targets (issue 7): decode at batch 32, 8k context >= 60% of the measured
// HBM bandwidth; 8k prefill >= 50% of the measured bf16 GEMM rate.
//
//   hs_gpu_bench [--quick] [--json FILE] [--models bamba,llama]
//
// Without a GPU (or in a build without CUDA) it prints "SKIPPED: ..." and
// exits 0. --time_budget_s bounds the whole run: cells not started by then
// are skipped (and say so).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/backend/cuda/cuda_backend.h"
#include "engine/backend/backend.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/plan_builder.h"
#include "engine/status_macros.h"
#include "rapidjson/prettywriter.h"
#include "rapidjson/stringbuffer.h"

#if defined(HS_HAVE_CUDA)
#include <cuda_runtime.h>
#endif

ABSL_FLAG(bool, quick, false,
          "Short run: 3 timed decode steps per cell, one timed prefill.");
ABSL_FLAG(std::string, json, "", "Also write the results as JSON to this file.");
ABSL_FLAG(std::string, models, "bamba,llama", "Which of bamba, llama to run.");
ABSL_FLAG(std::string, batches, "1,32,128", "Decode batch sizes.");
ABSL_FLAG(std::string, contexts, "1024,8192", "Decode context lengths (tokens).");
ABSL_FLAG(int, decode_steps, 10, "Timed decode steps per cell (after 2 untimed).");
ABSL_FLAG(int64_t, prefill_tokens, 8192, "Tokens of the timed prefill (one step).");
ABSL_FLAG(double, gpu_memory_fraction, 0.9, "EngineOptions::gpu_memory_fraction.");
ABSL_FLAG(std::string, device, "cuda",
          "cuda (the benchmark), or cpu: the same run on the CPU backend in f32, "
          "with a host memcpy and CpuBackend::Gemm as the ceilings (with --tiny, a "
          "smoke test of this program on machines without a GPU).");
ABSL_FLAG(bool, tiny, false,
          "Shrink both models (hidden 128, 4 layers, vocabulary 512) keeping their "
          "layer pattern, and the ceiling measurements (a 64 MiB copy, a 512^3 "
          "GEMM): for smoke tests.");
ABSL_FLAG(double, time_budget_s, 210.0,
          "Cells not started after this many seconds are skipped.");

namespace hybridserve {
namespace {

using engine::Engine;
using engine::EngineOptions;
using engine::PlanBuilder;
using engine::StepOutput;
using Clock = std::chrono::steady_clock;

const Clock::time_point kStart = Clock::now();

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
bool OverBudget() { return Since(kStart) > absl::GetFlag(FLAGS_time_budget_s); }

void Log(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// ---- model shapes

struct ModelShape {
  std::string name;          // "bamba-9b"
  std::string architecture;  // config.json "architectures"
  std::string model_type;
  int64_t vocab = 128256, hidden = 4096, intermediate = 14336, layers = 32;
  int64_t heads = 32, kv_heads = 8, head_dim = 128;
  std::vector<int64_t> attn_layers;  // empty: every layer is attention
  int64_t rotary_dim = 128;
  double rope_theta = 10000.0;
  int64_t max_position = 8192;
  // Mamba-2 mixers (Bamba).
  int64_t ssm_heads = 0, ssm_head_dim = 0, ssm_state = 0, ssm_groups = 0, conv_kernel = 0;
  int64_t expand = 0, chunk = 0;

  bool IsAttention(int64_t layer) const {
    return attn_layers.empty() ||
           std::find(attn_layers.begin(), attn_layers.end(), layer) != attn_layers.end();
  }
  int64_t d_inner() const { return expand * hidden; }
};

bool OnCpu() { return absl::GetFlag(FLAGS_device) == "cpu"; }

// The ceilings' sizes: the copy timed for the memory bandwidth and the
// square GEMM timed for the GEMM rate.
size_t CeilingCopyBytes() {
  if (absl::GetFlag(FLAGS_tiny)) return size_t{64} << 20;
  return OnCpu() ? size_t{256} << 20 : size_t{2} << 30;
}
int64_t CeilingGemmSize() {
  if (absl::GetFlag(FLAGS_tiny)) return 512;
  return OnCpu() ? 1024 : 8192;
}
// Weights are bf16 on the GPU, f32 on the CPU backend.
double WeightBytesPerParam() { return OnCpu() ? 4.0 : 2.0; }

// --tiny: the same architecture at toy size (attention at layer 1 of 4 for
// the hybrid).
ModelShape Tiny(ModelShape s) {
  s.name += "-tiny";
  s.vocab = 512;
  s.hidden = 128;
  s.intermediate = 256;
  s.layers = 4;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 32;
  s.rotary_dim = std::min<int64_t>(s.rotary_dim, 32) / (s.model_type == "bamba" ? 2 : 1);
  if (!s.attn_layers.empty()) s.attn_layers = {1};
  s.max_position = std::max<int64_t>(s.max_position, 16384);
  if (s.ssm_heads > 0) {
    s.ssm_heads = 8;
    s.ssm_head_dim = 32;
    s.ssm_state = 16;
    s.chunk = 16;
  }
  return s;
}

ModelShape Bamba9B() {
  ModelShape s;
  s.name = "bamba-9b";
  s.architecture = "BambaForCausalLM";
  s.model_type = "bamba";
  s.attn_layers = {9, 18, 27};
  s.rotary_dim = 64;
  s.rope_theta = 10000.0;
  s.max_position = 262144;
  s.ssm_heads = 128;
  s.ssm_head_dim = 64;
  s.ssm_state = 128;
  s.ssm_groups = 1;
  s.conv_kernel = 4;
  s.expand = 2;
  s.chunk = 256;
  return s;
}

ModelShape Llama3_8B() {
  ModelShape s;
  s.name = "llama-3-8b";
  s.architecture = "LlamaForCausalLM";
  s.model_type = "llama";
  s.rotary_dim = 128;
  s.rope_theta = 500000.0;
  s.max_position = 8192;
  return s;
}

std::string ConfigJson(const ModelShape& s) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("architectures");
  w.StartArray();
  w.String(s.architecture.c_str());
  w.EndArray();
  w.Key("model_type"); w.String(s.model_type.c_str());
  w.Key("vocab_size"); w.Int64(s.vocab);
  w.Key("hidden_size"); w.Int64(s.hidden);
  w.Key("intermediate_size"); w.Int64(s.intermediate);
  w.Key("num_hidden_layers"); w.Int64(s.layers);
  w.Key("num_attention_heads"); w.Int64(s.heads);
  w.Key("num_key_value_heads"); w.Int64(s.kv_heads);
  w.Key("hidden_act"); w.String("silu");
  w.Key("rms_norm_eps"); w.Double(1e-5);
  w.Key("rope_theta"); w.Double(s.rope_theta);
  w.Key("max_position_embeddings"); w.Int64(s.max_position);
  w.Key("tie_word_embeddings"); w.Bool(false);
  w.Key("attention_bias"); w.Bool(false);
  w.Key("mlp_bias"); w.Bool(false);
  const bool llama3_vocab = s.vocab > 128001;  // --tiny shrinks the vocabulary
  w.Key("bos_token_id"); w.Int(llama3_vocab ? 128000 : 1);
  w.Key("eos_token_id"); w.Int(llama3_vocab ? 128001 : 2);
  w.Key("torch_dtype"); w.String("bfloat16");
  if (s.model_type == "bamba") {
    w.Key("pad_token_id"); w.Int(0);
    w.Key("attn_layer_indices");
    w.StartArray();
    for (int64_t l : s.attn_layers) w.Int64(l);
    w.EndArray();
    w.Key("attn_rotary_emb"); w.Int64(s.rotary_dim);
    w.Key("mamba_n_heads"); w.Int64(s.ssm_heads);
    w.Key("mamba_d_head"); w.Int64(s.ssm_head_dim);
    w.Key("mamba_d_state"); w.Int64(s.ssm_state);
    w.Key("mamba_n_groups"); w.Int64(s.ssm_groups);
    w.Key("mamba_d_conv"); w.Int64(s.conv_kernel);
    w.Key("mamba_expand"); w.Int64(s.expand);
    w.Key("mamba_chunk_size"); w.Int64(s.chunk);
    w.Key("mamba_conv_bias"); w.Bool(true);
    w.Key("mamba_proj_bias"); w.Bool(false);
  }
  w.EndObject();
  return buf.GetString();
}

// Parameter counts that set the bytes and FLOPs of a step.
struct ParamCounts {
  int64_t linear = 0;  // weights of the layers' GEMMs (not the LM head)
  int64_t other = 0;   // norms, conv, SSM vectors: read every step too
  int64_t embedding = 0;
  int64_t lm_head = 0;
};

ParamCounts CountParams(const ModelShape& s) {
  ParamCounts p;
  const int64_t h = s.hidden;
  for (int64_t l = 0; l < s.layers; ++l) {
    if (s.IsAttention(l)) {
      p.linear += h * (s.heads + 2 * s.kv_heads) * s.head_dim + s.heads * s.head_dim * h;
    } else {
      const int64_t di = s.d_inner(), gn = s.ssm_groups * s.ssm_state;
      const int64_t conv_dim = di + 2 * gn;
      p.linear += h * (2 * di + 2 * gn + s.ssm_heads) + di * h;  // in_proj, out_proj
      p.other += conv_dim * s.conv_kernel + conv_dim + 3 * s.ssm_heads + di;
    }
    p.linear += 3 * h * s.intermediate;  // gate, up, down
    p.other += 2 * h;                    // input and pre-MLP norms
  }
  p.other += h;  // final norm
  p.embedding = s.vocab * h;
  p.lm_head = s.vocab * h;
  return p;
}

// ---- results

struct DecodeCell {
  int64_t batch = 0, context = 0;
  std::string skipped;  // empty when it ran
  double step_seconds = 0.0, tokens_per_second = 0.0;
  double bytes_per_step = 0.0, fraction_of_hbm = 0.0;
  double fork_seconds = 0.0;
};

struct ModelResult {
  std::string name;
  std::string error;
  double create_seconds = 0.0;
  uint64_t weight_bytes = 0, kv_bytes_per_token = 0, state_bytes_per_seq = 0;
  int64_t num_blocks = 0, num_state_slots = 0;
  int64_t prefill_tokens = 0;
  std::string prefill_skipped;
  double prefill_seconds = 0.0, prefill_gemm_flops = 0.0, prefill_attention_flops = 0.0;
  double prefill_fraction_of_gemm = 0.0;
  std::vector<DecodeCell> decode;
};

struct Results {
  std::string device, skipped;
  double hbm_bytes_per_second = 0.0, gemm_flops_per_second = 0.0;
  std::vector<ModelResult> models;
};

void WriteJson(const Results& r) {
  const std::string path = absl::GetFlag(FLAGS_json);
  if (path.empty()) return;
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("benchmark"); w.String("hs_gpu_bench");
  w.Key("quick"); w.Bool(absl::GetFlag(FLAGS_quick));
  w.Key("skipped"); w.String(r.skipped.c_str());
  w.Key("device"); w.String(r.device.c_str());
  w.Key("hbm_bytes_per_second"); w.Double(r.hbm_bytes_per_second);
  w.Key("gemm_flops_per_second"); w.Double(r.gemm_flops_per_second);
  w.Key("gemm_dtype"); w.String(OnCpu() ? "f32" : "bf16");
  w.Key("elapsed_seconds"); w.Double(Since(kStart));
  w.Key("models");
  w.StartArray();
  for (const ModelResult& m : r.models) {
    w.StartObject();
    w.Key("name"); w.String(m.name.c_str());
    w.Key("error"); w.String(m.error.c_str());
    w.Key("create_seconds"); w.Double(m.create_seconds);
    w.Key("weight_bytes"); w.Uint64(m.weight_bytes);
    w.Key("kv_bytes_per_token"); w.Uint64(m.kv_bytes_per_token);
    w.Key("state_bytes_per_seq"); w.Uint64(m.state_bytes_per_seq);
    w.Key("num_blocks"); w.Int64(m.num_blocks);
    w.Key("num_state_slots"); w.Int64(m.num_state_slots);
    w.Key("prefill");
    w.StartObject();
    w.Key("tokens"); w.Int64(m.prefill_tokens);
    w.Key("skipped"); w.String(m.prefill_skipped.c_str());
    w.Key("seconds"); w.Double(m.prefill_seconds);
    w.Key("tokens_per_second");
    w.Double(m.prefill_seconds > 0 ? m.prefill_tokens / m.prefill_seconds : 0.0);
    w.Key("gemm_flops"); w.Double(m.prefill_gemm_flops);
    w.Key("attention_flops"); w.Double(m.prefill_attention_flops);
    w.Key("fraction_of_gemm_rate"); w.Double(m.prefill_fraction_of_gemm);
    w.Key("target_fraction"); w.Double(0.5);
    w.Key("target_met"); w.Bool(m.prefill_fraction_of_gemm >= 0.5);
    w.EndObject();
    w.Key("decode");
    w.StartArray();
    for (const DecodeCell& c : m.decode) {
      w.StartObject();
      w.Key("batch"); w.Int64(c.batch);
      w.Key("context"); w.Int64(c.context);
      w.Key("skipped"); w.String(c.skipped.c_str());
      w.Key("step_seconds"); w.Double(c.step_seconds);
      w.Key("tokens_per_second"); w.Double(c.tokens_per_second);
      w.Key("bytes_per_step"); w.Double(c.bytes_per_step);
      w.Key("fraction_of_hbm"); w.Double(c.fraction_of_hbm);
      w.Key("fork_seconds"); w.Double(c.fork_seconds);
      if (c.batch == 32 && c.context == 8192) {
        w.Key("target_fraction"); w.Double(0.6);
        w.Key("target_met"); w.Bool(c.skipped.empty() && c.fraction_of_hbm >= 0.6);
      }
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  std::ofstream(path) << buf.GetString() << "\n";
}

// ---- ceilings

// Host memcpy bandwidth (bytes read + written per second), for --device cpu.
double MeasureHostCopyBandwidth() {
  const size_t bytes = CeilingCopyBytes();
  std::vector<char> a(bytes, 0x5A), b(bytes, 0);
  std::memcpy(b.data(), a.data(), bytes);
  const int reps = 4;
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < reps; ++i) {
    std::memcpy(i % 2 ? a.data() : b.data(), i % 2 ? b.data() : a.data(), bytes);
  }
  return 2.0 * double(bytes) * reps / Since(t0);
}

// Device-to-device copy bandwidth (bytes read + written per second).
absl::StatusOr<double> MeasureHbmBandwidth() {
  if (OnCpu()) return MeasureHostCopyBandwidth();
#if defined(HS_HAVE_CUDA)
  const size_t bytes = CeilingCopyBytes();
  void* a = nullptr;
  void* b = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  auto cleanup = [&] {
    if (a != nullptr) cudaFree(a);
    if (b != nullptr) cudaFree(b);
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
    if (stream != nullptr) cudaStreamDestroy(stream);
  };
  auto check = [&](cudaError_t e, const char* what) -> absl::Status {
    if (e == cudaSuccess) return absl::OkStatus();
    return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
  };
  absl::Status st = check(cudaMalloc(&a, bytes), "cudaMalloc");
  if (st.ok()) st = check(cudaMalloc(&b, bytes), "cudaMalloc");
  if (st.ok()) st = check(cudaStreamCreate(&stream), "cudaStreamCreate");
  if (st.ok()) st = check(cudaEventCreate(&start), "cudaEventCreate");
  if (st.ok()) st = check(cudaEventCreate(&stop), "cudaEventCreate");
  // Not zeros: fill the source with a byte pattern first.
  if (st.ok()) st = check(cudaMemsetAsync(a, 0x5A, bytes, stream), "cudaMemset");
  const int reps = 10;
  float ms = 0.0f;
  for (int i = 0; st.ok() && i < 2; ++i) {
    st = check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream), "copy");
  }
  if (st.ok()) st = check(cudaEventRecord(start, stream), "cudaEventRecord");
  for (int i = 0; st.ok() && i < reps; ++i) {
    st = check(cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice,
                               stream), "copy");
  }
  if (st.ok()) st = check(cudaEventRecord(stop, stream), "cudaEventRecord");
  if (st.ok()) st = check(cudaEventSynchronize(stop), "cudaEventSynchronize");
  if (st.ok()) st = check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  cleanup();
  if (!st.ok()) return st;
  return 2.0 * double(bytes) * reps / (ms * 1e-3);
#else
  return absl::FailedPreconditionError("no CUDA");
#endif
}

// The GEMM rate through the backend's Gemm: bf16 through cuBLAS at
// 8192^3, or (--device cpu) f32 through the CPU backend's GEMM at 1024^3. FLOPs
// per second.
absl::StatusOr<double> MeasureGemmRate() {
  std::unique_ptr<engine::Backend> backend;
  if (OnCpu()) {
    backend = std::make_unique<engine::CpuBackend>(engine::CpuBackendOptions{});
  } else {
#if defined(HS_HAVE_CUDA)
    HS_ASSIGN_OR_RETURN(backend, engine::CreateCudaBackend({.act_dtype = engine::DType::kBF16}));
#else
    return absl::FailedPreconditionError("no CUDA");
#endif
  }
  const engine::DType dtype = backend->act_dtype();
  const int64_t n = CeilingGemmSize();
  const size_t bytes = size_t(n) * n * engine::DTypeSize(dtype);
  HS_ASSIGN_OR_RETURN(engine::DeviceBuffer xb, backend->Allocate(bytes, "bench"));
  HS_ASSIGN_OR_RETURN(engine::DeviceBuffer wb, backend->Allocate(bytes, "bench"));
  HS_ASSIGN_OR_RETURN(engine::DeviceBuffer yb, backend->Allocate(bytes, "bench"));
  const engine::Tensor x(xb.data(), dtype, {n, n});
  const engine::Tensor w(wb.data(), dtype, {n, n});
  const engine::Tensor y(yb.data(), dtype, {n, n});
  // Random data (a GEMM on zeros runs faster than on real values).
  HS_RETURN_IF_ERROR(backend->FillUniform(x, 1, -1.0f, 1.0f));
  HS_RETURN_IF_ERROR(backend->FillUniform(w, 2, -0.01f, 0.01f));
  for (int i = 0; i < 3; ++i) HS_RETURN_IF_ERROR(backend->Gemm(x, w, engine::Tensor(), y));
  HS_RETURN_IF_ERROR(backend->Synchronize());
  const int reps = OnCpu() ? 3 : 20;
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < reps; ++i) HS_RETURN_IF_ERROR(backend->Gemm(x, w, engine::Tensor(), y));
  HS_RETURN_IF_ERROR(backend->Synchronize());
  const double seconds = Since(t0);
  return 2.0 * double(n) * n * n * reps / seconds;
}

// ---- one model

std::vector<int32_t> RandomTokens(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> v(n);
  for (auto& t : v) t = d(gen);
  return v;
}

// Prefills sequence `seq` with `n` tokens in steps of at most `chunk`.
absl::Status Prefill(Engine& e, PlanBuilder& builder, int64_t seq, int64_t n, int64_t chunk,
                     int64_t vocab) {
  StepOutput out;
  for (int64_t done = 0; done < n;) {
    const int64_t len = std::min(chunk, n - done);
    HS_ASSIGN_OR_RETURN(engine::StepPlan plan,
                        builder.Build({{.seq_id = seq,
                                        .tokens = RandomTokens(len, vocab, 7 + done)}}));
    HS_RETURN_IF_ERROR(e.Step(plan, &out));
    done += len;
  }
  return absl::OkStatus();
}

void RunPrefill(Engine& e, const ModelShape& s, const ParamCounts& p, double gemm_rate,
                ModelResult* r) {
  const int64_t t = absl::GetFlag(FLAGS_prefill_tokens);
  r->prefill_tokens = t;
  const engine::MemoryPlan& m = e.memory_plan();
  const int reps = absl::GetFlag(FLAGS_quick) ? 1 : 3;
  std::vector<double> times;
  for (int i = 0; i < reps + 1; ++i) {  // the first is a warm-up
    if (OverBudget()) {
      r->prefill_skipped = "time budget spent";
      break;
    }
    PlanBuilder builder(m.num_blocks, m.block_tokens, m.num_state_slots);
    auto plan = builder.Build({{.seq_id = 0, .tokens = RandomTokens(t, s.vocab, 100 + i)}});
    if (!plan.ok()) {
      r->prefill_skipped = std::string(plan.status().message());
      break;
    }
    StepOutput out;
    const Clock::time_point t0 = Clock::now();
    absl::Status st = e.Step(*plan, &out);
    const double seconds = Since(t0);
    if (!st.ok()) {
      r->prefill_skipped = std::string(st.message());
      break;
    }
    if (i > 0) times.push_back(seconds);
  }
  int64_t attn_layers = 0;
  for (int64_t l = 0; l < s.layers; ++l) attn_layers += s.IsAttention(l);
  r->prefill_gemm_flops = 2.0 * double(t) * double(p.linear) + 2.0 * double(p.lm_head);
  r->prefill_attention_flops =
      attn_layers * 4.0 * double(s.heads) * s.head_dim * (double(t) * (t + 1) / 2.0);
  if (times.empty()) {
    Log(absl::StrFormat("  prefill %d tokens: SKIPPED (%s)", t, r->prefill_skipped));
    return;
  }
  r->prefill_seconds = Median(times);
  r->prefill_fraction_of_gemm = r->prefill_gemm_flops / r->prefill_seconds / gemm_rate;
  Log(absl::StrFormat(
      "  prefill %d tokens: %.3f s, %.0f tokens/s, GEMM %.1f TFLOP/s = %.1f%% of the measured "
      "GEMM rate (target 50%%: %s); attention adds %.3g TFLOP",
      t, r->prefill_seconds, t / r->prefill_seconds,
      r->prefill_gemm_flops / r->prefill_seconds * 1e-12, 100 * r->prefill_fraction_of_gemm,
      r->prefill_fraction_of_gemm >= 0.5 ? "met" : "NOT met",
      r->prefill_attention_flops * 1e-12));
}

// Forks the prefilled sequence 0 into sequences 1..n (KV blocks and state
// slot copied). On error some forks may exist; the caller frees 1..n.
absl::Status ForkSource(Engine& e, PlanBuilder& builder, int64_t n) {
  for (int64_t i = 1; i <= n; ++i) {
    HS_ASSIGN_OR_RETURN(PlanBuilder::ForkCopies copies, builder.Fork(0, i));
    HS_RETURN_IF_ERROR(e.CopyKvBlocks(copies.src_blocks, copies.dst_blocks));
    if (copies.src_slot >= 0) {
      HS_RETURN_IF_ERROR(e.CopyStateSlot(copies.src_slot, copies.dst_slot));
    }
  }
  return absl::OkStatus();
}

// Why `batch` forks of a `source_len`-token sequence, each growing by
// `new_tokens` (over all batch sizes), do not fit the free KV blocks or
// state slots; empty when they fit.
std::string DoesNotFit(const engine::MemoryPlan& m, const PlanBuilder& builder, int64_t batch,
                       int64_t source_len, int64_t new_tokens) {
  if (m.num_blocks > 0) {
    const int64_t each = (source_len + new_tokens + m.block_tokens - 1) / m.block_tokens;
    if (builder.num_free_blocks() < batch * each) {
      return absl::StrFormat("does not fit: needs %d KV blocks (%.1f GiB), %d free", batch * each,
                             batch * each * double(m.kv_bytes_per_block) / (1 << 30),
                             builder.num_free_blocks());
    }
  }
  if (m.num_state_slots > 0 && builder.num_free_state_slots() < batch) {
    return absl::StrFormat("does not fit: needs %d state slots, %d free", batch,
                           builder.num_free_state_slots());
  }
  return "";
}

// One decode cell on the forks 1..batch (made by ForkSource): 2 untimed
// steps, then the timed ones (each sequence grows by a token per step).
DecodeCell RunDecode(Engine& e, PlanBuilder& builder, const ModelShape& s, const ParamCounts& p,
                     int64_t batch, int64_t context, double hbm) {
  DecodeCell c;
  c.batch = batch;
  c.context = context;
  const engine::MemoryPlan& m = e.memory_plan();
  const int warmup = 2, steps = absl::GetFlag(FLAGS_quick) ? 3 : absl::GetFlag(FLAGS_decode_steps);
  std::vector<double> times;
  double kv_tokens = 0.0;
  StepOutput out;
  for (int step = 0; step < warmup + steps; ++step) {
    std::vector<PlanBuilder::Chunk> chunks;
    for (int64_t i = 1; i <= batch; ++i) {
      chunks.push_back({.seq_id = i, .tokens = RandomTokens(1, s.vocab, step * 1000 + i)});
    }
    absl::StatusOr<engine::StepPlan> plan = builder.Build(chunks);
    absl::Status st = plan.status();
    const Clock::time_point t0 = Clock::now();
    if (st.ok()) st = e.Step(*plan, &out);
    const double seconds = Since(t0);
    if (!st.ok()) {
      c.skipped = absl::StrCat("error: ", st.ToString());
      Log(absl::StrFormat("  decode batch %d context %d: %s", batch, context, c.skipped));
      return c;
    }
    if (step >= warmup) {
      times.push_back(seconds);
      for (int32_t len : plan->context_len) kv_tokens += len;
    }
  }
  c.step_seconds = Median(times);
  c.tokens_per_second = batch / c.step_seconds;
  // Bytes a step must move: weights (the embedding table only for the batch's
  // rows), the batch's KV cache, each sequence's SSM state read and written.
  const double weights =
      WeightBytesPerParam() * double(p.linear + p.other + p.lm_head + batch * s.hidden);
  const double kv = kv_tokens / steps * double(m.kv_bytes_per_token);
  const double state = 2.0 * batch * double(m.state_bytes_per_slot);
  c.bytes_per_step = weights + kv + state;
  c.fraction_of_hbm = c.bytes_per_step / c.step_seconds / hbm;
  Log(absl::StrFormat(
      "  decode batch %3d context %5d: step %7.2f ms, %8.0f tokens/s, %6.2f GB/step "
      "(weights %.2f, KV %.2f, state %.2f) = %5.1f%% of HBM%s",
      batch, context, 1e3 * c.step_seconds, c.tokens_per_second, c.bytes_per_step * 1e-9,
      weights * 1e-9, kv * 1e-9, state * 1e-9, 100 * c.fraction_of_hbm,
      batch == 32 && context == 8192
          ? (c.fraction_of_hbm >= 0.6 ? " (target 60%: met)" : " (target 60%: NOT met)")
          : ""));
  return c;
}

// All decode cells of one context: prefill sequence 0, fork it once into as
// many sequences as the largest batch that fits, run the batch sizes in
// increasing order on the first `batch` forks (each cell adds a few tokens to
// the forks it uses: the bytes are counted from the real context lengths).
void RunContext(Engine& e, const ModelShape& s, const ParamCounts& p,
                const std::vector<int64_t>& batches, int64_t context, int64_t max_num_tokens,
                int warmup_and_steps, double hbm, ModelResult* r, Results* results) {
  const engine::MemoryPlan& m = e.memory_plan();
  PlanBuilder builder(m.num_blocks, m.block_tokens, m.num_state_slots);
  // The forks grow by warmup_and_steps tokens in each cell that uses them;
  // the last cell ends at `context` (a model's max_position_embeddings may be
  // exactly the context).
  const int64_t grow = warmup_and_steps * static_cast<int64_t>(batches.size());
  const int64_t source_len = std::max<int64_t>(1, context - grow);
  auto skip_all = [&](size_t from, const std::string& why) {
    for (size_t i = from; i < batches.size(); ++i) {
      DecodeCell c;
      c.batch = batches[i];
      c.context = context;
      c.skipped = why;
      Log(absl::StrFormat("  decode batch %d context %d: SKIPPED (%s)", c.batch, context, why));
      r->decode.push_back(c);
    }
    WriteJson(*results);
  };
  if (OverBudget()) return skip_all(0, "time budget spent");
  const Clock::time_point p0 = Clock::now();
  absl::Status st = Prefill(e, builder, 0, source_len, max_num_tokens, s.vocab);
  if (!st.ok()) return skip_all(0, absl::StrCat("context prefill failed: ", st.ToString()));
  const double prefill_seconds = Since(p0);
  // The largest batch whose forks fit (the source stays allocated).
  size_t fit = 0;
  std::string why_not;
  for (; fit < batches.size(); ++fit) {
    why_not = DoesNotFit(m, builder, batches[fit], source_len, grow);
    if (!why_not.empty()) break;
  }
  const int64_t forks = fit > 0 ? batches[fit - 1] : 0;
  const Clock::time_point f0 = Clock::now();
  st = ForkSource(e, builder, forks);
  const double fork_seconds = Since(f0);
  Log(absl::StrFormat("  context %d: prefill %.1f s, %d forks %.1f s", context, prefill_seconds,
                      forks, fork_seconds));
  if (!st.ok()) {
    for (int64_t i = 1; i <= forks; ++i) builder.Free(i);
    return skip_all(0, absl::StrCat("fork failed: ", st.ToString()));
  }
  for (size_t i = 0; i < fit; ++i) {
    if (OverBudget()) return skip_all(i, "time budget spent");
    DecodeCell c = RunDecode(e, builder, s, p, batches[i], context, hbm);
    c.fork_seconds = fork_seconds;
    r->decode.push_back(c);
    WriteJson(*results);
  }
  if (fit < batches.size()) skip_all(fit, why_not);
}

absl::StatusOr<std::vector<int64_t>> ParseList(const std::string& text) {
  std::vector<int64_t> v;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t x = 0;
    if (!absl::SimpleAtoi(part, &x) || x <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("not a positive integer list: ", text));
    }
    v.push_back(x);
  }
  std::sort(v.begin(), v.end());
  return v;
}

void RunModel(const ModelShape& s, const std::vector<int64_t>& batches,
              const std::vector<int64_t>& contexts, Results* results) {
  ModelResult r;
  r.name = s.name;
  const ParamCounts p = CountParams(s);
  Log(absl::StrFormat("%s: %.1fM parameters (linear %.1fM, embedding %.1fM, LM head %.1fM)",
                      s.name, (p.linear + p.other + p.embedding + p.lm_head) * 1e-6,
                      p.linear * 1e-6, p.embedding * 1e-6, p.lm_head * 1e-6));
  std::error_code ec;
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("hs_gpu_bench_", s.name);
  std::filesystem::create_directories(dir, ec);
  std::ofstream(dir / "config.json") << ConfigJson(s);

  const int warmup_and_steps = 2 + std::max(3, absl::GetFlag(FLAGS_decode_steps));
  EngineOptions o;
  o.model_dir = dir;
  o.device = OnCpu() ? "cpu" : "cuda";
  o.dtype = OnCpu() ? "f32" : "bf16";
  // CPU only (the GPU budget comes from gpu_memory_fraction).
  o.kv_cache_bytes = absl::GetFlag(FLAGS_tiny) ? uint64_t{64} << 20 : uint64_t{16} << 30;
  o.gpu_memory_fraction = absl::GetFlag(FLAGS_gpu_memory_fraction);
  o.random_weights_seed = 1234;
  o.block_tokens = 16;
  o.max_num_tokens = std::max<int64_t>(absl::GetFlag(FLAGS_prefill_tokens), 8192);
  o.max_num_seqs = batches.back() + 1;
  o.max_model_len = std::min<int64_t>(s.max_position,
                                      std::max<int64_t>(contexts.back(),
                                                        absl::GetFlag(FLAGS_prefill_tokens)) +
                                          warmup_and_steps + 16);
  o.log = [](const std::string& line) { Log("  [engine] " + line); };
  const Clock::time_point c0 = Clock::now();
  auto created = Engine::Create(o);
  r.create_seconds = Since(c0);
  if (!created.ok()) {
    r.error = created.status().ToString();
    Log(absl::StrCat("  engine: ", r.error));
    results->models.push_back(r);
    WriteJson(*results);
    return;
  }
  std::unique_ptr<Engine> e = *std::move(created);
  const engine::MemoryPlan& m = e->memory_plan();
  r.weight_bytes = m.weight_bytes;
  r.kv_bytes_per_token = m.kv_bytes_per_token;
  r.state_bytes_per_seq = m.state_bytes_per_slot;
  r.num_blocks = m.num_blocks;
  r.num_state_slots = m.num_state_slots;
  Log(absl::StrFormat("  engine ready in %.1f s: %s", r.create_seconds, m.ToString()));

  RunPrefill(*e, s, p, results->gemm_flops_per_second, &r);
  results->models.push_back(r);
  WriteJson(*results);

  for (int64_t context : contexts) {
    RunContext(*e, s, p, batches, context, o.max_num_tokens, warmup_and_steps,
               results->hbm_bytes_per_second, &results->models.back(), results);
  }
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage("GPU decode / prefill benchmark (see tests/gpu/gpu_bench.cc)");
  absl::ParseCommandLine(argc, argv);
  Results results;
  std::string why = "this build has no CUDA backend (HS_HAVE_CUDA undefined)";
  bool available = OnCpu();
#if defined(HS_HAVE_CUDA)
  if (!available) available = engine::CudaDeviceAvailable(&why);
#endif
  if (!available) {
    results.skipped = absl::StrCat("no CUDA device (", why, ")");
    Log("SKIPPED: " + results.skipped);
    WriteJson(results);
    return 0;
  }
  if (OnCpu()) results.device = "cpu (smoke run: f32, host memcpy and CPU GEMM ceilings)";
#if defined(HS_HAVE_CUDA)
  auto info = OnCpu() ? absl::StatusOr<engine::CudaDeviceInfo>(absl::UnavailableError("cpu"))
                      : engine::QueryCudaDevice(0);
  if (!OnCpu())
  results.device = info.ok() ? absl::StrFormat("%s (sm_%d, %.1f GiB)", info->name,
                                               info->compute_capability,
                                               info->total_bytes / double(1 << 30))
                             : "unknown";
#endif
  Log("device: " + results.device);
  auto hbm = MeasureHbmBandwidth();
  auto gemm = MeasureGemmRate();
  if (!hbm.ok() || !gemm.ok()) {
    Log(absl::StrCat("ceiling measurement failed: ", hbm.status().ToString(), " / ",
                     gemm.status().ToString()));
    results.skipped = "ceiling measurement failed";
    WriteJson(results);
    return 1;
  }
  results.hbm_bytes_per_second = *hbm;
  results.gemm_flops_per_second = *gemm;
  Log(absl::StrFormat("measured ceilings: %s %.0f GB/s (%s, read + write), %s GEMM %.2f TFLOP/s "
                      "(%s through Backend::Gemm)",
                      OnCpu() ? "host memory" : "HBM", *hbm * 1e-9,
                      absl::StrFormat("%d MiB %s", CeilingCopyBytes() >> 20,
                                      OnCpu() ? "memcpy" : "device copy"),
                      OnCpu() ? "f32" : "bf16", *gemm * 1e-12,
                      absl::StrFormat("%d^3", CeilingGemmSize())));
  WriteJson(results);

  auto batches = ParseList(absl::GetFlag(FLAGS_batches));
  auto contexts = ParseList(absl::GetFlag(FLAGS_contexts));
  if (!batches.ok() || !contexts.ok()) {
    Log("bad --batches or --contexts");
    return 2;
  }
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_models), ',', absl::SkipEmpty())) {
    if (name == "bamba") {
      RunModel(absl::GetFlag(FLAGS_tiny) ? Tiny(Bamba9B()) : Bamba9B(), *batches, *contexts,
               &results);
    } else if (name == "llama") {
      RunModel(absl::GetFlag(FLAGS_tiny) ? Tiny(Llama3_8B()) : Llama3_8B(), *batches, *contexts,
               &results);
    } else {
      Log(absl::StrCat("unknown model ", name));
      return 2;
    }
  }
  WriteJson(results);
  Log(absl::StrFormat("done in %.1f s", Since(kStart)));
  return 0;
}

}  // namespace
}  // namespace hybridserve

int main(int argc, char** argv) { return hybridserve::Main(argc, argv); }
