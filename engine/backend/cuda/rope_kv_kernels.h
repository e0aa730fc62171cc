// Attention-side kernels besides attention itself: rotary embedding (full or
// partial, rotate_half layout) and the paged KV write. CPU twins in
// cpu_attention.cc (CpuBackend::Rope, KvWrite).
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CUDA_ROPE_KV_KERNELS_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CUDA_ROPE_KV_KERNELS_H_

#include <cstdint>

#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_common.h"

namespace hybridserve::engine::cuda {

// In place on q and k: for i < rotary_dim / 2, angle = positions[t] ·
// inv_freq[i] (f32), c = cos(angle) · scaling, s = sin(angle) · scaling;
// (x[i], x[i + half]) <- (x[i]·c − x[i+half]·s, x[i+half]·c + x[i]·s).
struct RopeParams {
  void* q = nullptr;                // [tokens, num_heads, head_dim], elem
  void* k = nullptr;                // [tokens, num_kv_heads, head_dim], elem
  const int32_t* positions = nullptr;  // [tokens], i32
  const float* inv_freq = nullptr;     // [rotary_dim / 2], f32
  int64_t tokens = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t rotary_dim = 0;  // even, <= head_dim, <= 1024
  float attention_scaling = 1.0f;
  ElemType elem = ElemType::kF32;
};
cudaError_t LaunchRope(const RopeParams& p, cudaStream_t stream);

// k_cache[slot] = k[t], v_cache[slot] = v[t] for slot = slot_mapping[t], the
// caches viewed as [num_slots, row]. Tokens whose slot is outside
// [0, num_slots) are skipped (the host validates the plan; this only keeps a
// bad slot from writing out of bounds).
struct KvWriteParams {
  const void* k = nullptr;               // [tokens, row], elem
  const void* v = nullptr;               // [tokens, row], elem
  const int32_t* slot_mapping = nullptr;  // [tokens], i32
  void* k_cache = nullptr;  // [num_blocks, block_tokens, num_kv_heads, head_dim], elem
  void* v_cache = nullptr;  // same
  int64_t tokens = 0;
  int64_t row = 0;  // num_kv_heads * head_dim
  int64_t num_slots = 0;  // num_blocks * block_tokens
  ElemType elem = ElemType::kF32;
};
cudaError_t LaunchKvWrite(const KvWriteParams& p, cudaStream_t stream);

}  // namespace hybridserve::engine::cuda

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CUDA_ROPE_KV_KERNELS_H_
