// CudaBackend: device, stream, cuBLAS, memory, GEMM and the simple ops. The
// attention and SSM ops are in cuda_attention.cc and cuda_ssm.cc.
#include "engine/backend/cuda/cuda_backend.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cuda/cuda_backend_impl.h"
#include "engine/backend/cuda/elementwise_kernels.h"
#include "engine/backend/cuda/norm_kernels.h"
#include "engine/backend/cuda/rope_kv_kernels.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {

// cuBLAS is loaded (dlopen) when the first CudaBackend is made, not linked:
// a binary of this build then starts, and serves on the CPU, on a machine
// without cuBLAS, and processes that never use the GPU do not pay the
// ~0.2 s it takes to load libcublasLt. Only the entry points used here.
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  // The C entry point (cublas_api.h also has a C++ overload taking a
  // cudaDataType compute type).
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                            int, int, const void*, const void*, cudaDataType, int,
                            const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t,
                            cublasGemmAlgo_t) = nullptr;
};

namespace {

// Pinned staging for host-to-device copies: two halves used in turn, so one
// chunk is copied into pinned memory while the previous one is in flight.
constexpr size_t kStagingBytes = size_t{8} << 20;
constexpr size_t kScratchAlignment = 256;

// This Abseil's string_view is its own type, not std::string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status ShapeError(absl::string_view op, absl::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", detail));
}

// out[r] = src[index[r]] (Embedding and GatherRows). Shapes checked by the caller.
cuda::GatherRowsParams GatherParams(const Tensor& src, const Tensor& index,
                                    const Tensor& out, cuda::ElemType elem) {
  cuda::GatherRowsParams p;
  p.src = src.data;
  p.index = index.as<int32_t>();
  p.out = out.data;
  p.src_rows = src.dim(0);
  p.rows = index.dim(0);
  p.h = src.dim(1);
  p.elem = elem;
  return p;
}

// RmsNorm of x's rows (AddRmsNorm also sets the residual). Shapes checked by
// the caller.
cuda::RmsNormParams NormParams(const Tensor& x, const Tensor& w, float eps,
                               const Tensor& out, cuda::ElemType elem) {
  cuda::RmsNormParams p;
  p.x = x.data;
  p.w = w.data;
  p.out = out.data;
  p.rows = x.dim(0);
  p.h = x.dim(1);
  p.eps = eps;
  p.elem = elem;
  return p;
}

const char* CublasStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
  }
}

absl::StatusOr<CublasApi> OpenCublas() {
  const std::string versioned = absl::StrCat("libcublas.so.", CUBLAS_VER_MAJOR);
  void* lib = dlopen(versioned.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) lib = dlopen("libcublas.so", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot load cuBLAS (", versioned, "): ", err != nullptr ? err : "unknown error",
        "; put the CUDA libraries on the loader path (LD_LIBRARY_PATH)"));
  }
  CublasApi api;
  auto find = [&](const char* name, auto* fn) -> absl::Status {
    void* sym = dlsym(lib, name);
    if (sym == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("cuBLAS (", versioned, ") has no symbol ", name));
    }
    *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(sym);
    return absl::OkStatus();
  };
  HS_RETURN_IF_ERROR(find("cublasCreate_v2", &api.create));
  HS_RETURN_IF_ERROR(find("cublasDestroy_v2", &api.destroy));
  HS_RETURN_IF_ERROR(find("cublasSetStream_v2", &api.set_stream));
  HS_RETURN_IF_ERROR(find("cublasSetMathMode", &api.set_math_mode));
  HS_RETURN_IF_ERROR(find("cublasGemmEx", &api.gemm_ex));
  return api;  // the library stays loaded for the life of the process
}

// Loaded once per process (thread-safe); the error is kept.
absl::StatusOr<const CublasApi*> Cublas() {
  static const absl::StatusOr<CublasApi>* const api =
      new absl::StatusOr<CublasApi>(OpenCublas());
  if (!api->ok()) return api->status();
  return &**api;
}

