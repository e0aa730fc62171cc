// Minimal CPU emulation of the CUDA features the kernels use: one block at a
// time, each CUDA thread a ucontext fiber; __syncthreads and warp ops are
// barriers of a cooperative scheduler (deadlocks from divergent barriers abort).
#pragma once
#include <ucontext.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>
#include <algorithm>
#include <memory>

// AddressSanitizer must be told about every stack switch (fiber annotations),
// and a reused fiber stack must be unpoisoned before a new fiber runs on it.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN_FIBERS 1
#endif

// x86-64: fibers switch with SwitchStack (no system call); elsewhere with
// swapcontext.
#if defined(__x86_64__)
#define EMU_ASM_SWITCH 1
#else
#define EMU_ASM_SWITCH 0
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  dim3(unsigned int a = 1, unsigned int b = 1, unsigned int c = 1) : x(a), y(b), z(c) {}
};
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct uint4 { unsigned int x, y, z, w; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
template <typename T> inline T __ldg(const T* p) { return *p; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
// Round-to-nearest f32 multiply and add, never contracted into an FMA.
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }

struct __nv_bfloat16 { uint16_t x; };
struct __half { uint16_t x; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
struct __half2 { __half x, y; };
inline float __bfloat162float(__nv_bfloat16 v) { uint32_t b = uint32_t(v.x) << 16; float f; memcpy(&f, &b, 4); return f; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t b; memcpy(&b, &f, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return {uint16_t((b >> 16) | 0x40)};
  b += 0x7fffu + ((b >> 16) & 1u);
  return {uint16_t(b >> 16)};
}
inline float __half2float(__half v) { _Float16 h; memcpy(&h, &v.x, 2); return (float)h; }
inline __half __float2half_rn(float f) { _Float16 h = (_Float16)f; __half r; memcpy(&r.x, &h, 2); return r; }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {__bfloat162float(v.x), __bfloat162float(v.y)}; }
inline float2 __half22float2(__half2 v) { return {__half2float(v.x), __half2float(v.y)}; }

typedef int cudaError_t;
enum {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
};
typedef void* cudaStream_t;
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

namespace emu {
enum State { kReady, kWaitBlock, kWaitWarp, kDone };
constexpr size_t kStackBytes = 256 * 1024;
struct Fiber {
#if EMU_ASM_SWITCH
  void* sp = nullptr;  // saved stack pointer while switched out
#else
  ucontext_t ctx;
#endif
  char* stack = nullptr;  // one of `stacks`, reused from block to block
  dim3 tid;
  int linear = 0;
  State state = kReady;
};
#if EMU_ASM_SWITCH
inline void* sched_sp = nullptr;
// Saves the callee-saved registers on the current stack, stores the stack
// pointer in *save_sp, switches to new_sp and restores the registers saved
// there (by an earlier call, or laid out by MakeFiberContext). No system
// call: swapcontext saves and restores the signal mask, two syscalls a
// switch, which made barriers ~20x slower.
[[gnu::naked, gnu::noinline]] inline void SwitchStack(void** /*save_sp*/, void* /*new_sp*/) {
  asm("pushq %rbp\n\tpushq %rbx\n\tpushq %r12\n\tpushq %r13\n\tpushq %r14\n\tpushq %r15\n\t"
      "movq %rsp, (%rdi)\n\tmovq %rsi, %rsp\n\t"
      "popq %r15\n\tpopq %r14\n\tpopq %r13\n\tpopq %r12\n\tpopq %rbx\n\tpopq %rbp\n\t"
      "ret\n\t");
}
#else
inline ucontext_t sched_ctx;
#endif
inline std::vector<Fiber>* fibers = nullptr;
inline Fiber* cur = nullptr;
inline dim3 g_block_idx, g_block_dim, g_grid_dim;
inline const std::function<void()>* body = nullptr;
alignas(256) inline char dyn_smem_buf[1 << 20];
inline char* dyn_smem = dyn_smem_buf;
inline int smem_optin = 232448;
inline cudaError_t last_error = cudaSuccess;
inline long long launches = 0, blocks_run = 0;
inline float xf[32][32];
inline int xi[32][32];
// Fiber stacks, allocated once (uninitialised: pages are touched only as deep
// as the kernels go) and reused by every block.
inline std::vector<std::unique_ptr<char[]>> stacks;
inline const void* sched_stack_bottom = nullptr;
inline size_t sched_stack_size = 0;

// Scheduler -> fiber f.
inline void SwitchToFiber(Fiber& f) {
#ifdef EMU_ASAN_FIBERS
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f.stack, kStackBytes);
#endif
#if EMU_ASM_SWITCH
  SwitchStack(&sched_sp, f.sp);
#else
  swapcontext(&sched_ctx, &f.ctx);
#endif
#ifdef EMU_ASAN_FIBERS
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}
// Current fiber -> scheduler; `exiting`: the fiber never resumes.
inline void SwitchToScheduler(bool exiting) {
#ifdef EMU_ASAN_FIBERS
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(exiting ? nullptr : &fake, sched_stack_bottom, sched_stack_size);
#endif
#if EMU_ASM_SWITCH
  SwitchStack(&cur->sp, sched_sp);
#else
  swapcontext(&cur->ctx, &sched_ctx);
#endif
#ifdef EMU_ASAN_FIBERS
  __sanitizer_finish_switch_fiber(fake, &sched_stack_bottom, &sched_stack_size);
#endif
}
inline void Yield(State s) {
  cur->state = s;
  SwitchToScheduler(false);
}
inline void WarpBarrier() { Yield(kWaitWarp); }
inline void Trampoline() {
#ifdef EMU_ASAN_FIBERS
  __sanitizer_finish_switch_fiber(nullptr, &sched_stack_bottom, &sched_stack_size);
#endif
  (*body)();
  cur->state = kDone;
  SwitchToScheduler(true);
}

#if EMU_ASM_SWITCH
// A fresh fiber's stack as SwitchStack leaves a switched-out one: six saved
// registers (zero), then the address `ret` jumps to (Trampoline), then a
// null return address for Trampoline (which never returns), placed so that
// Trampoline starts with the stack aligned as after a call.
inline void MakeFiberContext(Fiber& f) {
  auto top = reinterpret_cast<uintptr_t>(f.stack + kStackBytes) & ~uintptr_t{15};
  auto* slot = reinterpret_cast<void**>(top);
  *--slot = nullptr;
  *--slot = reinterpret_cast<void*>(&Trampoline);
  for (int i = 0; i < 6; ++i) *--slot = nullptr;
  f.sp = slot;
}
#else
// Out of line: getcontext returns twice, which would clobber the caller's
// loop variables.
[[gnu::noinline]] inline void MakeFiberContext(Fiber& f) {
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, Trampoline, 0);
}
#endif

inline void RunBlock() {
  const int n = g_block_dim.x * g_block_dim.y * g_block_dim.z;
  std::vector<Fiber> fs(n);
  fibers = &fs;
  while (stacks.size() < static_cast<size_t>(n)) stacks.emplace_back(new char[kStackBytes]);
  for (int i = 0; i < n; ++i) {
    Fiber& f = fs[i];
    f.linear = i;
    f.tid = dim3(i % g_block_dim.x, (i / g_block_dim.x) % g_block_dim.y, i / (g_block_dim.x * g_block_dim.y));
    f.stack = stacks[i].get();
#ifdef EMU_ASAN_FIBERS
    ASAN_UNPOISON_MEMORY_REGION(f.stack, kStackBytes);
#endif
    MakeFiberContext(f);
  }
  const int num_warps = (n + 31) / 32;
  while (true) {
    for (Fiber& f : fs) {
      if (f.state == kReady) {
        cur = &f;
        SwitchToFiber(f);
      }
    }
    bool all_done = true, all_block = true;
    for (Fiber& f : fs) {
      if (f.state != kDone) all_done = false;
      if (f.state != kDone && f.state != kWaitBlock) all_block = false;
    }
    if (all_done) break;
    bool released = false;
    for (int w = 0; w < num_warps; ++w) {
      bool all_warp = true, any_wait = false, any_done = false;
      for (int l = 0; l < 32 && w * 32 + l < n; ++l) {
        State s = fs[w * 32 + l].state;
        if (s == kWaitWarp) any_wait = true;
        else if (s == kDone) any_done = true;
        else all_warp = false;
      }
      if (any_wait && all_warp) {
        if (any_done) { fprintf(stderr, "EMU: warp op with exited lanes (block %u,%u,%u)\n", g_block_idx.x, g_block_idx.y, g_block_idx.z); abort(); }
        for (int l = 0; l < 32 && w * 32 + l < n; ++l) fs[w * 32 + l].state = kReady;
        released = true;
      }
    }
    if (!released && all_block) {
      for (Fiber& f : fs) if (f.state == kWaitBlock) f.state = kReady;
      released = true;
    }
    if (!released) {
      fprintf(stderr, "EMU: deadlock (divergent barrier) in block %u,%u,%u\n", g_block_idx.x, g_block_idx.y, g_block_idx.z);
      abort();
    }
  }
  fibers = nullptr;
}

// A stream: work queued on it runs, in order, only when the host waits for it
// (emu_runtime.h: cudaStreamSynchronize, cudaEventSynchronize up to the
// event, a copy to pageable host memory, cudaFree, cudaDeviceSynchronize).
// That is the latest a GPU could run it, so host code that reads a result
// before waiting, or overwrites a buffer a queued copy or kernel still reads,
// sees the wrong values here. The null stream runs work at once (the kernel
// tests call launchers without a stream and read the outputs directly).
struct Stream {
  std::vector<std::function<void()>> ops;
  size_t next = 0;  // ops[0, next) have run
};
inline std::vector<Stream*>* all_streams = new std::vector<Stream*>;
// Set while queued work runs (device memory is then accessible to the host
// process; see emu_runtime.h).
inline void (*before_device_work)() = nullptr;
inline void (*after_device_work)() = nullptr;

inline void RunNow(const std::function<void()>& fn) {
  if (before_device_work != nullptr) before_device_work();
  fn();
  if (after_device_work != nullptr) after_device_work();
}
inline void Enqueue(cudaStream_t stream, std::function<void()> fn) {
  if (stream == nullptr) {
    RunNow(fn);
    return;
  }
  static_cast<Stream*>(stream)->ops.push_back(std::move(fn));
}
// Runs stream's queued work up to and including op `until` (all of it when
// until is SIZE_MAX).
inline void Drain(Stream* s, size_t until = SIZE_MAX) {
  if (s->next >= s->ops.size() || s->next > until) return;
  if (before_device_work != nullptr) before_device_work();
  while (s->next < s->ops.size() && s->next <= until) {
    // Move the op out first: it may queue more work (it does not today).
    std::function<void()> op = std::move(s->ops[s->next]);
    ++s->next;
    op();
  }
  if (s->next == s->ops.size()) {
    s->ops.clear();
    s->next = 0;
  }
  if (after_device_work != nullptr) after_device_work();
}
inline void DrainAll() {
  for (Stream* s : *all_streams) Drain(s);
}

// The launch configuration is checked at once (as the driver does: the
// error is the launch's); the blocks run when the stream reaches them.
// `fn` holds copies of the kernel's arguments.
inline void Launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   std::function<void()> fn) {
  ++launches;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x * block.y * block.z > 1024 ||
      grid.y > 65535 || grid.z > 65535 || smem > (size_t)smem_optin) {
    fprintf(stderr, "EMU: bad launch grid %u %u %u block %u smem %zu\n", grid.x, grid.y, grid.z, block.x, smem);
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  Enqueue(stream, [grid, block, smem, fn = std::move(fn)] {
    body = &fn;
    g_grid_dim = grid;
    g_block_dim = block;
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          g_block_idx = dim3(x, y, z);
          // poison dynamic shared memory so reads of unwritten entries show
          std::fill((float*)dyn_smem, (float*)dyn_smem + smem / 4, NAN);
          RunBlock();
          ++blocks_run;
        }
    body = nullptr;
  });
}
}  // namespace emu

