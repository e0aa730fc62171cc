// Paged causal attention over a varlen batch of mixed prefill and decode
// tokens, reading the paged KV cache through the block table. CPU twin:
// CpuBackend::PagedAttention (backend/cpu/cpu_attention.cc).
//
// Algorithm (see README.md in this folder): one thread block per (sequence,
// KV head, tile of query rows, KV split). The query rows of a (sequence, KV
// head) are its new tokens times the GQA group's query heads, so every K/V
// row a block loads is used by all the query heads that share it. Scores and
// the online softmax are in f32; when the context is long and the grid small
// (decode), the context is split across blocks (flash-decoding) and a second
// kernel combines the partial results kept in scratch. With bf16/f16 and
// head_dim 64 or 128, sequences with more than 16 new tokens go to a
// tensor-core (WMMA) kernel instead, 64 query rows per block.
//
// No Abseil here (DESIGN.md section 3): the launcher returns cudaError_t.
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CUDA_PAGED_ATTENTION_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CUDA_PAGED_ATTENTION_H_

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_common.h"

namespace hybridserve::engine::cuda {

struct PagedAttentionParams {
  const void* q = nullptr;        // [num_tokens, num_heads, head_dim], elem
  const void* k_cache = nullptr;  // [num_blocks, block_tokens, num_kv_heads, head_dim], elem
  const void* v_cache = nullptr;  // [num_blocks, block_tokens, num_kv_heads, head_dim], elem
  const int32_t* query_start = nullptr;  // [num_seqs + 1], i32, prefix sums of new tokens
  const int32_t* context_len = nullptr;  // [num_seqs], i32, cached tokens incl. new ones
  const int32_t* block_table = nullptr;  // [num_seqs, max_blocks_per_seq], i32
  void* out = nullptr;            // [num_tokens, num_heads, head_dim], elem
  // PagedAttentionScratchBytes(head_dim) bytes of device memory, 16-byte
  // aligned: split partials, f32, carved up by the launcher.
  void* scratch = nullptr;
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  int64_t max_blocks_per_seq = 0;
  int64_t max_query_len = 0;    // host-side: max new tokens of one sequence
  int64_t max_context_len = 0;  // host-side: max of context_len
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_tokens = 0;
  int num_sms = 1;  // of the device, for the split decision
  float scale = 1.0f;
  ElemType elem = ElemType::kF32;
};

// Whether the kernels support `head_dim`: a multiple of 8 in [8, 256].
bool PagedAttentionSupportsHeadDim(int head_dim);

// Scratch the launcher needs for any batch with this head_dim (a bound that
// does not depend on the batch, so a warm-up call sizes it once).
size_t PagedAttentionScratchBytes(int head_dim);

// Queues the attention on `stream`. Returns cudaErrorInvalidValue for an
// unsupported head_dim or a grid beyond the device limits, else the launch
// error (if any).
// REQUIRES: num_heads % num_kv_heads == 0; q, k_cache, v_cache and out are
//   16-byte aligned; max_query_len and max_context_len are the true maxima of
//   the batch (the grid is sized from them); for every sequence
//   n_new <= context_len <= max_blocks_per_seq * block_tokens and the block
//   table holds valid blocks for its first ceil(context_len / block_tokens)
//   entries; query_start runs from 0 to num_tokens.
cudaError_t LaunchPagedAttention(const PagedAttentionParams& p, cudaStream_t stream);

}  // namespace hybridserve::engine::cuda

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CUDA_PAGED_ATTENTION_H_