absl::Status CublasCheck(cublasStatus_t s, absl::string_view what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cuBLAS error in ", what, ": ",
                                          CublasStatusName(s), " (", static_cast<int>(s),
                                          ")"));
}

cudaDataType_t CudaDataType(DType t) {
  switch (t) {
    case DType::kBF16: return CUDA_R_16BF;
    case DType::kF16: return CUDA_R_16F;
    default: return CUDA_R_32F;
  }
}

cuda::ElemType ToElemType(DType t) {
  switch (t) {
    case DType::kBF16: return cuda::ElemType::kBF16;
    case DType::kF16: return cuda::ElemType::kF16;
    default: return cuda::ElemType::kF32;
  }
}

absl::Status CheckNorm(const Tensor& x, const Tensor& w, const Tensor& out,
                       DType act, absl::string_view op) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, act, 2, absl::StrCat(op, " x")));
  HS_RETURN_IF_ERROR(ExpectTensor(w, act, 1, absl::StrCat(op, " w")));
  HS_RETURN_IF_ERROR(ExpectTensor(out, act, 2, absl::StrCat(op, " out")));
  if (w.dim(0) != x.dim(1) || out.dim(0) != x.dim(0) || out.dim(1) != x.dim(1)) {
    return ShapeError(op, absl::StrCat("x ", x.ShapeString(), " w ", w.ShapeString(),
                                       " out ", out.ShapeString()));
  }
  return absl::OkStatus();
}

}  // namespace

// ---- entry points of cuda_backend.h

bool CudaDeviceAvailable(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear it: the process keeps running on the CPU
    if (why != nullptr) {
      *why = absl::StrCat("no usable CUDA device: ", cudaGetErrorName(e), ": ",
                          cudaGetErrorString(e));
    }
    return false;
  }
  if (count == 0) {
    if (why != nullptr) *why = "no usable CUDA device: the driver reports 0 devices";
    return false;
  }
  if (why != nullptr) *why = absl::StrCat(count, " CUDA device(s) present");
  return true;
}

absl::StatusOr<CudaDeviceInfo> QueryCudaDevice(int device) {
  std::string why;
  if (!CudaDeviceAvailable(&why)) return absl::FailedPreconditionError(why);
  cudaDeviceProp prop;
  HS_RETURN_IF_ERROR(CudaBackend::CudaCheck(cudaGetDeviceProperties(&prop, device),
                                            "cudaGetDeviceProperties"));
  CudaDeviceInfo info;
  info.name = prop.name;
  info.compute_capability = prop.major * 10 + prop.minor;
  int previous = 0;
  HS_RETURN_IF_ERROR(CudaBackend::CudaCheck(cudaGetDevice(&previous), "cudaGetDevice"));
  HS_RETURN_IF_ERROR(CudaBackend::CudaCheck(cudaSetDevice(device), "cudaSetDevice"));
  size_t free_bytes = 0, total_bytes = 0;
  const cudaError_t e = cudaMemGetInfo(&free_bytes, &total_bytes);
  cudaSetDevice(previous);
  HS_RETURN_IF_ERROR(CudaBackend::CudaCheck(e, "cudaMemGetInfo"));
  info.total_bytes = total_bytes;
  info.free_bytes = free_bytes;
  return info;
}

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(
    const CudaBackendOptions& options) {
  std::string why;
  if (!CudaDeviceAvailable(&why)) {
    return absl::FailedPreconditionError(absl::StrCat("--device cuda: ", why));
  }
  if (options.act_dtype != DType::kBF16 && options.act_dtype != DType::kF16 &&
      options.act_dtype != DType::kF32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CUDA backend: act dtype must be bf16, f16 or f32, got ",
        Sv(DTypeName(options.act_dtype))));
  }
  auto backend = std::make_unique<CudaBackend>(options);
  HS_RETURN_IF_ERROR(backend->Init());
  return std::unique_ptr<Backend>(std::move(backend));
}