#define threadIdx (emu::cur->tid)
#define blockIdx (emu::g_block_idx)
#define blockDim (emu::g_block_dim)
#define gridDim (emu::g_grid_dim)

inline void __syncthreads() { emu::Yield(emu::kWaitBlock); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::WarpBarrier(); }
inline float __shfl_xor_sync(unsigned, float v, int off) {
  const int w = emu::cur->linear / 32, l = emu::cur->linear % 32;
  emu::xf[w][l] = v; emu::WarpBarrier();
  float r = emu::xf[w][l ^ off]; emu::WarpBarrier();
  return r;
}
inline float __shfl_up_sync(unsigned, float v, int off) {
  const int w = emu::cur->linear / 32, l = emu::cur->linear % 32;
  emu::xf[w][l] = v; emu::WarpBarrier();
  float r = l >= off ? emu::xf[w][l - off] : v; emu::WarpBarrier();
  return r;
}
inline float __shfl_sync(unsigned, float v, int src) {
  const int w = emu::cur->linear / 32, l = emu::cur->linear % 32;
  emu::xf[w][l] = v; emu::WarpBarrier();
  float r = emu::xf[w][src]; emu::WarpBarrier();
  return r;
}
inline unsigned __ballot_sync(unsigned, bool pred) {
  const int w = emu::cur->linear / 32, l = emu::cur->linear % 32;
  emu::xi[w][l] = pred; emu::WarpBarrier();
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) if (emu::xi[w][i]) r |= 1u << i;
  emu::WarpBarrier();
  return r;
}
inline cudaError_t cudaGetLastError() { cudaError_t e = emu::last_error; emu::last_error = 0; return e; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int) {
  *v = attr == cudaDevAttrMultiProcessorCount ? 132 : emu::smem_optin;  // an H100's SMs
  return cudaSuccess;
}
template <typename F> inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int v) {
  return v <= emu::smem_optin ? cudaSuccess : cudaErrorInvalidValue;
}
