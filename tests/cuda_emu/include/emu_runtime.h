// The CUDA runtime's host API as the CUDA backend's own C++ uses it
// (engine/backend/cuda/*.cc), on the CPU: one emulated device whose memory is
// host memory.
//
// The device: "EMU" with compute capability 9.0, 132 SMs, and
// emu::device_total_bytes of memory (16 GiB unless a test changes it before
// the first allocation); cudaMalloc fails with cudaErrorMemoryAllocation past
// that, and cudaMemGetInfo reports what is left. cudaFree of a pointer
// cudaMalloc did not return aborts.
//
// Asynchrony: work queued on a stream (kernels, async copies and memsets,
// cuBLAS GEMMs, event records) runs only when the host waits for it (see
// emu::Stream in emu_cuda.h): cudaStreamSynchronize, cudaEventSynchronize (up
// to the event), cudaMemcpyAsync into pageable host memory (synchronous in
// CUDA too), cudaFree / cudaFreeHost / cudaDeviceSynchronize (implicit device
// synchronization). A copy from pageable host memory reads its source at the
// call, as CUDA's staged copy does; a copy from or to pinned memory
// (cudaMallocHost) touches it only when it runs, so reusing a pinned buffer
// before its copy ran shows up.
//
// Device memory is not host memory: outside queued work it is mapped
// PROT_NONE, and host code that reads or writes it stops with "EMU: host code
// touched device memory" and a backtrace (a crash or garbage on a GPU). In
// ASan builds allocations are instead exact-size heap blocks, unprotected, so
// that ASan reports kernels and copies that run past one.
#pragma once
#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

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
constexpr int cudaErrorNotReady = 600;
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

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kProtectDeviceMemory = false;
#else
constexpr bool kProtectDeviceMemory = true;
#endif

inline size_t device_total_bytes = size_t{16} << 30;
inline std::recursive_mutex memory_mu;
struct Block {
  size_t bytes;   // asked for
  size_t mapped;  // mapped (a multiple of the page size) when protected
};
inline std::map<char*, Block>* device_blocks = new std::map<char*, Block>;
inline std::map<char*, Block>* pinned_blocks = new std::map<char*, Block>;
inline size_t allocated_bytes = 0;
inline int device_open = 0;  // > 0 while queued work runs

// The block of `blocks` holding [p, p + n), or end().
inline std::map<char*, Block>::const_iterator Find(const std::map<char*, Block>& blocks,
                                                   const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  auto it = blocks.upper_bound(const_cast<char*>(c));
  if (it == blocks.begin()) return blocks.end();
  --it;
  return c + n <= it->first + it->second.bytes ? it : blocks.end();
}
inline bool IsDevice(const void* p, size_t n) {
  std::lock_guard<std::recursive_mutex> lock(memory_mu);
  return Find(*device_blocks, p, n) != device_blocks->end();
}
inline bool IsPinned(const void* p, size_t n) {
  std::lock_guard<std::recursive_mutex> lock(memory_mu);
  return Find(*pinned_blocks, p, n) != pinned_blocks->end();
}

inline void ProtectAll(int prot) {
  if (!kProtectDeviceMemory) return;
  for (const auto& [p, b] : *device_blocks) mprotect(p, b.mapped, prot);
}
inline void OpenDevice() {
  std::lock_guard<std::recursive_mutex> lock(memory_mu);
  if (device_open++ == 0) ProtectAll(PROT_READ | PROT_WRITE);
}
inline void CloseDevice() {
  std::lock_guard<std::recursive_mutex> lock(memory_mu);
  if (--device_open == 0) ProtectAll(PROT_NONE);
}

// SIGSEGV on a protected device block: say so, with a backtrace.
inline struct sigaction previous_segv;
inline void OnSegv(int sig, siginfo_t* info, void* ctx) {
  const char* addr = static_cast<const char*>(info->si_addr);
  bool device = false;
  for (const auto& [p, b] : *device_blocks) {
    if (addr >= p && addr < p + b.mapped) device = true;
  }
  if (device) {
    char msg[160];
    const int len = snprintf(msg, sizeof(msg),
                             "EMU: host code touched device memory at %p (outside queued "
                             "device work); backtrace:\n", info->si_addr);
    (void)!write(2, msg, len);
    void* frames[64];
    backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
    abort();
  }
  sigaction(SIGSEGV, &previous_segv, nullptr);
  (void)ctx;
  raise(sig);
}
inline void InstallSegvHandler() {
  static const bool installed = [] {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = OnSegv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
    before_device_work = OpenDevice;
    after_device_work = CloseDevice;
    return true;
  }();
  (void)installed;
}

// An event: recorded (by the host) and complete once the stream ran up to it.
struct EventTag {
  Stream* stream = nullptr;
  bool recorded = false;
  bool complete = false;
  std::chrono::steady_clock::time_point when;
};
inline void DrainUntil(Stream* s, const bool* done) {
  while (!*done && s->next < s->ops.size()) Drain(s, s->next);
}

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
    case cudaErrorNotReady: return "cudaErrorNotReady";
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
    case cudaErrorNotReady: return "device not ready";
    default: return "unknown error";
  }
}

inline cudaError_t cudaDeviceSynchronize() {
  emu::DrainAll();
  return cudaSuccess;
}

