// Engine: a loaded model on a backend, with its KV cache, SSM state slots and
// step workspace planned once at start-up, running one StepPlan per call.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_RUNTIME_ENGINE_H_
#define HYBRIDSERVE_ENGINE_RUNTIME_ENGINE_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/backend/backend.h"
#include "engine/generation_config.h"
#include "engine/model/model.h"
#include "engine/model_config.h"
#include "engine/runtime/step_engine.h"
#include "engine/runtime/step_plan.h"

namespace hybridserve::engine {

struct EngineOptions {
  std::filesystem::path model_dir;
  // auto: the GPU when the build has CUDA and a device is usable, else the
  // CPU (the choice and the reason are logged); cuda: FailedPrecondition,
  // naming the reason, when no GPU is usable.
  std::string device = "auto";  // auto | cpu | cuda
  // auto | f32 | bf16 | f16. On the CPU backend every op computes in f32;
  // bf16 / f16 round the weights to that precision (auto: as stored). On the
  // GPU it is the act dtype of weights, activations and the KV cache (auto:
  // bf16; f32 for parity runs).
  std::string dtype = "auto";
  int num_threads = 0;  // CPU threads; 0 = all cores
  // Budget for the KV cache and the SSM state slots together (DESIGN.md 2.1),
  // on the CPU backend.
  uint64_t kv_cache_bytes = 256ull << 20;
  // CUDA backend: the budget is this fraction of the GPU's memory, less the
  // weights and the workspace (kv_cache_bytes is ignored there).
  double gpu_memory_fraction = 0.9;
  // When set, no safetensors are read: every weight is filled on the device
  // with seeded uniform values (scaled by 1 / sqrt(fan-in); norms 1, SSM A / dt
  // parameters in their usual ranges). Benchmarks use it to make large models
  // in memory from a config.json alone.
  std::optional<uint64_t> random_weights_seed;
  int64_t block_tokens = 16;
  int64_t max_num_tokens = 2048;  // most tokens in one step
  int64_t max_num_seqs = 64;      // most sequences in one step
  // 0: the config's max_position_embeddings, or kDefaultSsmMaxModelLen for a
  // pure SSM model whose config gives none.
  int64_t max_model_len = 0;
  int64_t logits_slice_rows = 256;  // logits are computed this many rows at a time
  // Receives start-up progress and the memory plan; may be empty.
  std::function<void(const std::string&)> log;
};

// max_model_len of a model without attention layers whose config has no
// max_position_embeddings (its memory per sequence does not grow with length).
inline constexpr int64_t kDefaultSsmMaxModelLen = 1 << 20;

// The budget for KV blocks and state slots on a GPU of `total_bytes` with
// `free_bytes` free after the weights and workspace are loaded:
// fraction × total − (total − free) − reserved_bytes, or 0 when that is not
// positive. `reserved_bytes`: buffers still to come besides the caches and a
// margin.
uint64_t GpuCacheBudget(uint64_t total_bytes, uint64_t free_bytes, double fraction,
                        uint64_t reserved_bytes);

// The budget (kv_cache_bytes) is split as DESIGN.md 2.1 says: state slots =
// min(max_num_seqs, what fits after a KV reserve of one max_model_len
// sequence), KV blocks = the rest. A pure SSM model has no blocks; a pure
// Transformer has no slots.
struct MemoryPlan {
  uint64_t weight_bytes = 0;
  uint64_t workspace_bytes = 0;  // activations + step metadata + logits slice
  uint64_t kv_bytes_per_token = 0;
  uint64_t kv_bytes_per_block = 0;
  int64_t block_tokens = 0;
  int64_t num_blocks = 0;
  uint64_t kv_cache_bytes = 0;  // num_blocks * kv_bytes_per_block
  // fp32 conv window + SSM state of one sequence over all SSM layers.
  uint64_t state_bytes_per_slot = 0;
  int64_t num_state_slots = 0;
  uint64_t state_cache_bytes = 0;  // num_state_slots * state_bytes_per_slot
  std::string ToString() const;
};

struct StepOutput {
  int64_t vocab_size = 0;
  // [plan.logits_indices.size(), vocab_size], f32, in logits_indices order.
  std::vector<float> logits;
  double forward_seconds = 0.0;  // wall time of the forward pass and logits
};

class Engine final : public StepEngine {
 public:
  // Loads config, generation config, checkpoint and weights; plans memory.
  // Errors name the file / tensor / flag at fault; a memory plan that fits no
  // sequence of max_model_len is refused with the numbers.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options);
  ~Engine();

