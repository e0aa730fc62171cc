#include "engine/runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/checkpoint.h"
#include "engine/model/llama.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

double MiB(uint64_t bytes) { return bytes / 1048576.0; }

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const EngineOptions& o) {
  if (o.device == "cpu" || o.device == "auto") {
    return std::unique_ptr<Backend>(new CpuBackend({.num_threads = o.num_threads}));
  }
  if (o.device == "cuda") {
    return absl::UnimplementedError(
        "--device cuda: this build has no CUDA backend yet; use --device cpu");
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--device must be auto, cpu or cuda, got '", o.device, "'"));
}

absl::StatusOr<DType> WeightPrecision(const std::string& dtype) {
  if (dtype == "auto") return DType::kF32;  // values as stored
  auto parsed = ParseFloatDType(dtype);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dtype must be auto, f32, bf16 or f16, got '", dtype, "'"));
  }
  return *parsed;
}

}  // namespace

std::string MemoryPlan::ToString() const {
  return absl::StrFormat(
      "memory plan: weights %.1f MiB, workspace %.1f MiB, KV cache %.1f MiB = "
      "%d blocks x %d tokens (%.1f KiB per token)",
      MiB(weight_bytes), MiB(workspace_bytes), MiB(kv_cache_bytes), num_blocks,
      block_tokens, kv_bytes_per_token / 1024.0);
}

Engine::~Engine() = default;

std::string Engine::device_name() const { return std::string(backend_->name()); }

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  auto log = [&](const std::string& line) {
    if (options.log) options.log(line);
  };
  std::unique_ptr<Engine> e(new Engine());
  HS_ASSIGN_OR_RETURN(e->config_, LoadModelConfig(options.model_dir));
  HS_ASSIGN_OR_RETURN(e->generation_config_, LoadGenerationConfig(options.model_dir));
  HS_ASSIGN_OR_RETURN(DType precision, WeightPrecision(options.dtype));
  if (options.block_tokens <= 0 || options.max_num_tokens <= 0 ||
      options.max_num_seqs <= 0 || options.logits_slice_rows <= 0) {
    return absl::InvalidArgumentError(
        "--block-tokens, --max-batched-tokens and --max-num-seqs must be > 0");
  }
  HS_ASSIGN_OR_RETURN(e->backend_, MakeBackend(options));
  log(absl::StrCat("model ", options.model_dir.string(), ": ",
                   e->config_.architecture, ", ", e->config_.num_layers,
                   " layers, hidden ", e->config_.hidden_size, ", vocab ",
                   e->config_.vocab_size, "; device ", std::string(e->backend_->name()),
                   ", weights ", options.dtype));
  HS_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint,
                      Checkpoint::Open(options.model_dir));
  e->logits_slice_rows_ = std::min(options.logits_slice_rows, options.max_num_tokens);
  ModelLoadOptions load;
  load.weight_precision = precision;
  load.max_num_tokens = options.max_num_tokens;
  load.max_logits_rows = e->logits_slice_rows_;
  load.progress = options.log;
  if (e->config_.architecture != "LlamaForCausalLM") {
    return absl::UnimplementedError(absl::StrCat(
        "architecture ", e->config_.architecture, " has no model graph yet"));
  }
  HS_ASSIGN_OR_RETURN(e->model_, LlamaModel::Load(e->config_, *checkpoint,
                                                  e->backend_.get(), load));
  HS_RETURN_IF_ERROR(e->PlanMemory(options));
  log(e->plan_.ToString());
  return e;
}