inline cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(emu::memory_mu);
  emu::InstallSegvHandler();
  *ptr = nullptr;
  if (bytes == 0 || bytes > emu::device_total_bytes - emu::allocated_bytes) {
    emu::last_error = cudaErrorMemoryAllocation;
    return cudaErrorMemoryAllocation;
  }
  emu::Block b{bytes, bytes};
  void* p = nullptr;
  if (emu::kProtectDeviceMemory) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    b.mapped = (bytes + page - 1) / page * page;
    p = mmap(nullptr, b.mapped, emu::device_open > 0 ? PROT_READ | PROT_WRITE : PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) p = nullptr;
  } else {
    p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  }
  if (p == nullptr) {
    emu::last_error = cudaErrorMemoryAllocation;
    return cudaErrorMemoryAllocation;
  }
  (*emu::device_blocks)[static_cast<char*>(p)] = b;
  emu::allocated_bytes += bytes;
  *ptr = p;
  return cudaSuccess;
}
template <typename T> inline cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
inline cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  emu::DrainAll();  // cudaFree synchronizes the device
  std::lock_guard<std::recursive_mutex> lock(emu::memory_mu);
  auto it = emu::device_blocks->find(static_cast<char*>(p));
  if (it == emu::device_blocks->end()) {
    std::fprintf(stderr, "EMU: cudaFree of %p, which cudaMalloc did not return\n", p);
    std::abort();
  }
  emu::allocated_bytes -= it->second.bytes;
  if (emu::kProtectDeviceMemory) {
    munmap(p, it->second.mapped);
  } else {
    std::free(p);
  }
  emu::device_blocks->erase(it);
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::recursive_mutex> lock(emu::memory_mu);
  *total_bytes = emu::device_total_bytes;
  *free_bytes = emu::device_total_bytes - emu::allocated_bytes;
  return cudaSuccess;
}
inline cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(emu::memory_mu);
  *ptr = std::malloc(bytes);
  if (*ptr == nullptr) return cudaErrorMemoryAllocation;
  (*emu::pinned_blocks)[static_cast<char*>(*ptr)] = emu::Block{bytes, bytes};
  return cudaSuccess;
}
inline cudaError_t cudaFreeHost(void* p) {
  if (p == nullptr) return cudaSuccess;
  emu::DrainAll();
  std::lock_guard<std::recursive_mutex> lock(emu::memory_mu);
  if (emu::pinned_blocks->erase(static_cast<char*>(p)) == 0) {
    std::fprintf(stderr, "EMU: cudaFreeHost of %p, which cudaMallocHost did not return\n", p);
    std::abort();
  }
  std::free(p);
  return cudaSuccess;
}

inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t stream = nullptr) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return cudaErrorInvalidValue;
  const bool src_device = emu::IsDevice(src, bytes);
  const bool dst_device = emu::IsDevice(dst, bytes);
  // The kind must match the pointers (cudaMemcpyDefault: whatever they are).
  const bool want_src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const bool want_dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if (kind != cudaMemcpyDefault &&
      (src_device != want_src_device || dst_device != want_dst_device)) {
    std::fprintf(stderr, "EMU: cudaMemcpyAsync kind %d does not match the pointers (src %s, dst %s)\n",
                 static_cast<int>(kind), src_device ? "device" : "host",
                 dst_device ? "device" : "host");
    return cudaErrorInvalidValue;
  }
  auto* s = static_cast<emu::Stream*>(stream);
  if (!dst_device && !src_device) {
    std::memmove(dst, src, bytes);
  } else if (!dst_device && !emu::IsPinned(dst, bytes)) {
    // Into pageable memory: synchronous.
    if (s != nullptr) emu::Drain(s);
    emu::RunNow([=] { std::memmove(dst, src, bytes); });
  } else if (!src_device && !emu::IsPinned(src, bytes)) {
    // From pageable memory: read now, written in stream order.
    auto copy = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                    static_cast<const char*>(src) + bytes);
    emu::Enqueue(stream, [=] { std::memcpy(dst, copy->data(), bytes); });
  } else {
    emu::Enqueue(stream, [=] { std::memmove(dst, src, bytes); });
  }
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream = nullptr) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || !emu::IsDevice(dst, bytes)) return cudaErrorInvalidValue;
  emu::Enqueue(stream, [=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  emu::InstallSegvHandler();
  auto* s = new emu::Stream;
  emu::all_streams->push_back(s);
  *stream = s;
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, 0);
}
inline cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  auto* s = static_cast<emu::Stream*>(stream);
  if (s == nullptr) return cudaErrorInvalidValue;
  emu::Drain(s);  // queued work still completes
  auto& all = *emu::all_streams;
  all.erase(std::remove(all.begin(), all.end(), s), all.end());
  delete s;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (stream != nullptr) emu::Drain(static_cast<emu::Stream*>(stream));
  return cudaSuccess;
}

inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  *event = reinterpret_cast<cudaEvent_t>(new emu::EventTag);
  return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }
inline cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete reinterpret_cast<emu::EventTag*>(event);
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr) {
  if (event == nullptr) return cudaErrorInvalidValue;
  auto* e = reinterpret_cast<emu::EventTag*>(event);
  e->stream = static_cast<emu::Stream*>(stream);
  e->recorded = true;
  e->complete = false;
  emu::Enqueue(stream, [e] {
    e->complete = true;
    e->when = std::chrono::steady_clock::now();
  });
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (event == nullptr) return cudaErrorInvalidValue;
  auto* e = reinterpret_cast<emu::EventTag*>(event);
  if (e->recorded && e->stream != nullptr) emu::DrainUntil(e->stream, &e->complete);
  return cudaSuccess;
}
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
  if (start == nullptr || stop == nullptr) return cudaErrorInvalidValue;
  const auto* a = reinterpret_cast<const emu::EventTag*>(start);
  const auto* b = reinterpret_cast<const emu::EventTag*>(stop);
  if (!a->complete || !b->complete) return cudaErrorNotReady;
  *ms = std::chrono::duration<float, std::milli>(b->when - a->when).count();
  return cudaSuccess;
}
