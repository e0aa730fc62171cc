// CPU ops of the attention layer: rotary embedding, paged KV write, paged
// attention over the varlen batch.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cpu/cpu_gemm.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

// Rotates one head in place (transformers' rotate_half layout).
inline void RotateHead(float* x, const float* cos, const float* sin,
                       int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    const float x1 = x[i];
    const float x2 = x[i + half];
    x[i] = x1 * cos[i] - x2 * sin[i];
    x[i + half] = x2 * cos[i] + x1 * sin[i];
  }
}

}  // namespace

absl::Status CpuBackend::Rope(const Tensor& q, const Tensor& k,
                              const Tensor& positions, const RopeParams& rope) {
  HS_RETURN_IF_ERROR(ExpectTensor(q, DType::kF32, 3, "Rope q"));
  HS_RETURN_IF_ERROR(ExpectTensor(k, DType::kF32, 3, "Rope k"));
  HS_RETURN_IF_ERROR(ExpectTensor(positions, DType::kI32, 1, "Rope positions"));
  HS_RETURN_IF_ERROR(ExpectTensor(rope.inv_freq, DType::kF32, 1, "Rope inv_freq"));
  const int64_t t = q.dim(0), head_dim = q.dim(2);
  const int64_t half = rope.rotary_dim / 2;
  if (k.dim(0) != t || k.dim(2) != head_dim || positions.dim(0) != t ||
      rope.rotary_dim % 2 != 0 || rope.rotary_dim > head_dim ||
      rope.inv_freq.dim(0) != half) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Rope: q ", q.ShapeString(), " k ", k.ShapeString(), " positions ",
        positions.ShapeString(), " rotary_dim ", rope.rotary_dim));
  }
  const int64_t num_heads = q.dim(1), num_kv_heads = k.dim(1);
  const float* inv_freq = rope.inv_freq.as<float>();
  const int32_t* pos = positions.as<int32_t>();
#pragma omp parallel if (t * (num_heads + num_kv_heads) * head_dim >= kParallelMinWork)
  {
    std::vector<float> cos(half), sin(half);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < t; ++r) {
      const float p = static_cast<float>(pos[r]);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = p * inv_freq[i];  // f32 product, as transformers
        cos[i] = std::cos(angle) * rope.attention_scaling;
        sin[i] = std::sin(angle) * rope.attention_scaling;
      }
      for (int64_t h = 0; h < num_heads; ++h) {
        RotateHead(q.as<float>() + (r * num_heads + h) * head_dim, cos.data(),
                   sin.data(), half);
      }
      for (int64_t h = 0; h < num_kv_heads; ++h) {
        RotateHead(k.as<float>() + (r * num_kv_heads + h) * head_dim,
                   cos.data(), sin.data(), half);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::KvWrite(const Tensor& k, const Tensor& v,
                                 const Tensor& slot_mapping,
                                 const Tensor& k_cache, const Tensor& v_cache) {
  HS_RETURN_IF_ERROR(ExpectTensor(k, DType::kF32, 3, "KvWrite k"));
  HS_RETURN_IF_ERROR(ExpectTensor(v, DType::kF32, 3, "KvWrite v"));
  HS_RETURN_IF_ERROR(ExpectTensor(slot_mapping, DType::kI32, 1, "KvWrite slots"));
  HS_RETURN_IF_ERROR(ExpectTensor(k_cache, DType::kF32, 4, "KvWrite k_cache"));
  HS_RETURN_IF_ERROR(ExpectTensor(v_cache, DType::kF32, 4, "KvWrite v_cache"));
  const int64_t t = k.dim(0);
  const int64_t row = k.row_size();  // num_kv_heads * head_dim
  const int64_t num_slots = k_cache.dim(0) * k_cache.dim(1);
  if (v.dim(0) != t || v.row_size() != row || slot_mapping.dim(0) != t ||
      k_cache.dim(2) * k_cache.dim(3) != row ||
      v_cache.numel() != k_cache.numel()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KvWrite: k ", k.ShapeString(), " v ", v.ShapeString(), " cache ",
        k_cache.ShapeString()));
  }
  const int32_t* slots = slot_mapping.as<int32_t>();
  for (int64_t r = 0; r < t; ++r) {
    if (slots[r] < 0 || slots[r] >= num_slots) {
      return absl::InvalidArgumentError(absl::StrCat(
          "KvWrite: slot ", slots[r], " outside [0, ", num_slots, ")"));
    }
  }
  for (int64_t r = 0; r < t; ++r) {
    std::memcpy(k_cache.as<float>() + slots[r] * row, k.as<float>() + r * row,
                row * sizeof(float));
    std::memcpy(v_cache.as<float>() + slots[r] * row, v.as<float>() + r * row,
                row * sizeof(float));
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::PagedAttention(const Tensor& q, const Tensor& k_cache,
                                        const Tensor& v_cache,
                                        const AttentionBatch& batch,
                                        float scale, const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(q, DType::kF32, 3, "PagedAttention q"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, DType::kF32, 3, "PagedAttention out"));
  HS_RETURN_IF_ERROR(ExpectTensor(k_cache, DType::kF32, 4, "PagedAttention k_cache"));
  HS_RETURN_IF_ERROR(ExpectTensor(v_cache, DType::kF32, 4, "PagedAttention v_cache"));
  HS_RETURN_IF_ERROR(ExpectTensor(batch.query_start, DType::kI32, 1, "query_start"));
  HS_RETURN_IF_ERROR(ExpectTensor(batch.context_len, DType::kI32, 1, "context_len"));
  HS_RETURN_IF_ERROR(ExpectTensor(batch.block_table, DType::kI32, 2, "block_table"));
  const int64_t num_tokens = q.dim(0), num_heads = q.dim(1), head_dim = q.dim(2);
  const int64_t block_tokens = k_cache.dim(1), num_kv_heads = k_cache.dim(2);
  const int64_t num_blocks = k_cache.dim(0);
  const int64_t s_count = batch.num_seqs;
  const int64_t max_blocks = batch.block_table.dim(1);
  if (out.dim(0) != num_tokens || out.dim(1) != num_heads ||
      out.dim(2) != head_dim || k_cache.dim(3) != head_dim ||
      num_kv_heads == 0 || num_heads % num_kv_heads != 0 ||
      batch.query_start.dim(0) != s_count + 1 ||
      batch.context_len.dim(0) != s_count || batch.block_table.dim(0) != s_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PagedAttention: q ", q.ShapeString(), " cache ", k_cache.ShapeString(),
        " seqs ", s_count));
  }
  const int32_t* qs = batch.query_start.as<int32_t>();
  const int32_t* ctx = batch.context_len.as<int32_t>();
  const int32_t* table = batch.block_table.as<int32_t>();
  if (qs[0] != 0 || qs[s_count] != num_tokens) {
    return absl::InvalidArgumentError("PagedAttention: query_start does not span q");
  }
  int64_t max_ctx = 0;
  for (int64_t s = 0; s < s_count; ++s) {
    const int64_t n_new = qs[s + 1] - qs[s];
    if (n_new < 0 || ctx[s] < n_new || ctx[s] > max_blocks * block_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PagedAttention: sequence ", s, " has ", n_new, " new tokens, context ",
          ctx[s], ", room for ", max_blocks * block_tokens));
    }
    for (int64_t b = 0; b < (ctx[s] + block_tokens - 1) / block_tokens; ++b) {
      const int32_t block = table[s * max_blocks + b];
      if (block < 0 || block >= num_blocks) {
        return absl::InvalidArgumentError(absl::StrCat(
            "PagedAttention: sequence ", s, " block ", block, " outside [0, ",
            num_blocks, ")"));
      }
    }
    max_ctx = std::max<int64_t>(max_ctx, ctx[s]);
  }

  // Token -> sequence, so the parallel loop can run over (token, head).
  std::vector<int32_t> seq_of(num_tokens);
  for (int64_t s = 0; s < s_count; ++s) {
    for (int32_t t = qs[s]; t < qs[s + 1]; ++t) seq_of[t] = static_cast<int32_t>(s);
  }
  const int64_t group = num_heads / num_kv_heads;
  const int64_t kv_row = num_kv_heads * head_dim;
  const float* kc = k_cache.as<float>();
  const float* vc = v_cache.as<float>();
