// The CudaBackend class (see cuda_backend.h for the public factory). Its ops
// are defined across several .cc files, one per family: cuda_backend.cc
// (memory, GEMM, embedding, norms, rope, KV write, elementwise),
// cuda_attention.cc (PagedAttention) and cuda_ssm.cc (CausalConv1d,
// Mamba2Scan, Mamba1Scan). Each .cc checks shapes and dtypes (InvalidArgument,
// nothing changed) and calls a launcher in a .cu file of the same family,
// which returns cudaError_t; CudaCheck converts it.
//
// All work is queued on one stream (stream()); ops do not synchronize, so a
// returned OK means "queued without a launch error". CopyToHost and
// Synchronize wait for the stream; CopyToDevice returns once the host buffer
// has been read (it may be reused at once), the copy itself queued.
//
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CUDA_CUDA_BACKEND_IMPL_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CUDA_CUDA_BACKEND_IMPL_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/backend/cuda/cuda_backend.h"
#include "engine/backend/cuda/cuda_common.h"

namespace hybridserve::engine {

// The cuBLAS entry points the backend uses (loaded at run time).
struct CublasApi;

class CudaBackend final : public Backend {
 public:
  // Use CreateCudaBackend(); Init() is called by it.
  explicit CudaBackend(const CudaBackendOptions& options);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  // Selects the device, creates the stream and the cuBLAS handle. On error
  // the destructor releases whatever was created.
  absl::Status Init();

  std::string_view name() const override { return "cuda"; }
  DType act_dtype() const override { return act_dtype_; }

  // ---- for the op implementations
  cudaStream_t stream() const { return stream_; }
  cuda::ElemType elem_type() const { return elem_type_; }
  int device() const { return device_; }
  int num_sms() const { return num_sms_; }
  // OK on cudaSuccess, else INTERNAL "CUDA error in <what>: <name>: <string>".
  static absl::Status CudaCheck(cudaError_t e, std::string_view what);
  // Device scratch for an op's temporaries: one buffer of at least num_bytes
  // (256-byte aligned), valid until the next Scratch() call. It grows (a
  // cudaMalloc after a stream sync) only when asked for more than it holds;
  // the warm-up step at the largest batch asks for the most, after which the
  // engine calls FreezeScratch() and a request for more is an INTERNAL error
  // instead of an allocation, so the step loop never calls cudaMalloc.
  // REQUIRES: an op calls Scratch() at most once per launch sequence and
  // carves the buffer up itself: a second call may move the buffer, so a
  // pointer from an earlier call must not be used after it.
  absl::StatusOr<void*> Scratch(size_t num_bytes);
  void FreezeScratch() { scratch_frozen_ = true; }
  size_t scratch_bytes() const { return scratch_bytes_; }

  // ---- memory
  absl::StatusOr<DeviceBuffer> Allocate(size_t num_bytes,
                                        std::string_view pool) override;
  absl::Status CopyToDevice(const void* host_src, void* device_dst,
                            size_t num_bytes) override;
  absl::Status CopyOnDevice(const void* src, void* dst, size_t num_bytes) override;
  absl::Status CopyToHost(const void* device_src, void* host_dst,
                          size_t num_bytes) override;
  absl::Status Zero(const Tensor& t) override;
  absl::Status Synchronize() override;
  absl::Status FillUniform(const Tensor& t, uint64_t seed, float lo,
                           float hi) override;

  // ---- ops (cuda_backend.cc)
  absl::Status Gemm(const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Tensor& y) override;
  absl::Status Embedding(const Tensor& ids, const Tensor& table,
                         const Tensor& out) override;
  absl::Status RmsNorm(const Tensor& x, const Tensor& w, float eps,
                       const Tensor& out) override;
  absl::Status AddRmsNorm(const Tensor& residual, const Tensor& x,
                          const Tensor& w, float eps,
                          const Tensor& out) override;
  absl::Status Rope(const Tensor& q, const Tensor& k, const Tensor& positions,
                    const RopeParams& rope) override;
  absl::Status KvWrite(const Tensor& k, const Tensor& v,
                       const Tensor& slot_mapping, const Tensor& k_cache,
                       const Tensor& v_cache) override;
  absl::Status GatedAct(const Tensor& gate_up, Activation act, const Tensor& out) override;
  absl::Status GatherRows(const Tensor& x, const Tensor& rows,
                          const Tensor& out) override;
  absl::Status GatedRmsNorm(const Tensor& x, const Tensor& z, const Tensor& w,
                            int64_t group_size, float eps,
                            const Tensor& out) override;

  // ---- attention (cuda_attention.cc)
  absl::Status PagedAttention(const Tensor& q, const Tensor& k_cache,
                              const Tensor& v_cache,
                              const AttentionBatch& batch, float scale,
                              const Tensor& out) override;

  // ---- SSM ops (cuda_ssm.cc); state pools are f32
  absl::Status CausalConv1d(const Tensor& x, const Tensor& weight,
                            const Tensor& bias, const Tensor& conv_state,
                            const SsmBatch& batch, bool silu,
                            const Tensor& out) override;
  absl::Status Mamba2Scan(const Tensor& xbc, const Tensor& dt,
                          const Tensor& a_log, const Tensor& dt_bias,
                          const Tensor& d, const Tensor& ssm_state,
                          const SsmBatch& batch, const Mamba2ScanParams& params,
                          const Tensor& y) override;
  absl::Status Mamba1Scan(const Tensor& x, const Tensor& dt, const Tensor& bc,
                          const Tensor& z, const Tensor& a_log,
                          const Tensor& dt_bias, const Tensor& d,
                          const Tensor& ssm_state, const SsmBatch& batch,
                          const Tensor& y) override;

 protected:
  void Free(void* data, size_t num_bytes) override;

 private:
  int device_;
  DType act_dtype_;
  cuda::ElemType elem_type_;
  int num_sms_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  const CublasApi* cublas_api_ = nullptr;  // cuBLAS entry points (dlopen)
  // Pinned host staging for CopyToDevice, [staging_bytes_] bytes, used as two
  // halves in turn; staging_done_[i] is recorded after half i's copy.
  void* staging_ = nullptr;
  size_t staging_bytes_ = 0;
  cudaEvent_t staging_done_[2] = {nullptr, nullptr};
  int staging_next_ = 0;
  // Op scratch (see Scratch()), [scratch_bytes_] bytes, untyped.
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  bool scratch_frozen_ = false;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CUDA_CUDA_BACKEND_IMPL_H_