void FreezeCudaScratch(Backend* backend) {
  if (auto* cuda = dynamic_cast<CudaBackend*>(backend)) cuda->FreezeScratch();
}

// ---- CudaBackend: lifetime, errors, scratch

CudaBackend::CudaBackend(const CudaBackendOptions& options)
    : device_(options.device),
      act_dtype_(options.act_dtype),
      elem_type_(ToElemType(options.act_dtype)) {}

CudaBackend::~CudaBackend() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  if (scratch_ != nullptr) cudaFree(scratch_);
  for (cudaEvent_t& e : staging_done_) {
    if (e != nullptr) cudaEventDestroy(e);
  }
  if (staging_ != nullptr) cudaFreeHost(staging_);
  if (cublas_ != nullptr) cublas_api_->destroy(cublas_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

absl::Status CudaBackend::Init() {
  HS_RETURN_IF_ERROR(CudaCheck(cudaSetDevice(device_), "cudaSetDevice"));
  HS_RETURN_IF_ERROR(CudaCheck(
      cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device_),
      "cudaDeviceGetAttribute"));
  HS_RETURN_IF_ERROR(CudaCheck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                               "cudaStreamCreate"));
  HS_ASSIGN_OR_RETURN(cublas_api_, Cublas());
  HS_RETURN_IF_ERROR(CublasCheck(cublas_api_->create(&cublas_), "cublasCreate"));
  HS_RETURN_IF_ERROR(
      CublasCheck(cublas_api_->set_stream(cublas_, stream_), "cublasSetStream"));
  // No TF32 for f32 GEMMs: f32 runs are the parity reference.
  HS_RETURN_IF_ERROR(CublasCheck(cublas_api_->set_math_mode(cublas_, CUBLAS_DEFAULT_MATH),
                                 "cublasSetMathMode"));
  HS_RETURN_IF_ERROR(
      CudaCheck(cudaMallocHost(&staging_, kStagingBytes), "cudaMallocHost (staging)"));
  staging_bytes_ = kStagingBytes;
  for (cudaEvent_t& e : staging_done_) {
    HS_RETURN_IF_ERROR(
        CudaCheck(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate"));
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::CudaCheck(cudaError_t e, std::string_view what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("CUDA error in ", Sv(what), ": ",
                                          cudaGetErrorName(e), ": ",
                                          cudaGetErrorString(e)));
}

absl::StatusOr<void*> CudaBackend::Scratch(size_t num_bytes) {
  if (num_bytes <= scratch_bytes_) return scratch_;
  if (scratch_frozen_) {
    return absl::InternalError(absl::StrFormat(
        "CUDA scratch: an op needs %d bytes but the scratch holds %d and is frozen "
        "after the warm-up step (a step larger than the warm-up?)",
        num_bytes, scratch_bytes_));
  }
  // Work queued earlier may still use the old buffer.
  HS_RETURN_IF_ERROR(CudaCheck(cudaStreamSynchronize(stream_), "Scratch sync"));
  if (scratch_ != nullptr) {
    HS_RETURN_IF_ERROR(CudaCheck(cudaFree(scratch_), "cudaFree (scratch)"));
    scratch_ = nullptr;
    scratch_bytes_ = 0;
  }
  const size_t rounded = (num_bytes + kScratchAlignment - 1) / kScratchAlignment *
                         kScratchAlignment;
  const cudaError_t e = cudaMalloc(&scratch_, rounded);
  if (e != cudaSuccess) {
    cudaGetLastError();
    scratch_ = nullptr;
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate ", rounded, " bytes of GPU memory for op scratch: ",
        cudaGetErrorString(e)));
  }
  scratch_bytes_ = rounded;
  return scratch_;
}

// ---- memory