#pragma omp parallel if (num_tokens * num_heads * max_ctx * head_dim >= kParallelMinWork)
  {
    std::vector<float> scores(max_ctx);
    std::vector<float> acc(head_dim);
#pragma omp for schedule(static)
    for (int64_t th = 0; th < num_tokens * num_heads; ++th) {
      const int64_t t = th / num_heads, h = th % num_heads, kvh = h / group;
      const int64_t s = seq_of[t];
      const int32_t* blocks = table + s * max_blocks;
      const int64_t pos = ctx[s] - (qs[s + 1] - qs[s]) + (t - qs[s]);
      const float* qv = q.as<float>() + (t * num_heads + h) * head_dim;
      // Scores block by block: DotsF32's order depends on head_dim only
      // (cpu_gemm.h), so a score is the same whatever the batch, the
      // chunking or the thread.
      for (int64_t p0 = 0; p0 <= pos; p0 += block_tokens) {
        const float* keys = kc + blocks[p0 / block_tokens] * block_tokens * kv_row +
                            kvh * head_dim;
        DotsF32(qv, keys, kv_row, std::min(block_tokens, pos + 1 - p0), head_dim,
                scores.data() + p0, isa_);
      }
      float max_score = -std::numeric_limits<float>::infinity();
      for (int64_t p = 0; p <= pos; ++p) {
        scores[p] *= scale;
        max_score = std::max(max_score, scores[p]);
      }
      float sum = 0.0f;
      for (int64_t p = 0; p <= pos; ++p) {
        scores[p] = std::exp(scores[p] - max_score);
        sum += scores[p];
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t p = 0; p <= pos; ++p) {
        const float* vv = vc + (blocks[p / block_tokens] * block_tokens +
                                p % block_tokens) * kv_row + kvh * head_dim;
        const float w = scores[p];
#pragma omp simd
        for (int64_t d = 0; d < head_dim; ++d) acc[d] += w * vv[d];
      }
      float* o = out.as<float>() + (t * num_heads + h) * head_dim;
      const float inv_sum = 1.0f / sum;
      for (int64_t d = 0; d < head_dim; ++d) o[d] = acc[d] * inv_sum;
    }
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine
