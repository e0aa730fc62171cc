// CudaBackend::PagedAttention: the shape and dtype checks of the CPU twin
// (CpuBackend::PagedAttention), on tensor shapes and the batch's host-side
// maxima only (the index tensors live on the device), then the launch of
// paged_attention.cu.
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cuda/cuda_backend_impl.h"
#include "engine/backend/cuda/paged_attention.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

absl::Status CudaBackend::PagedAttention(const Tensor& q, const Tensor& k_cache,
                                         const Tensor& v_cache,
                                         const AttentionBatch& batch, float scale,
                                         const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(q, act_dtype_, 3, "PagedAttention q"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, act_dtype_, 3, "PagedAttention out"));
  HS_RETURN_IF_ERROR(ExpectTensor(k_cache, act_dtype_, 4, "PagedAttention k_cache"));
  HS_RETURN_IF_ERROR(ExpectTensor(v_cache, act_dtype_, 4, "PagedAttention v_cache"));
  HS_RETURN_IF_ERROR(ExpectTensor(batch.query_start, DType::kI32, 1, "query_start"));
  HS_RETURN_IF_ERROR(ExpectTensor(batch.context_len, DType::kI32, 1, "context_len"));
  HS_RETURN_IF_ERROR(ExpectTensor(batch.block_table, DType::kI32, 2, "block_table"));
  const int64_t num_tokens = q.dim(0), num_heads = q.dim(1), head_dim = q.dim(2);
  const int64_t block_tokens = k_cache.dim(1), num_kv_heads = k_cache.dim(2);
  const int64_t s_count = batch.num_seqs;
  const int64_t max_blocks = batch.block_table.dim(1);
  bool v_matches = true;
  for (int i = 0; i < 4; ++i) v_matches = v_matches && v_cache.dim(i) == k_cache.dim(i);
  if (out.dim(0) != num_tokens || out.dim(1) != num_heads || out.dim(2) != head_dim ||
      k_cache.dim(3) != head_dim || !v_matches || num_kv_heads == 0 ||
      num_heads % num_kv_heads != 0 || batch.query_start.dim(0) != s_count + 1 ||
      batch.context_len.dim(0) != s_count || batch.block_table.dim(0) != s_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PagedAttention: q ", q.ShapeString(), " cache ", k_cache.ShapeString(), " v cache ",
        v_cache.ShapeString(), " seqs ", s_count));
  }
  // The kernels size their grids from the host-side maxima.
  if (num_tokens > 0 &&
      (batch.max_query_len < 1 || batch.max_query_len > num_tokens ||
       batch.max_context_len < batch.max_query_len ||
       batch.max_context_len > max_blocks * block_tokens)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PagedAttention: max_query_len ", batch.max_query_len, " / max_context_len ",
        batch.max_context_len, " do not fit ", num_tokens, " tokens and room for ",
        max_blocks * block_tokens));
  }
  if (!cuda::PagedAttentionSupportsHeadDim(static_cast<int>(head_dim))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PagedAttention: head_dim ", head_dim,
        " not supported by the CUDA kernels (a multiple of 8 up to 256)"));
  }
  if (!Aligned16(q.data) || !Aligned16(out.data) || !Aligned16(k_cache.data) ||
      !Aligned16(v_cache.data)) {
    return absl::InvalidArgumentError("PagedAttention: q, out and caches must be 16-byte aligned");
  }
  if (num_tokens == 0 || s_count == 0) return absl::OkStatus();
  // Always the same request, so the warm-up step sizes the scratch for
  // every later batch (splits depend on the batch).
  HS_ASSIGN_OR_RETURN(void* scratch,
                      Scratch(cuda::PagedAttentionScratchBytes(static_cast<int>(head_dim))));

  cuda::PagedAttentionParams p;
  p.q = q.data;
  p.k_cache = k_cache.data;
  p.v_cache = v_cache.data;
  p.query_start = batch.query_start.as<int32_t>();
  p.context_len = batch.context_len.as<int32_t>();
  p.block_table = batch.block_table.as<int32_t>();
  p.out = out.data;
  p.scratch = scratch;
  p.num_tokens = num_tokens;
  p.num_seqs = s_count;
  p.max_blocks_per_seq = max_blocks;
  p.max_query_len = batch.max_query_len;
  p.max_context_len = batch.max_context_len;
  p.num_heads = static_cast<int>(num_heads);
  p.num_kv_heads = static_cast<int>(num_kv_heads);
  p.head_dim = static_cast<int>(head_dim);
  p.block_tokens = static_cast<int>(block_tokens);
  p.num_sms = num_sms();
  p.scale = scale;
  p.elem = elem_type();
  return CudaCheck(cuda::LaunchPagedAttention(p, stream()), "PagedAttention");
}

}  // namespace hybridserve::engine
