// The op set the model graph runs on. One interface, two implementations:
// backend/cpu (the reference, used in CI) and backend/cuda (the product). The
// graph in engine/model/ only calls these ops, so a new backend never touches it.
//
// Conventions for every op:
//  * Tensors are views of this backend's memory (see DeviceBuffer), row-major.
//    Shapes below are [rows, ...]; T is the number of tokens in the step.
//  * Activations and weights are act_dtype() (the CPU backend: f32 only).
//    Index tensors are i32.
//  * Each output row depends only on its own input row(s) and the weights: never
//    on how many other rows are in the batch (DESIGN.md section 7, class (b)).
//  * Ops return InvalidArgument on a shape or dtype mismatch and change nothing.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_BACKEND_BACKEND_H_
#define HYBRIDSERVE_ENGINE_BACKEND_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/backend/fill_uniform.h"
#include "engine/activation.h"
#include "engine/backend/tensor.h"
#include "engine/dtype.h"

namespace hybridserve::engine {

class Backend;

// One allocation on a backend's device. Move-only; frees on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend* backend, void* data, size_t num_bytes)
      : backend_(backend), data_(data), num_bytes_(num_bytes) {}
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  void* data() const { return data_; }
  size_t num_bytes() const { return num_bytes_; }

 private:
  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  size_t num_bytes_ = 0;
};

// Describes the sequences of a varlen batch for attention. All tensors are i32
// on the device.
struct AttentionBatch {
  Tensor query_start;  // [S + 1] prefix sums of new tokens per sequence
  Tensor context_len;  // [S] tokens in the cache after this step, new ones included
  Tensor block_table;  // [S, max_blocks_per_seq] physical block of each logical block
  int64_t num_seqs = 0;
  int64_t max_context_len = 0;  // max over context_len (host-side, for launch sizes)
  int64_t max_query_len = 0;    // max new tokens of one sequence (host-side, ditto)
};

// Describes the sequences of a varlen batch for SSM layers. Tensors are i32 on
// the device. Sequence s owns tokens query_start[s] .. query_start[s+1] - 1 and
// state slot state_slot[s] of every SSM state pool; its conv window and SSM
// state are read at the start of the step (as zeros when
// has_initial_state[s] == 0, i.e. the plan's state_is_fresh) and overwritten
// in place with the state after its last token. REQUIRES: slots distinct.
struct SsmBatch {
  Tensor query_start;        // [S + 1] prefix sums of new tokens per sequence
  Tensor state_slot;         // [S]
  Tensor has_initial_state;  // [S] 0: start from a zero state; 1: from the slot
  int64_t num_seqs = 0;
  int64_t max_query_len = 0;  // max new tokens of one sequence (host-side)
};

// Mamba-2 selective scan dimensions. The B/C groups are shared by
// num_heads / n_groups consecutive heads.
struct Mamba2ScanParams {
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t n_groups = 0;
  int64_t d_state = 0;
  float dt_min = 0.0f;  // dt = clamp(softplus(dt_raw + dt_bias), dt_min, dt_max)
  float dt_max = 0.0f;  // may be +infinity
};

// Rotary embedding: for each rotated pair i < rotary_dim / 2 the angle is
// position * inv_freq[i]; dims i and i + rotary_dim / 2 are rotated together
// (transformers' rotate_half layout); cos and sin are scaled by
// attention_scaling. Dims >= rotary_dim pass through.
struct RopeParams {
  Tensor inv_freq;  // [rotary_dim / 2], f32
  int64_t rotary_dim = 0;
  float attention_scaling = 1.0f;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;
  // dtype of activations, weights and the KV cache on this backend.
  virtual DType act_dtype() const = 0;