absl::StatusOr<DeviceBuffer> CudaBackend::Allocate(size_t num_bytes,
                                                   std::string_view pool) {
  void* data = nullptr;
  const cudaError_t e = cudaMalloc(&data, std::max<size_t>(num_bytes, 1));
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    return absl::ResourceExhaustedError(absl::StrFormat(
        "cannot allocate %d bytes of GPU memory for %s: %s (%d of %d bytes free)",
        num_bytes, Sv(pool), cudaGetErrorString(e), free_bytes, total_bytes));
  }
  return DeviceBuffer(this, data, num_bytes);
}

void CudaBackend::Free(void* data, size_t) {
  // cudaFree waits for the device; nothing queued may still use the buffer.
  if (data != nullptr) cudaFree(data);
}

absl::Status CudaBackend::CopyToDevice(const void* host_src, void* device_dst,
                                       size_t num_bytes) {
  const size_t half = staging_bytes_ / 2;
  const char* src = static_cast<const char*>(host_src);
  char* dst = static_cast<char*>(device_dst);
  for (size_t done = 0; done < num_bytes;) {
    const size_t n = std::min(half, num_bytes - done);
    // The half about to be overwritten must have been copied out.
    HS_RETURN_IF_ERROR(CudaCheck(cudaEventSynchronize(staging_done_[staging_next_]),
                                 "CopyToDevice staging wait"));
    char* stage = static_cast<char*>(staging_) + staging_next_ * half;
    std::memcpy(stage, src + done, n);
    HS_RETURN_IF_ERROR(CudaCheck(
        cudaMemcpyAsync(dst + done, stage, n, cudaMemcpyHostToDevice, stream_),
        "CopyToDevice"));
    HS_RETURN_IF_ERROR(CudaCheck(cudaEventRecord(staging_done_[staging_next_], stream_),
                                 "CopyToDevice event"));
    staging_next_ ^= 1;
    done += n;
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::CopyToHost(const void* device_src, void* host_dst,
                                     size_t num_bytes) {
  if (num_bytes == 0) return absl::OkStatus();
  HS_RETURN_IF_ERROR(CudaCheck(cudaMemcpyAsync(host_dst, device_src, num_bytes,
                                               cudaMemcpyDeviceToHost, stream_),
                               "CopyToHost"));
  return CudaCheck(cudaStreamSynchronize(stream_), "CopyToHost sync");
}

absl::Status CudaBackend::CopyOnDevice(const void* src, void* dst, size_t num_bytes) {
  if (num_bytes == 0) return absl::OkStatus();
  return CudaCheck(cudaMemcpyAsync(dst, src, num_bytes, cudaMemcpyDeviceToDevice, stream_),
                   "CopyOnDevice");
}

absl::Status CudaBackend::Zero(const Tensor& t) {
  if (t.numel() == 0) return absl::OkStatus();
  return CudaCheck(cudaMemsetAsync(t.data, 0, t.num_bytes(), stream_), "Zero");
}

absl::Status CudaBackend::Synchronize() {
  return CudaCheck(cudaStreamSynchronize(stream_), "Synchronize");
}

absl::Status CudaBackend::FillUniform(const Tensor& t, uint64_t seed, float lo,
                                      float hi) {
  if (t.dtype != DType::kF32 && t.dtype != DType::kBF16 && t.dtype != DType::kF16) {
    return ShapeError("FillUniform", absl::StrCat("tensor is ", t.ShapeString(),
                                                  ", expected a float dtype"));
  }
  if (!(lo <= hi)) {
    return ShapeError("FillUniform", absl::StrCat("empty range [", lo, ", ", hi, ")"));
  }
  if (t.numel() > 0 && t.data == nullptr) return ShapeError("FillUniform", "tensor has no data");
  cuda::FillUniformParams p;
  p.out = t.data;
  p.n = t.numel();
  p.seed = seed;
  p.lo = lo;
  p.span = hi - lo;
  p.elem = ToElemType(t.dtype);
  return CudaCheck(cuda::LaunchFillUniform(p, stream_), "FillUniform");
}

// ---- ops

absl::Status CudaBackend::Gemm(const Tensor& x, const Tensor& w, const Tensor& bias,
                               const Tensor& y) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, act_dtype_, 2, "Gemm x"));
  HS_RETURN_IF_ERROR(ExpectTensor(w, act_dtype_, 2, "Gemm w"));
  HS_RETURN_IF_ERROR(ExpectTensor(y, act_dtype_, 2, "Gemm y"));
  const int64_t t = x.dim(0), k = x.dim(1), n = w.dim(0);
  if (w.dim(1) != k || y.dim(0) != t || y.dim(1) != n) {
    return ShapeError("Gemm", absl::StrCat("x ", x.ShapeString(), " w ", w.ShapeString(),
                                           " y ", y.ShapeString()));
  }
  if (!bias.empty()) {
    HS_RETURN_IF_ERROR(ExpectTensor(bias, act_dtype_, 1, "Gemm bias"));
    if (bias.dim(0) != n) return ShapeError("Gemm", "bias size != N");
  }
  constexpr int64_t kIntMax = 2147483647;
  if (t > kIntMax || n > kIntMax || k > kIntMax) {
    return ShapeError("Gemm", "a dimension exceeds the int range of cuBLAS");
  }
  if (t == 0 || n == 0) return absl::OkStatus();
  // The bias enters as cuBLAS's C (beta = 1): y = x·wᵀ + bias with one
  // rounding to the output type, the sum accumulated in f32.
  float beta = 0.0f;
  if (!bias.empty()) {
    cuda::BroadcastRowParams b;
    b.row = bias.data;
    b.out = y.data;
    b.rows = t;
    b.n = n;
    b.elem = elem_type_;
    HS_RETURN_IF_ERROR(CudaCheck(cuda::LaunchBroadcastRow(b, stream_), "Gemm bias"));
    beta = 1.0f;
  }
  if (k == 0) return bias.empty() ? Zero(y) : absl::OkStatus();  // cuBLAS needs lda >= 1
  const float alpha = 1.0f;
  // Row-major y[T, N] = x[T, K]·w[N, K]ᵀ is, column-major, yᵀ[N, T] =
  // (w as K×N)ᵀ · (x as K×T).
  const cudaDataType_t type = CudaDataType(act_dtype_);
  return CublasCheck(
      cublas_api_->gemm_ex(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
                   static_cast<int>(t), static_cast<int>(k), &alpha, w.data, type,
                   static_cast<int>(k), x.data, type, static_cast<int>(k), &beta, y.data,
                   type, static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "Gemm");
}

