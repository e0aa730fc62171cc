// Depthwise causal conv1d over a varlen batch, continuing from (and updating)
// each sequence's conv window in the state pool. CPU twin:
// CpuBackend::CausalConv1d (backend/cpu/cpu_ssm.cc).
//
// One thread per (sequence, channel, chunk of tokens); a block covers a range
// of channels of one sequence and walks its tokens in windows of chunks. Each
// thread first loads everything it reads (the K - 1 inputs before its chunk
// and its chunk's inputs) into registers, the block synchronizes, and only
// then are outputs written, so out may alias x. The window carried from one
// chunk of windows to the next goes through shared memory. See README.md.
//
// No Abseil here (DESIGN.md section 3): the launcher returns cudaError_t.
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CUDA_CAUSAL_CONV1D_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CUDA_CAUSAL_CONV1D_H_

#include <cstdint>

#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_common.h"

namespace hybridserve::engine::cuda {

// Largest kernel size the kernels take (as the CPU twin).
inline constexpr int kMaxConvKernelSize = 16;

struct CausalConv1dParams {
  const void* x = nullptr;       // [num_tokens, channels], elem
  const void* weight = nullptr;  // [channels, kernel_size], elem
  const void* bias = nullptr;    // [channels], elem, or null (no bias)
  // [num_slots, channels, kernel_size - 1], f32, oldest input first. Read for
  // sequences with has_initial_state != 0; overwritten for every sequence.
  float* conv_state = nullptr;
  const int32_t* query_start = nullptr;        // [num_seqs + 1], i32
  const int32_t* state_slot = nullptr;         // [num_seqs], i32
  const int32_t* has_initial_state = nullptr;  // [num_seqs], i32
  void* out = nullptr;  // [num_tokens, channels], elem; may alias x
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  int64_t channels = 0;
  int64_t max_query_len = 0;  // host-side: max new tokens of one sequence
  int kernel_size = 0;
  bool silu = false;
  ElemType elem = ElemType::kF32;
};

// Queues the conv on `stream`. cudaErrorInvalidValue for a kernel size
// outside [1, kMaxConvKernelSize] or a grid beyond the device limits.
// REQUIRES: query_start runs from 0 to num_tokens, non-decreasing; slots are
//   distinct and inside the pool; max_query_len is the true maximum.
cudaError_t LaunchCausalConv1d(const CausalConv1dParams& p, cudaStream_t stream);

}  // namespace hybridserve::engine::cuda

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CUDA_CAUSAL_CONV1D_H_
