#include "engine/runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cuda/cuda_backend.h"
#include "engine/checkpoint.h"
#include "engine/model/model_factory.h"
#include "engine/model/weight_loader.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

double MiB(uint64_t bytes) { return bytes / 1048576.0; }

// GPU memory left outside the plan's pools: cuBLAS workspaces and the op
// scratch the attention / SSM kernels size in the warm-up step.
constexpr uint64_t kGpuMarginBytes = uint64_t{512} << 20;

// The --dtype value: auto (nullopt) or a float dtype.
absl::StatusOr<std::optional<DType>> ParseDtypeFlag(const std::string& dtype) {
  if (dtype == "auto") return std::optional<DType>();
  auto parsed = ParseFloatDType(dtype);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dtype must be auto, f32, bf16 or f16, got '", dtype, "'"));
  }
  return std::optional<DType>(*parsed);
}

// --device auto: the GPU when one is usable, else the CPU; cuda: the GPU or
// FailedPrecondition with the reason. On the GPU, --dtype auto is bf16.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(
    const EngineOptions& o, std::optional<DType> dtype,
    const std::function<void(const std::string&)>& log) {
  auto cpu = [&] {
    return std::unique_ptr<Backend>(new CpuBackend({.num_threads = o.num_threads}));
  };
  auto cuda = [&]() -> absl::StatusOr<std::unique_ptr<Backend>> {
    return CreateCudaBackend({.device = 0, .act_dtype = dtype.value_or(DType::kBF16)});
  };
  if (o.device == "cpu") return cpu();
  if (o.device == "cuda") return cuda();
  if (o.device == "auto") {
    std::string why;
    if (CudaDeviceAvailable(&why)) {
      log(absl::StrCat("--device auto: using the GPU (", why, ")"));
      return cuda();
    }
    log(absl::StrCat("--device auto: using the CPU (", why, ")"));
    return cpu();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--device must be auto, cpu or cuda, got '", o.device, "'"));
}

}  // namespace

uint64_t GpuCacheBudget(uint64_t total_bytes, uint64_t free_bytes, double fraction,
                        uint64_t reserved_bytes) {
  const double target = fraction * static_cast<double>(total_bytes);
  const double used = static_cast<double>(total_bytes - std::min(free_bytes, total_bytes));
  const double budget = target - used - static_cast<double>(reserved_bytes);
  return budget > 0 ? static_cast<uint64_t>(budget) : 0;
}