absl::Status Engine::PlanMemory(const EngineOptions& o) {
  const ModelConfig& c = config_;
  const int64_t max_len = o.max_model_len > 0 ? o.max_model_len : c.max_position_embeddings;
  if (max_len <= 0) {
    return absl::InvalidArgumentError("--max-model-len must be set: config.json has no max_position_embeddings");
  }
  if (c.max_position_embeddings > 0 && max_len > c.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-model-len ", max_len, " exceeds the model's max_position_embeddings ",
        c.max_position_embeddings));
  }
  const size_t es = DTypeSize(backend_->act_dtype());
  plan_.block_tokens = o.block_tokens;
  plan_.kv_bytes_per_token = model_->num_kv_layers() * 2 * c.num_kv_heads * c.head_dim * es;
  plan_.kv_bytes_per_block = plan_.kv_bytes_per_token * o.block_tokens;
  plan_.num_blocks = plan_.kv_bytes_per_block == 0
                         ? 0
                         : static_cast<int64_t>(o.kv_cache_bytes / plan_.kv_bytes_per_block);
  plan_.kv_cache_bytes = plan_.num_blocks * plan_.kv_bytes_per_block;
  max_blocks_per_seq_ = (max_len + o.block_tokens - 1) / o.block_tokens;
  if (plan_.kv_bytes_per_block > 0 && plan_.num_blocks < max_blocks_per_seq_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--kv-cache-bytes %d holds %d blocks of %d tokens (%d bytes each), but one "
        "sequence of --max-model-len %d needs %d blocks: raise --kv-cache-bytes to "
        "at least %d or lower --max-model-len",
        o.kv_cache_bytes, plan_.num_blocks, o.block_tokens, plan_.kv_bytes_per_block,
        max_len, max_blocks_per_seq_, max_blocks_per_seq_ * plan_.kv_bytes_per_block));
  }
  max_num_seqs_ = o.max_num_seqs;
  limits_ = {.vocab_size = c.vocab_size,
             .block_tokens = o.block_tokens,
             .num_blocks = plan_.num_blocks,
             .max_num_tokens = o.max_num_tokens,
             .max_context_len = max_len};

  // KV cache: one allocation; per layer K then V, each
  // [num_blocks, block_tokens, num_kv_heads, head_dim].
  if (plan_.kv_cache_bytes > 0) {
    HS_ASSIGN_OR_RETURN(kv_buffer_, backend_->Allocate(plan_.kv_cache_bytes, "kv_cache"));
    const uint64_t per_tensor = plan_.kv_cache_bytes / (2 * model_->num_kv_layers());
    char* base = static_cast<char*>(kv_buffer_.data());
    const DType act = backend_->act_dtype();
    for (int64_t l = 0; l < model_->num_kv_layers(); ++l) {
      KvLayerCache layer;
      layer.k = Tensor(base + (2 * l) * per_tensor, act,
                       {plan_.num_blocks, o.block_tokens, c.num_kv_heads, c.head_dim});
      layer.v = Tensor(base + (2 * l + 1) * per_tensor, act,
                       {plan_.num_blocks, o.block_tokens, c.num_kv_heads, c.head_dim});
      kv_.push_back(layer);
    }
  }
  const int64_t meta_ints = 3 * o.max_num_tokens + 2 * max_num_seqs_ + 1 +
                            max_num_seqs_ * max_blocks_per_seq_ + logits_slice_rows_;
  HS_ASSIGN_OR_RETURN(meta_buffer_, backend_->Allocate(meta_ints * sizeof(int32_t), "workspace"));
  HS_ASSIGN_OR_RETURN(logits_buffer_,
                      backend_->Allocate(logits_slice_rows_ * c.vocab_size * es, "workspace"));
  plan_.weight_bytes = model_->weight_bytes();
  plan_.workspace_bytes = model_->workspace_bytes() + meta_buffer_.num_bytes() +
                          logits_buffer_.num_bytes();
  return absl::OkStatus();
}

