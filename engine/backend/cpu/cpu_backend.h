// The CPU backend: the reference implementation of every op, in f32, with
// OpenMP threads. Every output element is computed in one order that depends
// on nothing but its own row's inputs: not on the other rows of the step, how
// a sequence's tokens were split into steps, or the thread count (equality
// class (b)). GEMMs and attention's dot products use cpu_gemm.h's fixed lane
// order; recurrent layers run the per-token recurrence for prefill and decode.
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_BACKEND_CPU_CPU_BACKEND_H_
#define HYBRIDSERVE_ENGINE_BACKEND_CPU_CPU_BACKEND_H_

#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/backend/backend.h"
#include "engine/backend/cpu/cpu_gemm.h"

namespace hybridserve::engine {

struct CpuBackendOptions {
  // Threads for ops and BLAS; 0 = all cores.
  int num_threads = 0;
};

// Not final: tests derive from it to fake a faulty backend (one op wrong).
class CpuBackend : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options);

  std::string_view name() const override { return "cpu"; }
  DType act_dtype() const override { return DType::kF32; }
  int num_threads() const { return num_threads_; }

  absl::StatusOr<DeviceBuffer> Allocate(size_t num_bytes,
                                        std::string_view pool) override;
  absl::Status CopyToDevice(const void* host_src, void* device_dst,
                            size_t num_bytes) override;
  absl::Status CopyOnDevice(const void* src, void* dst, size_t num_bytes) override;
  absl::Status CopyToHost(const void* device_src, void* host_dst,
                          size_t num_bytes) override;
  absl::Status Zero(const Tensor& t) override;
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::Status FillUniform(const Tensor& t, uint64_t seed, float lo,
                           float hi) override;

  // y = x · wᵀ + bias through GemmF32 (cpu_gemm.h): each element's sum has
  // one order, whatever the number of rows or threads.
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
  absl::Status PagedAttention(const Tensor& q, const Tensor& k_cache,
                              const Tensor& v_cache,
                              const AttentionBatch& batch, float scale,
                              const Tensor& out) override;
  absl::Status GatedAct(const Tensor& gate_up, Activation act, const Tensor& out) override;
  absl::Status GatherRows(const Tensor& x, const Tensor& rows,
                          const Tensor& out) override;
  // SSM ops (cpu_ssm.cc): each (sequence, channel) or (sequence, head) is
  // computed on its own, token by token, so results do not depend on the
  // batch. The scan is the plain sequential recurrence for prefill and decode
  // alike.
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
  absl::Status GatedRmsNorm(const Tensor& x, const Tensor& z, const Tensor& w,
                            int64_t group_size, float eps,
                            const Tensor& out) override;

  // The instruction set the GEMM and dot-product kernels run on.
  CpuIsa isa() const { return isa_; }

 protected:
  void Free(void* data, size_t num_bytes) override;

 private:
  int num_threads_;
  CpuIsa isa_;
};

// Ops run their loops on one thread below this much work (elements or
// multiply-adds): for tiny steps a parallel region costs more than it saves,
// and far more on a loaded machine.
inline constexpr int64_t kParallelMinWork = int64_t{1} << 15;

// Shape checks shared by the CPU ops (and usable by other backends).
// InvalidArgument naming `what` unless t is f32/i32 (`dtype`) with `rank`.
absl::Status ExpectTensor(const Tensor& t, DType dtype, int rank,
                          absl::string_view what);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_BACKEND_CPU_CPU_BACKEND_H_