std::string MemoryPlan::ToString() const {
  return absl::StrFormat(
      "memory plan: weights %.1f MiB, workspace %.1f MiB, KV cache %.1f MiB = "
      "%d blocks x %d tokens (%.1f KiB per token), SSM state %.1f MiB = %d slots "
      "x %.1f KiB per sequence",
      MiB(weight_bytes), MiB(workspace_bytes), MiB(kv_cache_bytes), num_blocks,
      block_tokens, kv_bytes_per_token / 1024.0, MiB(state_cache_bytes),
      num_state_slots, state_bytes_per_slot / 1024.0);
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
  HS_ASSIGN_OR_RETURN(std::optional<DType> dtype, ParseDtypeFlag(options.dtype));
  if (options.block_tokens <= 0 || options.max_num_tokens <= 0 ||
      options.max_num_seqs <= 0 || options.logits_slice_rows <= 0) {
    return absl::InvalidArgumentError(
        "--block-tokens, --max-batched-tokens and --max-num-seqs must be > 0");
  }
  HS_ASSIGN_OR_RETURN(e->backend_, MakeBackend(options, dtype, log));
  // CPU: ops compute in f32 and --dtype rounds the weights (auto: as stored).
  // GPU: weights are stored in the act dtype, which rounds them once.
  const bool on_cpu = e->backend_->name() == "cpu";
  const DType precision = on_cpu ? dtype.value_or(DType::kF32) : DType::kF32;
  log(absl::StrCat("model ", options.model_dir.string(), ": ",
                   e->config_.architecture, ", ", e->config_.num_layers,
                   " layers, hidden ", e->config_.hidden_size, ", vocab ",
                   e->config_.vocab_size, "; device ", std::string(e->backend_->name()),
                   ", activations ", std::string(DTypeName(e->backend_->act_dtype())),
                   ", weights ", options.dtype,
                   options.random_weights_seed.has_value()
                       ? absl::StrCat(" (random, seed ", *options.random_weights_seed, ")")
                       : std::string()));
  std::unique_ptr<Checkpoint> checkpoint;
  if (options.random_weights_seed.has_value()) {
    checkpoint = Checkpoint::Empty(options.model_dir);
  } else {
    HS_ASSIGN_OR_RETURN(checkpoint, Checkpoint::Open(options.model_dir));
  }
  e->logits_slice_rows_ = std::min(options.logits_slice_rows, options.max_num_tokens);
  ModelLoadOptions load;
  load.weight_precision = precision;
  load.max_num_tokens = options.max_num_tokens;
  load.max_logits_rows = e->logits_slice_rows_;
  load.progress = options.log;
  load.random_weights_seed = options.random_weights_seed;
  HS_ASSIGN_OR_RETURN(e->model_,
                      LoadModel(e->config_, *checkpoint, e->backend_.get(), load));
  HS_RETURN_IF_ERROR(e->PlanMemory(options, log));
  log(e->plan_.ToString());
  return e;
}

void Engine::FinishWarmup() { FreezeCudaScratch(backend_.get()); }

