// A CPU stand-in for the cuBLAS entry points the CUDA backend loads
// (include/cublas_v2.h), built as a shared library named like the real one so
// that the backend's dlopen path runs unchanged under the emulator.
//
// cublasGemmEx follows cuBLAS's contract: column-major matrices, C (m x n) =
// alpha * op(A) * op(B) + beta * C with op(A) m x k, op(B) k x n and leading
// dimensions checked as cuBLAS checks them (INVALID_VALUE otherwise); f32,
// bf16 or f16 operands of one type, f32 compute (CUBLAS_COMPUTE_32F) with the
// products summed in f32 (eight partial sums over k), alpha and beta f32, and
// the result rounded once to C's type. A handle must have a non-default
// stream set before a GEMM (the backend always sets one); the GEMM is queued
// on it (emu::Stream) like any kernel. Everything else is NOT_SUPPORTED.
#include <cublas_v2.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

struct Handle {
  cudaStream_t stream = nullptr;  // set by cublasSetStream_v2
};

bool KnownType(cudaDataType t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }

float Load(const void* base, cudaDataType t, int64_t i) {
  switch (t) {
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
    case CUDA_R_16F: return __half2float(static_cast<const __half*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}

void Store(void* base, cudaDataType t, int64_t i, float v) {
  switch (t) {
    case CUDA_R_16BF: static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v); break;
    case CUDA_R_16F: static_cast<__half*>(base)[i] = __float2half_rn(v); break;
    default: static_cast<float*>(base)[i] = v; break;
  }
}

// C = a_scale * op(A) * op(B) + b_scale * C, arguments already checked.
void Gemm(cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
          float a_scale, const void* A, cudaDataType Atype, int lda, const void* B,
          cudaDataType Btype, int ldb, float b_scale, void* C, cudaDataType Ctype, int ldc) {
  // op(A) as m rows of k and op(B) as n columns of k, in f32.
  std::vector<float> a(static_cast<size_t>(m) * k), b(static_cast<size_t>(n) * k);
  for (int i = 0; i < m; ++i) {
    for (int l = 0; l < k; ++l) {
      const int64_t at = transa == CUBLAS_OP_N ? i + int64_t{l} * lda : l + int64_t{i} * lda;
      a[static_cast<size_t>(i) * k + l] = Load(A, Atype, at);
    }
  }
  for (int j = 0; j < n; ++j) {
    for (int l = 0; l < k; ++l) {
      const int64_t at = transb == CUBLAS_OP_N ? l + int64_t{j} * ldb : j + int64_t{l} * ldb;
      b[static_cast<size_t>(j) * k + l] = Load(B, Btype, at);
    }
  }
  for (int j = 0; j < n; ++j) {
    const float* bj = &b[static_cast<size_t>(j) * k];
    for (int i = 0; i < m; ++i) {
      const float* ai = &a[static_cast<size_t>(i) * k];
      // Eight f32 partial sums (cuBLAS's order is unspecified too).
      float part[8] = {};
      int l = 0;
      for (; l + 8 <= k; l += 8) {
        for (int u = 0; u < 8; ++u) part[u] += ai[l + u] * bj[l + u];
      }
      for (; l < k; ++l) part[0] += ai[l] * bj[l];
      const float sum = ((part[0] + part[1]) + (part[2] + part[3])) +
                        ((part[4] + part[5]) + (part[6] + part[7]));
      const int64_t ic = i + int64_t{j} * ldc;
      // beta == 0: C is not read (it may hold anything, NaN included).
      const float prior = b_scale == 0.0f ? 0.0f : b_scale * Load(C, Ctype, ic);
      Store(C, Ctype, ic, a_scale * sum + prior);
    }
  }
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = reinterpret_cast<cublasHandle_t>(new Handle);
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete reinterpret_cast<Handle*>(handle);
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasSetStream_v2(cublasHandle_t handle,
                                                                         cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  reinterpret_cast<Handle*>(handle)->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasSetMathMode(cublasHandle_t handle,
                                                                        cublasMath_t) {
  // f32 GEMMs here are plain f32 whatever the mode (no TF32).
  return handle == nullptr ? CUBLAS_STATUS_NOT_INITIALIZED : CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasGemmEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
    int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
    cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
    cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  const auto* h = reinterpret_cast<const Handle*>(handle);
  // No stream set, or the default one: that would run the GEMM at once from
  // this library, whose copy of the emulator's hooks cannot open the
  // protected device memory. The backend always sets its own stream.
  if (h->stream == nullptr) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (compute != CUBLAS_COMPUTE_32F || !KnownType(Atype) || Atype != Btype ||
      !KnownType(Ctype) || (transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) ||
      (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (Atype != CUDA_R_32F && Ctype != Atype && Ctype != CUDA_R_32F) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  // cuBLAS's argument checks.
  const int rows_a = transa == CUBLAS_OP_N ? m : k;
  const int rows_b = transb == CUBLAS_OP_N ? k : n;
  if (m < 0 || n < 0 || k < 0 || lda < (rows_a > 1 ? rows_a : 1) ||
      ldb < (rows_b > 1 ? rows_b : 1) || ldc < (m > 1 ? m : 1) || alpha == nullptr ||
      beta == nullptr) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  // alpha and beta are read now (host pointer mode); the product runs when
  // the stream reaches it.
  const float a_scale = *static_cast<const float*>(alpha);
  const float b_scale = *static_cast<const float*>(beta);
  emu::Enqueue(h->stream, [=] {
    Gemm(transa, transb, m, n, k, a_scale, A, Atype, lda, B, Btype, ldb, b_scale, C, Ctype, ldc);
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