absl::Status CudaBackend::Embedding(const Tensor& ids, const Tensor& table,
                                    const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(ids, DType::kI32, 1, "Embedding ids"));
  HS_RETURN_IF_ERROR(ExpectTensor(table, act_dtype_, 2, "Embedding table"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, act_dtype_, 2, "Embedding out"));
  if (out.dim(0) != ids.dim(0) || out.dim(1) != table.dim(1)) {
    return ShapeError("Embedding", "out shape does not match ids x hidden");
  }
  // Ids live on the device: ranges are checked by the engine (the plan's
  // token ids against the vocabulary); an id out of range gives a zero row.
  return CudaCheck(cuda::LaunchGatherRows(GatherParams(table, ids, out, elem_type_), stream_),
                   "Embedding");
}

absl::Status CudaBackend::RmsNorm(const Tensor& x, const Tensor& w, float eps,
                                  const Tensor& out) {
  HS_RETURN_IF_ERROR(CheckNorm(x, w, out, act_dtype_, "RmsNorm"));
  return CudaCheck(cuda::LaunchRmsNorm(NormParams(x, w, eps, out, elem_type_), stream_),
                   "RmsNorm");
}

absl::Status CudaBackend::AddRmsNorm(const Tensor& residual, const Tensor& x,
                                     const Tensor& w, float eps, const Tensor& out) {
  HS_RETURN_IF_ERROR(CheckNorm(x, w, out, act_dtype_, "AddRmsNorm"));
  HS_RETURN_IF_ERROR(ExpectTensor(residual, act_dtype_, 2, "AddRmsNorm residual"));
  if (residual.dim(0) != x.dim(0) || residual.dim(1) != x.dim(1)) {
    return ShapeError("AddRmsNorm", "residual shape != x shape");
  }
  cuda::RmsNormParams p = NormParams(x, w, eps, out, elem_type_);
  p.residual = residual.data;
  return CudaCheck(cuda::LaunchRmsNorm(p, stream_), "AddRmsNorm");
}