absl::Status Engine::PlanMemory(const EngineOptions& o,
                                const std::function<void(const std::string&)>& log) {
  const ModelConfig& c = config_;
  const bool has_kv = model_->num_kv_layers() > 0;
  int64_t max_len = o.max_model_len > 0 ? o.max_model_len : c.max_position_embeddings;
  if (max_len <= 0 && !has_kv) max_len = kDefaultSsmMaxModelLen;
  if (max_len <= 0) {
    return absl::InvalidArgumentError("--max-model-len must be set: config.json has no max_position_embeddings");
  }
  if (c.sliding_window > 0 && max_len > c.sliding_window) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-model-len ", max_len, " exceeds the model's sliding_window ", c.sliding_window,
        " (config.json): sliding-window attention is not implemented; pass --max-model-len ",
        c.sliding_window, " or less (within the window it equals full attention)"));
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
  max_blocks_per_seq_ = has_kv ? (max_len + o.block_tokens - 1) / o.block_tokens : 1;
  max_num_seqs_ = o.max_num_seqs;
  // Step metadata and one logits slice, allocated after the caches.
  const int64_t meta_ints = 3 * o.max_num_tokens + 4 * max_num_seqs_ + 1 +
                            max_num_seqs_ * max_blocks_per_seq_ + logits_slice_rows_;
  const uint64_t meta_bytes = meta_ints * sizeof(int32_t);
  const uint64_t logits_bytes = logits_slice_rows_ * c.vocab_size * es;

  // The budget for KV blocks and state slots. CPU: --kv-cache-bytes. GPU:
  // --gpu-memory-fraction of the device, less what is already in use (the
  // weights, the model's workspace, the CUDA context), the metadata and
  // logits buffers and a margin (kGpuMarginBytes).
  uint64_t budget = o.kv_cache_bytes;
  std::string budget_flag = "--kv-cache-bytes";
  if (backend_->name() == "cuda") {
    HS_ASSIGN_OR_RETURN(CudaDeviceInfo info, QueryCudaDevice(0));
    const uint64_t used = info.total_bytes - std::min(info.free_bytes, info.total_bytes);
    const uint64_t reserved = meta_bytes + logits_bytes + kGpuMarginBytes;
    budget = GpuCacheBudget(info.total_bytes, info.free_bytes, o.gpu_memory_fraction, reserved);
    log(absl::StrFormat(
        "GPU %s (sm_%d): %.1f MiB total, %.1f MiB in use after loading; "
        "--gpu-memory-fraction %.3f leaves %.1f MiB for the caches after %.1f MiB of "
        "metadata, logits and margin",
        info.name, info.compute_capability, MiB(info.total_bytes), MiB(used),
        o.gpu_memory_fraction, MiB(budget), MiB(reserved)));
    budget_flag = absl::StrFormat(
        "the GPU budget (--gpu-memory-fraction %.3f of %d bytes, less %d bytes in use "
        "and %d reserved)",
        o.gpu_memory_fraction, info.total_bytes, used, reserved);
  }
  // KV reserve: one sequence of max_model_len must always fit.
  const uint64_t kv_reserve = has_kv ? max_blocks_per_seq_ * plan_.kv_bytes_per_block : 0;

  // State slots first (at most one per running sequence), then KV blocks.
  plan_.state_bytes_per_slot = c.state_bytes_per_seq();
  if (plan_.state_bytes_per_slot > 0) {
    const uint64_t after_reserve = budget > kv_reserve ? budget - kv_reserve : 0;
    plan_.num_state_slots = std::min<int64_t>(
        o.max_num_seqs, static_cast<int64_t>(after_reserve / plan_.state_bytes_per_slot));
    if (plan_.num_state_slots < 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s %d cannot hold one SSM state slot of %d bytes%s: raise "
          "it to at least %d%s",
          budget_flag, budget, plan_.state_bytes_per_slot,
          has_kv ? absl::StrFormat(" after a KV reserve of %d bytes (one sequence of "
                                   "--max-model-len %d)",
                                   kv_reserve, max_len)
                 : "",
          kv_reserve + plan_.state_bytes_per_slot, has_kv ? " or lower --max-model-len" : ""));
    }
  }
  plan_.state_cache_bytes = plan_.num_state_slots * plan_.state_bytes_per_slot;
  const uint64_t kv_budget = budget - plan_.state_cache_bytes;
  plan_.num_blocks = has_kv ? static_cast<int64_t>(kv_budget / plan_.kv_bytes_per_block) : 0;
  plan_.kv_cache_bytes = plan_.num_blocks * plan_.kv_bytes_per_block;
  if (has_kv && plan_.num_blocks < max_blocks_per_seq_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s %d holds %d blocks of %d tokens (%d bytes each), but one "
        "sequence of --max-model-len %d needs %d blocks: raise it to "
        "at least %d or lower --max-model-len",
        budget_flag, budget, plan_.num_blocks, o.block_tokens, plan_.kv_bytes_per_block,
        max_len, max_blocks_per_seq_, max_blocks_per_seq_ * plan_.kv_bytes_per_block));
  }
  limits_ = {.vocab_size = c.vocab_size,
             .block_tokens = o.block_tokens,
             .num_blocks = plan_.num_blocks,
             .max_num_tokens = o.max_num_tokens,
             .max_context_len = max_len,
             .num_state_slots = plan_.num_state_slots};

  const DType act = backend_->act_dtype();
  // KV cache: one allocation; per attention layer K then V, each
  // [num_blocks, block_tokens, num_kv_heads, head_dim].
  if (plan_.kv_cache_bytes > 0) {
    HS_ASSIGN_OR_RETURN(kv_buffer_, backend_->Allocate(plan_.kv_cache_bytes, "kv_cache"));
    const uint64_t per_tensor = plan_.kv_cache_bytes / (2 * model_->num_kv_layers());
    char* base = static_cast<char*>(kv_buffer_.data());
    for (int64_t l = 0; l < model_->num_kv_layers(); ++l) {
      KvLayerCache layer;
      layer.k = Tensor(base + (2 * l) * per_tensor, act,
                       {plan_.num_blocks, o.block_tokens, c.num_kv_heads, c.head_dim});
      layer.v = Tensor(base + (2 * l + 1) * per_tensor, act,
                       {plan_.num_blocks, o.block_tokens, c.num_kv_heads, c.head_dim});
      caches_.kv.push_back(layer);
    }
  }
  // SSM state: one allocation, f32; per SSM layer (in layer order) the conv
  // windows [num_slots, conv_channels, d_conv - 1] then the SSM states
  // ([num_slots, num_heads, head_dim, d_state] for Mamba-2, [num_slots,
  // d_inner, d_state] for Mamba-1). Zeroed once; fresh sequences are started
  // from zeros by the ops (SsmBatch::has_initial_state), not by clearing.
  if (plan_.state_cache_bytes > 0) {
    HS_ASSIGN_OR_RETURN(state_buffer_,
                        backend_->Allocate(plan_.state_cache_bytes, "ssm_state"));
    char* base = static_cast<char*>(state_buffer_.data());
    const int64_t slots = plan_.num_state_slots;
    const SsmConfig& m = c.ssm;
    for (LayerKind kind : c.layer_kinds) {
      if (kind == LayerKind::kAttention) continue;
      SsmLayerState layer;
      layer.conv = Tensor(base, DType::kF32, {slots, m.conv_channels(kind), m.d_conv - 1});
      base += slots * m.conv_state_bytes(kind);
      layer.ssm = kind == LayerKind::kMamba2
                      ? Tensor(base, DType::kF32, {slots, m.num_heads, m.head_dim, m.d_state})
                      : Tensor(base, DType::kF32, {slots, m.d_inner, m.d_state});
      base += slots * m.ssm_state_bytes(kind);
      caches_.ssm.push_back(layer);
    }
    HS_RETURN_IF_ERROR(backend_->Zero(
        Tensor(state_buffer_.data(), DType::kF32,
               {static_cast<int64_t>(plan_.state_cache_bytes / sizeof(float))})));
  }
  HS_ASSIGN_OR_RETURN(meta_buffer_, backend_->Allocate(meta_bytes, "workspace"));
  HS_ASSIGN_OR_RETURN(logits_buffer_, backend_->Allocate(logits_bytes, "workspace"));
  plan_.weight_bytes = model_->weight_bytes();
  plan_.workspace_bytes = model_->workspace_bytes() + meta_buffer_.num_bytes() +
                          logits_buffer_.num_bytes();
  return absl::OkStatus();
}

