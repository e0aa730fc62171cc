// The CUDA runtime's host API as the CUDA backend's own C++ uses it
// (engine/backend/cuda/*.cc), on the CPU: one emulated device whose memory is
// host memory. Everything is synchronous: a kernel launch runs to completion
// before it returns (emu_cuda.h), so streams and events only record that they
// exist, and an "async" copy or memset is done when it returns.
//
// The device: "EMU" with compute capability 9.0, 132 SMs, and
// emu::device_total_bytes of memory (16 GiB unless a test changes it before
// the first allocation); cudaMalloc fails with cudaErrorMemoryAllocation past
// that, and cudaMemGetInfo reports what is left. Allocations are 256-byte
// aligned heap blocks of exactly the asked size, so ASan reports a kernel or
// copy that runs past one. cudaFree of a pointer cudaMalloc did not return
// aborts (the device would fail too, less clearly).
#pragma once
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "emu_cuda.h"

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
constexpr unsigned cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDisableTiming = 2;
typedef struct EmuEvent* cudaEvent_t;

// library_types.h
typedef enum cudaDataType_t {
  CUDA_R_32F = 0,
  CUDA_R_16F = 2,
  CUDA_R_16BF = 14,
} cudaDataType;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major;
  int minor;
  int multiProcessorCount;
};

namespace emu {
inline size_t device_total_bytes = size_t{16} << 30;
inline std::mutex memory_mu;
inline std::unordered_map<void*, size_t>* allocations = new std::unordered_map<void*, size_t>;
inline size_t allocated_bytes = 0;
// An event holds the host time it was last recorded at (work is synchronous,
// so that is when everything queued before it finished).
struct EventTag {
  std::chrono::steady_clock::time_point recorded;
  bool was_recorded = false;
};
}  // namespace emu

inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : cudaErrorInvalidDevice;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "EMU (CPU emulator of one sm_90 device)");
  prop->totalGlobalMem = emu::device_total_bytes;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  return cudaSuccess;
}
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    default: return "cudaErrorUnknown";
  }
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    default: return "unknown error";
  }
}

inline cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  std::lock_guard<std::mutex> lock(emu::memory_mu);
  *ptr = nullptr;
  if (bytes == 0 || bytes > emu::device_total_bytes - emu::allocated_bytes) {
    emu::last_error = cudaErrorMemoryAllocation;
    return cudaErrorMemoryAllocation;
  }
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (p == nullptr) {
    emu::last_error = cudaErrorMemoryAllocation;
    return cudaErrorMemoryAllocation;
  }
  (*emu::allocations)[p] = bytes;
  emu::allocated_bytes += bytes;
  *ptr = p;
  return cudaSuccess;
}
template <typename T> inline cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
inline cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  std::lock_guard<std::mutex> lock(emu::memory_mu);
  auto it = emu::allocations->find(p);
  if (it == emu::allocations->end()) {
    std::fprintf(stderr, "EMU: cudaFree of %p, which cudaMalloc did not return\n", p);
    std::abort();
  }
  emu::allocated_bytes -= it->second;
  emu::allocations->erase(it);
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(emu::memory_mu);
  *total_bytes = emu::device_total_bytes;
  *free_bytes = emu::device_total_bytes - emu::allocated_bytes;
  return cudaSuccess;
}
inline cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  *ptr = std::malloc(bytes);
  return *ptr != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}

inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                                   cudaStream_t = nullptr) {
  if (bytes > 0 && (dst == nullptr || src == nullptr)) return cudaErrorInvalidValue;
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t = nullptr) {
  if (bytes > 0 && dst == nullptr) return cudaErrorInvalidValue;
  std::memset(dst, value, bytes);
  return cudaSuccess;
}

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  *stream = new int(0);
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, 0);
}
inline cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete static_cast<int*>(stream);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  *event = reinterpret_cast<cudaEvent_t>(new emu::EventTag);
  return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }
inline cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete reinterpret_cast<emu::EventTag*>(event);
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t = nullptr) {
  if (event == nullptr) return cudaErrorInvalidValue;
  auto* e = reinterpret_cast<emu::EventTag*>(event);
  e->recorded = std::chrono::steady_clock::now();
  e->was_recorded = true;
  return cudaSuccess;
}
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
  if (start == nullptr || stop == nullptr) return cudaErrorInvalidValue;
  const auto* a = reinterpret_cast<const emu::EventTag*>(start);
  const auto* b = reinterpret_cast<const emu::EventTag*>(stop);
  if (!a->was_recorded || !b->was_recorded) return cudaErrorInvalidValue;
  *ms = std::chrono::duration<float, std::milli>(b->recorded - a->recorded).count();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event != nullptr ? cudaSuccess : cudaErrorInvalidValue;
}