  // ---- memory
  // One allocation; `pool` names it in errors ("weights", "kv_cache", ...).
  virtual absl::StatusOr<DeviceBuffer> Allocate(size_t num_bytes,
                                                std::string_view pool) = 0;
  virtual absl::Status CopyToDevice(const void* host_src, void* device_dst,
                                    size_t num_bytes) = 0;
  virtual absl::Status CopyToHost(const void* device_src, void* host_dst,
                                  size_t num_bytes) = 0;
  // Copies between two buffers of this backend's memory (queued on the
  // device; ordered with the ops). REQUIRES: the ranges do not overlap.
  virtual absl::Status CopyOnDevice(const void* src, void* dst, size_t num_bytes) = 0;
  virtual absl::Status Zero(const Tensor& t) = 0;
  // Waits until queued work is done (a no-op on the CPU).
  virtual absl::Status Synchronize() = 0;
  // Fills t (f32, bf16 or f16) with pseudo-random values in [lo, hi]: element
  // i (row-major) gets lo + (hi - lo) · u, u = FillUniformUnit(seed, i),
  // computed in f32 (a multiply, then an add, no fused multiply-add) and then
  // rounded to t's dtype. Every backend computes the same bits, so random
  // weights are identical on the CPU and the GPU. For random-weight models and
  // benchmarks. InvalidArgument for other dtypes or lo > hi.
  virtual absl::Status FillUniform(const Tensor& t, uint64_t seed, float lo,
                                   float hi) = 0;

  // ---- ops
  // y[T, N] = x[T, K] · w[N, K]ᵀ (+ bias[N] when bias is not empty).
  virtual absl::Status Gemm(const Tensor& x, const Tensor& w, const Tensor& bias,
                            const Tensor& y) = 0;
  // out[T, H] = table[ids[t], :]. REQUIRES: ids in [0, table.dim(0)).
  virtual absl::Status Embedding(const Tensor& ids, const Tensor& table,
                                 const Tensor& out) = 0;
  // out[T, H] = x / sqrt(mean(x²) + eps) * w[H]; out may alias x.
  virtual absl::Status RmsNorm(const Tensor& x, const Tensor& w, float eps,
                               const Tensor& out) = 0;
  // residual[T, H] += x; out = RmsNorm(residual, w, eps). out may alias x.
  virtual absl::Status AddRmsNorm(const Tensor& residual, const Tensor& x,
                                  const Tensor& w, float eps,
                                  const Tensor& out) = 0;
  // In place on q[T, num_heads, head_dim] and k[T, num_kv_heads, head_dim].
  virtual absl::Status Rope(const Tensor& q, const Tensor& k,
                            const Tensor& positions, const RopeParams& rope) = 0;
  // k_cache[slot / block_tokens, slot % block_tokens] = k[t] for slot =
  // slot_mapping[t] (same for v). Caches are [num_blocks, block_tokens,
  // num_kv_heads, head_dim]; k, v are [T, num_kv_heads, head_dim].
  virtual absl::Status KvWrite(const Tensor& k, const Tensor& v,
                               const Tensor& slot_mapping,
                               const Tensor& k_cache,
                               const Tensor& v_cache) = 0;
  // Causal attention of each new token over its sequence's cached keys and
  // values (the new tokens' own K/V must already be written): token j of
  // sequence s (0-based among its new tokens) sits at position
  // context_len[s] - n_s + j and sees positions 0..that position. GQA: query
  // head h reads kv head h / (num_heads / num_kv_heads).
  // q, out: [T, num_heads, head_dim].
  virtual absl::Status PagedAttention(const Tensor& q, const Tensor& k_cache,
                                      const Tensor& v_cache,
                                      const AttentionBatch& batch, float scale,
                                      const Tensor& out) = 0;
  // out[T, I] = act(gate_up[:, :I]) * gate_up[:, I:] for gate_up [T, 2I].
  virtual absl::Status GatedAct(const Tensor& gate_up, Activation act, const Tensor& out) = 0;
  // out[R, H] = x[rows[r], :].
  virtual absl::Status GatherRows(const Tensor& x, const Tensor& rows,
                                  const Tensor& out) = 0;