absl::Status Engine::UploadMetadata(const StepPlan& plan, ForwardInputs* in) {
  const int64_t t = plan.num_tokens(), s = plan.num_seqs();
  const int64_t bt = plan_.block_tokens;
  int64_t max_ctx = 0;
  for (int32_t c : plan.context_len) max_ctx = std::max<int64_t>(max_ctx, c);
  // Block table columns: just enough for the longest context in this step.
  const int64_t width = std::max<int64_t>(1, (max_ctx + bt - 1) / bt);

  host_meta_.assign(3 * t + 2 * s + 1 + s * width, 0);
  int32_t* ids = host_meta_.data();
  int32_t* pos = ids + t;
  int32_t* slots = pos + t;
  int32_t* qs = slots + t;
  int32_t* ctx = qs + s + 1;
  int32_t* table = ctx + s;
  std::copy(plan.token_ids.begin(), plan.token_ids.end(), ids);
  std::copy(plan.positions.begin(), plan.positions.end(), pos);
  std::copy(plan.query_start.begin(), plan.query_start.end(), qs);
  std::copy(plan.context_len.begin(), plan.context_len.end(), ctx);
  const bool has_kv = plan_.num_blocks > 0;
  for (int64_t q = 0; q < s; ++q) {
    const int64_t needed = (plan.context_len[q] + bt - 1) / bt;
    for (int64_t b = 0; b < width; ++b) {
      table[q * width + b] =
          has_kv && b < needed ? plan.block_table[q * plan.block_table_width + b] : 0;
    }
    for (int32_t i = plan.query_start[q]; i < plan.query_start[q + 1]; ++i) {
      slots[i] = has_kv ? table[q * width + pos[i] / bt] * bt + pos[i] % bt : 0;
    }
  }
  HS_RETURN_IF_ERROR(backend_->CopyToDevice(host_meta_.data(), meta_buffer_.data(),
                                            host_meta_.size() * sizeof(int32_t)));
  int32_t* dev = static_cast<int32_t*>(meta_buffer_.data());
  in->token_ids = Tensor(dev, DType::kI32, {t});
  in->positions = Tensor(dev + t, DType::kI32, {t});
  in->slot_mapping = Tensor(dev + 2 * t, DType::kI32, {t});
  in->attention.query_start = Tensor(dev + 3 * t, DType::kI32, {s + 1});
  in->attention.context_len = Tensor(dev + 3 * t + s + 1, DType::kI32, {s});
  in->attention.block_table = Tensor(dev + 3 * t + 2 * s + 1, DType::kI32, {s, width});
  in->attention.num_seqs = s;
  in->attention.max_context_len = max_ctx;
  return absl::OkStatus();
}

absl::Status Engine::Step(const StepPlan& plan, StepOutput* out) {
  HS_RETURN_IF_ERROR(ValidateStepPlan(plan, limits_));
  if (plan.num_seqs() > max_num_seqs_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid StepPlan: ", plan.num_seqs(), " sequences exceed --max-num-seqs ",
        max_num_seqs_));
  }
  const auto start = std::chrono::steady_clock::now();
  ForwardInputs inputs;
  HS_RETURN_IF_ERROR(UploadMetadata(plan, &inputs));
  HS_RETURN_IF_ERROR(model_->Forward(inputs, kv_));

  const int64_t vocab = config_.vocab_size;
  const int64_t rows = static_cast<int64_t>(plan.logits_indices.size());
  out->vocab_size = vocab;
  out->logits.resize(rows * vocab);
  // The logits-rows region sits at the end of the metadata buffer.
  int32_t* dev_rows = static_cast<int32_t*>(meta_buffer_.data()) +
                      (meta_buffer_.num_bytes() / sizeof(int32_t) - logits_slice_rows_);
  const DType act = backend_->act_dtype();
  for (int64_t first = 0; first < rows; first += logits_slice_rows_) {
    const int64_t n = std::min(logits_slice_rows_, rows - first);
    HS_RETURN_IF_ERROR(backend_->CopyToDevice(plan.logits_indices.data() + first,
                                              dev_rows, n * sizeof(int32_t)));
    Tensor logits(logits_buffer_.data(), act, {n, vocab});
    HS_RETURN_IF_ERROR(
        model_->ComputeLogits(Tensor(dev_rows, DType::kI32, {n}), logits));
    float* dst = out->logits.data() + first * vocab;
    if (act == DType::kF32) {
      HS_RETURN_IF_ERROR(backend_->CopyToHost(logits.data, dst, logits.num_bytes()));
    } else {
      host_logits_.resize(logits.num_bytes() / sizeof(float) + 1);
      HS_RETURN_IF_ERROR(backend_->CopyToHost(logits.data, host_logits_.data(), logits.num_bytes()));
      ConvertFloats(host_logits_.data(), act, dst, DType::kF32, n * vocab);
    }
  }
  HS_RETURN_IF_ERROR(backend_->Synchronize());
  out->forward_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return absl::OkStatus();
}

}  // namespace hybridserve::engine
