// Mamba-1 selective scan over a varlen batch, continuing from (and updating)
// each sequence's state slot. CPU twin: CpuBackend::Mamba1Scan
// (backend/cpu/cpu_ssm.cc).
//
// Per token t and channel c (A = -exp(a_log), δ = softplus(dt + dt_bias)):
//   S[c,:] = exp(δ·A[c,:]) ⊙ S[c,:] + δ·x[t,c]·B[t,:]
//   y[t,c] = (S[c,:]·C[t,:] + d[c]·x[t,c]) · silu(z[t,c])
// A group of lanes per (sequence, channel) holds the channel's d_state
// entries in registers (4 or 16 per lane) and runs the tokens in order; blocks
// stage a tile of tokens' B, C, x, dt and z in shared memory. A decode token
// is the same kernel with a one-token loop. See README.md.
//
// No Abseil here (DESIGN.md section 3): the launcher returns cudaError_t.
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CUDA_MAMBA1_SCAN_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CUDA_MAMBA1_SCAN_H_

#include <cstdint>

#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_common.h"

namespace hybridserve::engine::cuda {

// Largest d_state the kernel takes (as the CPU twin).
inline constexpr int kMamba1MaxDState = 512;

struct Mamba1ScanParams {
  const void* x = nullptr;        // [num_tokens, channels], elem
  const void* dt = nullptr;       // [num_tokens, channels], elem, raw (before dt_bias)
  const void* bc = nullptr;       // [num_tokens, 2 * d_state], elem: B then C
  const void* z = nullptr;        // [num_tokens, channels], elem
  const void* a_log = nullptr;    // [channels, d_state], elem
  const void* dt_bias = nullptr;  // [channels], elem
  const void* d = nullptr;        // [channels], elem
  // [num_slots, channels, d_state], f32. Read for sequences with
  // has_initial_state != 0 (zeros otherwise); overwritten for every sequence.
  float* ssm_state = nullptr;
  const int32_t* query_start = nullptr;        // [num_seqs + 1], i32
  const int32_t* state_slot = nullptr;         // [num_seqs], i32
  const int32_t* has_initial_state = nullptr;  // [num_seqs], i32
  void* y = nullptr;  // [num_tokens, channels], elem; does not alias the inputs
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  int64_t channels = 0;
  int64_t d_state = 0;
  ElemType elem = ElemType::kF32;
};

// Queues the scan on `stream`. cudaErrorInvalidValue for d_state outside
// [1, kMamba1MaxDState] or a grid beyond the device limits.
// REQUIRES: query_start runs from 0 to num_tokens, non-decreasing; slots are
//   distinct and inside the pool.
cudaError_t LaunchMamba1Scan(const Mamba1ScanParams& p, cudaStream_t stream);

}  // namespace hybridserve::engine::cuda

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CUDA_MAMBA1_SCAN_H_