  // ---- SSM ops (state pools are f32 whatever act_dtype is)
  // Depthwise causal conv over each sequence of the batch, continuing from the
  // sequence's conv window: for channel c and token t of a sequence,
  //   out[t, c] = bias[c] + Σ_k weight[c, k] · u[t - (K-1) + k, c]
  // where u is the window (K-1 earlier inputs, oldest first) followed by the
  // sequence's x rows; then SiLU when `silu`. conv_state[slot] is left holding
  // the last K-1 entries of u. x, out: [T, C]; weight [C, K]; bias [C] or
  // empty; conv_state [num_slots, C, K - 1] f32. out may alias x.
  virtual absl::Status CausalConv1d(const Tensor& x, const Tensor& weight,
                                    const Tensor& bias, const Tensor& conv_state,
                                    const SsmBatch& batch, bool silu,
                                    const Tensor& out) = 0;
  // Mamba-2 SSM over each sequence of the batch, continuing from its state.
  // xbc [T, d_inner + 2·G·N] holds x (viewed [T, heads, head_dim]), then B and
  // C (each [T, G, N]) — the conv output; dt [T, heads] raw (before dt_bias).
  // Per token t and head h (group g = h / (heads / G)):
  //   δ = clamp(softplus(dt[t,h] + dt_bias[h]), dt_min, dt_max)
  //   S[h] = exp(δ · A[h]) · S[h] + δ · x[t,h,:] ⊗ B[t,g,:],  A = -exp(a_log)
  //   y[t,h,:] = S[h] · C[t,g,:] + d[h] · x[t,h,:]
  // the plain recurrence, which is what the chunked SSD algorithm computes
  // (chunking only reorders the sums). y: [T, d_inner]; a_log, dt_bias, d:
  // [heads]; ssm_state [num_slots, heads, head_dim, N] f32.
  virtual absl::Status Mamba2Scan(const Tensor& xbc, const Tensor& dt,
                                  const Tensor& a_log, const Tensor& dt_bias,
                                  const Tensor& d, const Tensor& ssm_state,
                                  const SsmBatch& batch,
                                  const Mamba2ScanParams& params,
                                  const Tensor& y) = 0;
  // Mamba-1 selective scan over each sequence, continuing from its state.
  // x, dt (raw, before dt_bias), z, y: [T, D]; bc [T, 2N] holds B then C;
  // a_log [D, N]; dt_bias, d: [D]; ssm_state [num_slots, D, N] f32. Per token
  // t and channel c:
  //   δ = softplus(dt[t,c] + dt_bias[c]);  A = -exp(a_log)
  //   S[c,:] = exp(δ · A[c,:]) ⊙ S[c,:] + δ · x[t,c] · B[t,:]
  //   y[t,c] = (S[c,:] · C[t,:] + d[c] · x[t,c]) · silu(z[t,c])
  virtual absl::Status Mamba1Scan(const Tensor& x, const Tensor& dt,
                                  const Tensor& bc, const Tensor& z,
                                  const Tensor& a_log, const Tensor& dt_bias,
                                  const Tensor& d, const Tensor& ssm_state,
                                  const SsmBatch& batch, const Tensor& y) = 0;
  // Gated RMSNorm (mamba_ssm's RMSNormGated with norm_before_gate=False):
  // h = x · silu(z); each group of `group_size` channels of h is divided by
  // sqrt(mean(h²) + eps) over that group; out = w · h. x, z, out: [T, D];
  // w [D]; D a multiple of group_size. out may alias x.
  virtual absl::Status GatedRmsNorm(const Tensor& x, const Tensor& z,
                                    const Tensor& w, int64_t group_size,
                                    float eps, const Tensor& out) = 0;

 protected:
  friend class DeviceBuffer;
  virtual void Free(void* data, size_t num_bytes) = 0;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_BACKEND_BACKEND_H_