  // Runs one forward pass. The plan is validated first (ValidateStepPlan); an
  // invalid plan returns InvalidArgument and writes nothing to the KV cache or
  // the state slots. SSM layers start each sequence from its slot's state (from
  // zeros when state_is_fresh) and leave the state after its last new token
  // there.
  // `out` is overwritten (its capacity reused).
  absl::Status Step(const StepPlan& plan, StepOutput* out) override;
  // Call after the warm-up step at the largest batch: from then on the CUDA
  // backend's op scratch may not grow (no cudaMalloc in the step loop; a
  // larger step is an error). A no-op on the CPU.
  void FinishWarmup();

  // Forking a sequence (benchmarks and tests: one prefilled context copied
  // into many sequences; with PlanBuilder::Fork). Copies, in every attention
  // layer, the K and V of block src_blocks[i] into block dst_blocks[i].
  // InvalidArgument, copying nothing, when the spans differ in length or an id
  // is outside [0, num_blocks). A model without attention layers has no
  // blocks: only empty spans are valid.
  absl::Status CopyKvBlocks(absl::Span<const int32_t> src_blocks,
                            absl::Span<const int32_t> dst_blocks);
  // Copies every SSM layer's conv window and SSM state from slot `src_slot`
  // into slot `dst_slot`. InvalidArgument, copying nothing, when either is
  // outside [0, num_state_slots) (a model without SSM layers has no slots).
  absl::Status CopyStateSlot(int32_t src_slot, int32_t dst_slot);

  const ModelConfig& config() const { return config_; }
  const GenerationConfig& generation_config() const { return generation_config_; }
  const MemoryPlan& memory_plan() const override { return plan_; }
  const StepPlanLimits& limits() const override { return limits_; }
  int64_t max_model_len() const override { return limits_.max_context_len; }
  int64_t max_num_seqs() const { return max_num_seqs_; }
  std::string device_name() const;
  Backend* backend() const { return backend_.get(); }

 private:
  Engine() = default;
  absl::Status PlanMemory(const EngineOptions& options,
                          const std::function<void(const std::string&)>& log);
  absl::Status UploadMetadata(const StepPlan& plan, ForwardInputs* inputs);

  ModelConfig config_;
  GenerationConfig generation_config_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  MemoryPlan plan_;
  StepPlanLimits limits_;
  int64_t max_num_seqs_ = 0;
  int64_t max_blocks_per_seq_ = 0;
  int64_t logits_slice_rows_ = 0;
  DeviceBuffer kv_buffer_;     // all attention layers' K and V
  DeviceBuffer state_buffer_;  // all SSM layers' conv windows and SSM states
  ModelCaches caches_;         // views into kv_buffer_ and state_buffer_
  // Step metadata on the device, i32: token_ids [T], positions [T],
  // slot_mapping [T], query_start [S+1], context_len [S],
  // block_table [S, max_blocks_per_seq], state_slot [S],
  // has_initial_state [S], logits rows [slice].
  DeviceBuffer meta_buffer_;
  DeviceBuffer logits_buffer_;  // [logits_slice_rows, vocab], act dtype
  std::vector<int32_t> host_meta_;  // staging for meta_buffer_
  std::vector<float> host_logits_;  // staging for non-f32 logits
  PlanCheckScratch plan_check_;     // reused by ValidateStepPlan
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_RUNTIME_ENGINE_H_
