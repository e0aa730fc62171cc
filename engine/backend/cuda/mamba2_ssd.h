// Mamba-2 SSM over a varlen batch, continuing from (and updating) each
// sequence's state slot. CPU twin: CpuBackend::Mamba2Scan
// (backend/cpu/cpu_ssm.cc), the plain recurrence
//   δ = clamp(softplus(dt + dt_bias), dt_min, dt_max),  A = -exp(a_log)
//   S[h] = exp(δA)·S[h] + δ·x[t,h,:] ⊗ B[t,g,:],  y[t,h,:] = S[h]·C[t,g,:] + D[h]·x[t,h,:]
//
// Two kernels, one launch each (see README.md):
//  * the single-step update, for sequences with one new token (decode; also
//    zero new tokens): one block per (sequence, head), the state read and
//    written once with 16-byte accesses;
//  * the chunked SSD algorithm, for sequences with more than one new token:
//    one block per (head, block of head_dim rows, share of those sequences)
//    keeps the head's state in shared memory and walks the sequence's chunks
//    in order; per chunk it computes the decay cumsum, the masked decayed
//    C·Bᵀ matrix, the chunk's outputs (intra-chunk term plus C times the
//    decayed incoming state, plus D·x) and then the state after the chunk.
// Each kernel picks its sequences from query_start on the device, so a decode
// token in a mixed batch never costs a chunk.
//
// No Abseil here (DESIGN.md section 3): the launcher returns cudaError_t.
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CUDA_MAMBA2_SSD_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CUDA_MAMBA2_SSD_H_

#include <cstdint>

#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_common.h"

namespace hybridserve::engine::cuda {

struct Mamba2SsdParams {
  // [num_tokens, num_heads * head_dim + 2 * n_groups * d_state], elem: x
  // (viewed [num_heads, head_dim]), then B and C (each [n_groups, d_state]).
  const void* xbc = nullptr;
  const void* dt = nullptr;       // [num_tokens, num_heads], elem, raw (before dt_bias)
  const void* a_log = nullptr;    // [num_heads], elem
  const void* dt_bias = nullptr;  // [num_heads], elem
  const void* d = nullptr;        // [num_heads], elem
  // [num_slots, num_heads, head_dim, d_state], f32. Read for sequences with
  // has_initial_state != 0 (zeros otherwise); overwritten for every sequence.
  float* ssm_state = nullptr;
  const int32_t* query_start = nullptr;        // [num_seqs + 1], i32
  const int32_t* state_slot = nullptr;         // [num_seqs], i32
  const int32_t* has_initial_state = nullptr;  // [num_seqs], i32
  void* y = nullptr;  // [num_tokens, num_heads * head_dim], elem; does not alias xbc
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  int64_t max_query_len = 0;  // host-side: max new tokens of one sequence
  int num_heads = 0;
  int head_dim = 0;
  int n_groups = 0;
  int d_state = 0;
  float dt_min = 0.0f;
  float dt_max = 0.0f;  // may be +infinity
  int num_sms = 1;      // of the device, for the grid of the chunked kernel
  ElemType elem = ElemType::kF32;
};

// Queues the scan on `stream`. cudaErrorInvalidValue for sizes the kernels do
// not take (non-positive sizes, num_heads not a multiple of n_groups, a
// d_state too large for shared memory) or a grid beyond the device limits.
// REQUIRES: query_start runs from 0 to num_tokens, non-decreasing; slots are
//   distinct and inside the pool; max_query_len is the true maximum.
cudaError_t LaunchMamba2Ssd(const Mamba2SsdParams& p, cudaStream_t stream);

}  // namespace hybridserve::engine::cuda

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CUDA_MAMBA2_SSD_H_