absl::Status Engine::UploadMetadata(const StepPlan& plan, ForwardInputs* in) {
  const int64_t t = plan.num_tokens(), s = plan.num_seqs();
  const int64_t bt = plan_.block_tokens;
  int64_t max_ctx = 0, max_query = 0;
  for (int32_t c : plan.context_len) max_ctx = std::max<int64_t>(max_ctx, c);
  for (int64_t q = 0; q < s; ++q) {
    max_query = std::max<int64_t>(max_query, plan.query_start[q + 1] - plan.query_start[q]);
  }
  const bool has_kv = plan_.num_blocks > 0;
  // Block table columns: just enough for the longest context in this step.
  const int64_t width = has_kv ? std::max<int64_t>(1, (max_ctx + bt - 1) / bt) : 1;

  host_meta_.assign(3 * t + 4 * s + 1 + s * width, 0);
  int32_t* ids = host_meta_.data();
  int32_t* pos = ids + t;
  int32_t* slots = pos + t;
  int32_t* qs = slots + t;
  int32_t* ctx = qs + s + 1;
  int32_t* table = ctx + s;
  int32_t* state_slot = table + s * width;
  int32_t* has_initial = state_slot + s;
  std::copy(plan.token_ids.begin(), plan.token_ids.end(), ids);
  std::copy(plan.positions.begin(), plan.positions.end(), pos);
  std::copy(plan.query_start.begin(), plan.query_start.end(), qs);
  std::copy(plan.context_len.begin(), plan.context_len.end(), ctx);
  const bool has_state = plan_.num_state_slots > 0;
  for (int64_t q = 0; q < s; ++q) {
    state_slot[q] = has_state ? plan.state_slot[q] : 0;
    has_initial[q] = has_state && plan.state_is_fresh[q] == 0 ? 1 : 0;
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
  in->attention.max_query_len = max_query;
  const int64_t state_at = 3 * t + 2 * s + 1 + s * width;
  in->ssm.query_start = in->attention.query_start;
  in->ssm.state_slot = Tensor(dev + state_at, DType::kI32, {s});
  in->ssm.has_initial_state = Tensor(dev + state_at + s, DType::kI32, {s});
  in->ssm.num_seqs = s;
  in->ssm.max_query_len = max_query;
  return absl::OkStatus();
}

absl::Status Engine::CopyKvBlocks(absl::Span<const int32_t> src_blocks,
                                  absl::Span<const int32_t> dst_blocks) {
  if (src_blocks.size() != dst_blocks.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CopyKvBlocks: ", src_blocks.size(), " source blocks but ",
        dst_blocks.size(), " destination blocks"));
  }
  for (absl::Span<const int32_t> ids : {src_blocks, dst_blocks}) {
    for (int32_t b : ids) {
      if (b < 0 || b >= plan_.num_blocks) {
        return absl::InvalidArgumentError(absl::StrCat(
            "CopyKvBlocks: block ", b, " outside [0, ", plan_.num_blocks, ")"));
      }
    }
  }
  for (const KvLayerCache& layer : caches_.kv) {
    for (const Tensor* t : {&layer.k, &layer.v}) {
      const size_t block_bytes = t->num_bytes() / static_cast<size_t>(plan_.num_blocks);
      char* base = static_cast<char*>(t->data);
      for (size_t i = 0; i < src_blocks.size(); ++i) {
        if (src_blocks[i] == dst_blocks[i]) continue;
        HS_RETURN_IF_ERROR(backend_->CopyOnDevice(base + src_blocks[i] * block_bytes,
                                                  base + dst_blocks[i] * block_bytes,
                                                  block_bytes));
      }
    }
  }
  return backend_->Synchronize();
}

absl::Status Engine::CopyStateSlot(int32_t src_slot, int32_t dst_slot) {
  for (int32_t s : {src_slot, dst_slot}) {
    if (s < 0 || s >= plan_.num_state_slots) {
      return absl::InvalidArgumentError(absl::StrCat(
          "CopyStateSlot: slot ", s, " outside [0, ", plan_.num_state_slots, ")"));
    }
  }
  if (src_slot == dst_slot) return absl::OkStatus();
  for (const SsmLayerState& layer : caches_.ssm) {
    for (const Tensor* t : {&layer.conv, &layer.ssm}) {
      const size_t slot_bytes = t->num_bytes() / static_cast<size_t>(plan_.num_state_slots);
      char* base = static_cast<char*>(t->data);
      HS_RETURN_IF_ERROR(backend_->CopyOnDevice(base + src_slot * slot_bytes,
                                                base + dst_slot * slot_bytes, slot_bytes));
    }
  }
  return backend_->Synchronize();
}

absl::Status Engine::Step(const StepPlan& plan, StepOutput* out) {
  HS_RETURN_IF_ERROR(ValidateStepPlan(plan, limits_, &plan_check_));
  if (plan.num_seqs() > max_num_seqs_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid StepPlan: ", plan.num_seqs(), " sequences exceed --max-num-seqs ",
        max_num_seqs_));
  }
  const auto start = std::chrono::steady_clock::now();
  ForwardInputs inputs;
  HS_RETURN_IF_ERROR(UploadMetadata(plan, &inputs));
  HS_RETURN_IF_ERROR(model_->Forward(inputs, caches_));

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
