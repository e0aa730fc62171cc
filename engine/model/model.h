// The model graph interface every architecture implements over the Backend op
// set. The Engine owns the KV cache and the step metadata; a Model owns its
// weights and the activation workspace for the largest step.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MODEL_H_
#define HYBRIDSERVE_ENGINE_MODEL_MODEL_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/dtype.h"

namespace hybridserve::engine {

// Step inputs on the device (i32).
struct ForwardInputs {
  Tensor token_ids;     // [T]
  Tensor positions;     // [T]
  Tensor slot_mapping;  // [T] KV cache slot (block * block_tokens + offset)
  AttentionBatch attention;
  SsmBatch ssm;  // SSM layers: per-sequence state slots (unused without them)
};

// One attention layer's paged cache, each [num_blocks, block_tokens,
// num_kv_heads, head_dim], act dtype.
struct KvLayerCache {
  Tensor k;
  Tensor v;
};

// One SSM layer's state pools, f32, indexed by state slot (DESIGN.md 2.1).
struct SsmLayerState {
  Tensor conv;  // [num_slots, conv_channels, d_conv - 1]
  // Mamba-2: [num_slots, num_heads, head_dim, d_state];
  // Mamba-1: [num_slots, d_inner, d_state].
  Tensor ssm;
};

// What a forward pass reads and updates besides its inputs: one KV cache per
// attention layer and one state per SSM layer, each in layer order.
struct ModelCaches {
  std::vector<KvLayerCache> kv;
  std::vector<SsmLayerState> ssm;
};

struct ModelLoadOptions {
  // Weights are rounded to this precision (kF32: kept as stored) before they
  // are placed in the backend's act dtype.
  DType weight_precision = DType::kF32;
  // Largest number of tokens in one step: sizes the activation workspace.
  int64_t max_num_tokens = 0;
  // Largest number of rows whose logits are computed by one ComputeLogits call.
  int64_t max_logits_rows = 0;
  // Called with a progress line now and then while loading; may be empty.
  std::function<void(const std::string&)> progress;
  // When set, no tensor is read: every weight is filled on the device with
  // seeded values (see WeightLoader).
  std::optional<uint64_t> random_weights_seed;
};

class Model {
 public:
  virtual ~Model() = default;

  virtual int64_t vocab_size() const = 0;
  // Number of attention layers, each needing a KvLayerCache.
  virtual int64_t num_kv_layers() const = 0;
  virtual uint64_t weight_bytes() const = 0;
  virtual uint64_t workspace_bytes() const = 0;

  // Runs every layer over the T tokens of `inputs`, writing their K/V into
  // caches.kv, updating the sequences' slots of caches.ssm in place, and
  // leaving the final normed hidden states in the workspace.
  // REQUIRES: T <= max_num_tokens; caches.kv.size() == num_kv_layers();
  // caches.ssm has one entry per SSM layer; inputs valid.
  virtual absl::Status Forward(const ForwardInputs& inputs,
                               const ModelCaches& caches) = 0;
  // logits[R, vocab] (act dtype) of the hidden states of the last Forward at
  // token indices rows[R]. REQUIRES: R <= max_logits_rows.
  virtual absl::Status ComputeLogits(const Tensor& rows,
                                     const Tensor& logits) = 0;
};

// The language-model head every architecture shares: logits[R, vocab] =
// lm_head[vocab, H] · hidden[rows[r], :], gathering the rows into
// `gathered` ([max_rows, H] workspace) first. InvalidArgument when R is 0 or
// exceeds max_rows.
absl::Status LogitsOfRows(Backend& backend, const Tensor& hidden, const Tensor& gathered,
                          const Tensor& lm_head, const Tensor& rows, const Tensor& logits);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_MODEL_H_