absl::Status CudaBackend::Rope(const Tensor& q, const Tensor& k, const Tensor& positions,
                               const RopeParams& rope) {
  HS_RETURN_IF_ERROR(ExpectTensor(q, act_dtype_, 3, "Rope q"));
  HS_RETURN_IF_ERROR(ExpectTensor(k, act_dtype_, 3, "Rope k"));
  HS_RETURN_IF_ERROR(ExpectTensor(positions, DType::kI32, 1, "Rope positions"));
  HS_RETURN_IF_ERROR(ExpectTensor(rope.inv_freq, DType::kF32, 1, "Rope inv_freq"));
  const int64_t t = q.dim(0), head_dim = q.dim(2);
  const int64_t half = rope.rotary_dim / 2;
  if (k.dim(0) != t || k.dim(2) != head_dim || positions.dim(0) != t ||
      rope.rotary_dim % 2 != 0 || rope.rotary_dim > head_dim || rope.rotary_dim > 1024 ||
      rope.inv_freq.dim(0) != half) {
    return ShapeError("Rope", absl::StrCat("q ", q.ShapeString(), " k ", k.ShapeString(),
                                           " positions ", positions.ShapeString(),
                                           " rotary_dim ", rope.rotary_dim));
  }
  cuda::RopeParams p;
  p.q = q.data;
  p.k = k.data;
  p.positions = positions.as<int32_t>();
  p.inv_freq = rope.inv_freq.as<float>();
  p.tokens = t;
  p.num_heads = q.dim(1);
  p.num_kv_heads = k.dim(1);
  p.head_dim = head_dim;
  p.rotary_dim = rope.rotary_dim;
  p.attention_scaling = rope.attention_scaling;
  p.elem = elem_type_;
  return CudaCheck(cuda::LaunchRope(p, stream_), "Rope");
}

absl::Status CudaBackend::KvWrite(const Tensor& k, const Tensor& v,
                                  const Tensor& slot_mapping, const Tensor& k_cache,
                                  const Tensor& v_cache) {
  HS_RETURN_IF_ERROR(ExpectTensor(k, act_dtype_, 3, "KvWrite k"));
  HS_RETURN_IF_ERROR(ExpectTensor(v, act_dtype_, 3, "KvWrite v"));
  HS_RETURN_IF_ERROR(ExpectTensor(slot_mapping, DType::kI32, 1, "KvWrite slots"));
  HS_RETURN_IF_ERROR(ExpectTensor(k_cache, act_dtype_, 4, "KvWrite k_cache"));
  HS_RETURN_IF_ERROR(ExpectTensor(v_cache, act_dtype_, 4, "KvWrite v_cache"));
  const int64_t t = k.dim(0);
  const int64_t row = k.row_size();
  if (v.dim(0) != t || v.row_size() != row || slot_mapping.dim(0) != t ||
      k_cache.dim(2) * k_cache.dim(3) != row || v_cache.numel() != k_cache.numel()) {
    return ShapeError("KvWrite", absl::StrCat("k ", k.ShapeString(), " v ",
                                              v.ShapeString(), " cache ",
                                              k_cache.ShapeString()));
  }
  // Slots live on the device: the engine derives them from a validated plan;
  // a slot out of range is skipped.
  cuda::KvWriteParams p;
  p.k = k.data;
  p.v = v.data;
  p.slot_mapping = slot_mapping.as<int32_t>();
  p.k_cache = k_cache.data;
  p.v_cache = v_cache.data;
  p.tokens = t;
  p.row = row;
  p.num_slots = k_cache.dim(0) * k_cache.dim(1);
  p.elem = elem_type_;
  return CudaCheck(cuda::LaunchKvWrite(p, stream_), "KvWrite");
}

