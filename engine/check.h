// HS_CHECK: aborts with a message when a broken invariant is found. Only for
// invariants; anything that can fail for a reason outside the program returns
// absl::Status. (The Abseil release Debian 12 ships has no absl/log.)
#ifndef HYBRIDSERVE_ENGINE_CHECK_H_
#define HYBRIDSERVE_ENGINE_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define HS_CHECK(cond)                                                     \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                 \
      std::abort();                                                        \
    }                                                                      \
  } while (0)

#endif  // HYBRIDSERVE_ENGINE_CHECK_H_
