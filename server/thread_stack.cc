// A floor under the stack size that libraries ask for their threads.
//
// The metrics endpoint's HTTP server (civetweb, inside prometheus-cpp) starts
// its threads with an explicit 100 KiB stack. glibc carves each thread's static
// TLS out of its stack, and this process can have a lot of it (a BLAS library
// alone may hold 60 KiB of thread-locals, the CUDA runtime 4 KiB aligned to 4 KiB). What is left
// is too little for civetweb's request handling, which then overflows its stack
// on the first scrape (and at once under AddressSanitizer, whose frames are
// larger). civetweb has no run-time option for its stack size, so the server
// binary interposes pthread_attr_setstacksize: a request below kMinStackBytes
// is raised to it; larger ones and threads with default stacks are unchanged.
//
// Linked into the hybridserve executable only (exported from it with
// --export-dynamic-symbol, so that shared libraries' calls resolve here).
#include <dlfcn.h>
#include <pthread.h>

#include <cstddef>

namespace {

constexpr size_t kMinStackBytes = size_t{1} << 20;

using SetStackSizeFn = int (*)(pthread_attr_t*, size_t);

SetStackSizeFn RealSetStackSize() {
  static const SetStackSizeFn real =
      reinterpret_cast<SetStackSizeFn>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return real;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int pthread_attr_setstacksize(
    pthread_attr_t* attr, size_t stack_bytes) {
  return RealSetStackSize()(attr, stack_bytes < kMinStackBytes ? kMinStackBytes : stack_bytes);
}