absl::Status CudaBackend::GatedAct(const Tensor& gate_up, Activation act, const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(gate_up, act_dtype_, 2, "GatedAct gate_up"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, act_dtype_, 2, "GatedAct out"));
  const int64_t t = out.dim(0), inter = out.dim(1);
  if (gate_up.dim(0) != t || gate_up.dim(1) != 2 * inter) {
    return ShapeError("GatedAct", absl::StrCat("gate_up ", gate_up.ShapeString(), " out ",
                                               out.ShapeString()));
  }
  cuda::GatedActParams p;
  p.gate_up = gate_up.data;
  p.out = out.data;
  p.rows = t;
  p.inter = inter;
  p.act = static_cast<int>(act);
  p.elem = elem_type_;
  return CudaCheck(cuda::LaunchGatedAct(p, stream_), "GatedAct");
}

absl::Status CudaBackend::GatherRows(const Tensor& x, const Tensor& rows,
                                     const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, act_dtype_, 2, "GatherRows x"));
  HS_RETURN_IF_ERROR(ExpectTensor(rows, DType::kI32, 1, "GatherRows rows"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, act_dtype_, 2, "GatherRows out"));
  if (out.dim(0) != rows.dim(0) || out.dim(1) != x.dim(1)) {
    return ShapeError("GatherRows", "out shape != [rows, hidden]");
  }
  return CudaCheck(cuda::LaunchGatherRows(GatherParams(x, rows, out, elem_type_), stream_),
                   "GatherRows");
}

absl::Status CudaBackend::GatedRmsNorm(const Tensor& x, const Tensor& z, const Tensor& w,
                                       int64_t group_size, float eps, const Tensor& out) {
  HS_RETURN_IF_ERROR(ExpectTensor(x, act_dtype_, 2, "GatedRmsNorm x"));
  HS_RETURN_IF_ERROR(ExpectTensor(z, act_dtype_, 2, "GatedRmsNorm z"));
  HS_RETURN_IF_ERROR(ExpectTensor(w, act_dtype_, 1, "GatedRmsNorm w"));
  HS_RETURN_IF_ERROR(ExpectTensor(out, act_dtype_, 2, "GatedRmsNorm out"));
  const int64_t t = x.dim(0), dim = x.dim(1);
  if (z.dim(0) != t || z.dim(1) != dim || w.dim(0) != dim || out.dim(0) != t ||
      out.dim(1) != dim || group_size <= 0 || dim % group_size != 0 ||
      dim / group_size > 65535) {
    return ShapeError("GatedRmsNorm",
                      absl::StrCat("x ", x.ShapeString(), " z ", z.ShapeString(), " w ",
                                   w.ShapeString(), " out ", out.ShapeString(),
                                   " group_size ", group_size));
  }
  cuda::GatedRmsNormParams p;
  p.x = x.data;
  p.z = z.data;
  p.w = w.data;
  p.out = out.data;
  p.rows = t;
  p.d = dim;
  p.group_size = group_size;
  p.eps = eps;
  p.elem = elem_type_;
  return CudaCheck(cuda::LaunchGatedRmsNorm(p, stream_), "GatedRmsNorm");
}

}  // namespace hybridserve::engine
