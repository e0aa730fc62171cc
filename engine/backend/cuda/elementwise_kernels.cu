#include "engine/backend/cuda/elementwise_kernels.h"

#include "engine/backend/fill_uniform.h"

namespace hybridserve::engine::cuda {
namespace {

constexpr int kRowThreads = 256;

// One block per output row.
template <typename T>
__global__ void GatherRowsKernel(const T* __restrict__ src,
                                 const int32_t* __restrict__ index,
                                 T* __restrict__ out, int64_t src_rows,
                                 int64_t h) {
  const int64_t r = blockIdx.x;
  const int64_t i = index[r];
  T* o = out + r * h;
  if (i < 0 || i >= src_rows) {
    for (int64_t j = threadIdx.x; j < h; j += blockDim.x) o[j] = FromFloat<T>(0.0f);
    return;
  }
  const T* s = src + i * h;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) o[j] = s[j];
}

// The CPU twin is Activate in engine/backend/cpu/cpu_backend.cc.
__device__ __forceinline__ float Activate(float x, int act) {
  if (act == 1) {  // gelu, tanh approximation
    const float cube = x * x * x;
    const float inner = 0.7978845608028654f * (x + 0.044715f * cube);
    return 0.5f * x * (1.0f + tanhf(inner));
  }
  if (act == 2) {  // relu²
    const float r = x > 0.0f ? x : 0.0f;
    return r * r;
  }
  return x / (1.0f + expf(-x));  // silu
}

template <typename T>
__global__ void GatedActKernel(const T* __restrict__ gate_up, T* __restrict__ out,
                               int64_t inter, int act) {
  const int64_t r = blockIdx.x;
  const T* g = gate_up + r * 2 * inter;
  const T* u = g + inter;
  T* o = out + r * inter;
  for (int64_t j = threadIdx.x; j < inter; j += blockDim.x) {
    o[j] = FromFloat<T>(Activate(ToFloat(g[j]), act) * ToFloat(u[j]));
  }
}

template <typename T>
__global__ void BroadcastRowKernel(const T* __restrict__ row, T* __restrict__ out,
                                   int64_t n) {
  T* o = out + static_cast<int64_t>(blockIdx.x) * n;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) o[j] = row[j];
}

template <typename T>
__global__ void FillUniformKernel(T* __restrict__ out, int64_t n, uint64_t seed,
                                  float lo, float span) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride) {
    const float u = FillUniformUnit(seed, static_cast<uint64_t>(i));
    out[i] = FromFloat<T>(__fadd_rn(lo, __fmul_rn(span, u)));
  }
}

template <template <typename> class Launch, typename P>
cudaError_t Dispatch(ElemType elem, const P& p, cudaStream_t stream) {
  switch (elem) {
    case ElemType::kBF16:
      return Launch<__nv_bfloat16>::Run(p, stream);
    case ElemType::kF16:
      return Launch<__half>::Run(p, stream);
    default:
      return Launch<float>::Run(p, stream);
  }
}

template <typename T>
struct GatherLaunch {
  static cudaError_t Run(const GatherRowsParams& p, cudaStream_t stream) {
    GatherRowsKernel<T><<<static_cast<unsigned int>(p.rows), kRowThreads, 0, stream>>>(
        static_cast<const T*>(p.src), p.index, static_cast<T*>(p.out), p.src_rows, p.h);
    return cudaGetLastError();
  }
};

template <typename T>
struct GatedActLaunch {
  static cudaError_t Run(const GatedActParams& p, cudaStream_t stream) {
    GatedActKernel<T><<<static_cast<unsigned int>(p.rows), kRowThreads, 0, stream>>>(
        static_cast<const T*>(p.gate_up), static_cast<T*>(p.out), p.inter, p.act);
    return cudaGetLastError();
  }
};

template <typename T>
struct BroadcastLaunch {
  static cudaError_t Run(const BroadcastRowParams& p, cudaStream_t stream) {
    BroadcastRowKernel<T><<<static_cast<unsigned int>(p.rows), kRowThreads, 0, stream>>>(
        static_cast<const T*>(p.row), static_cast<T*>(p.out), p.n);
    return cudaGetLastError();
  }
};

template <typename T>
struct FillLaunch {
  static cudaError_t Run(const FillUniformParams& p, cudaStream_t stream) {
    constexpr int kThreads = 256;
    int64_t blocks = (p.n + kThreads - 1) / kThreads;
    if (blocks > 65536) blocks = 65536;  // grid-stride beyond this
    FillUniformKernel<T><<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(
        static_cast<T*>(p.out), p.n, p.seed, p.lo, p.span);
    return cudaGetLastError();
  }
};

}  // namespace

cudaError_t LaunchGatherRows(const GatherRowsParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.h == 0) return cudaSuccess;
  return Dispatch<GatherLaunch>(p.elem, p, stream);
}

cudaError_t LaunchGatedAct(const GatedActParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.inter == 0) return cudaSuccess;
  return Dispatch<GatedActLaunch>(p.elem, p, stream);
}

cudaError_t LaunchBroadcastRow(const BroadcastRowParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.n == 0) return cudaSuccess;
  return Dispatch<BroadcastLaunch>(p.elem, p, stream);
}

cudaError_t LaunchFillUniform(const FillUniformParams& p, cudaStream_t stream) {
  if (p.n == 0) return cudaSuccess;
  return Dispatch<FillLaunch>(p.elem, p, stream);
}

}  // namespace hybridserve::engine::cuda
