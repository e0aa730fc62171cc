// libFuzzer target: arbitrary bytes as a safetensors file. Open must return an
// error or entries whose data lies inside the mapping; nothing may crash.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "engine/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/hs_fuzz_safetensors_" + std::to_string(getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  auto file = hybridserve::engine::SafetensorsFile::Open(path);
  if (file.ok()) {
    uint64_t sum = 0;
    for (const auto& e : (*file)->entries()) {
      // Touch the first and last byte: ASan catches an entry outside the mapping.
      if (e.num_bytes > 0) sum += static_cast<uint8_t>(e.data[0]) + static_cast<uint8_t>(e.data[e.num_bytes - 1]);
      sum += static_cast<uint64_t>(e.num_elements());
    }
    if (sum == 1) std::fputs("", stderr);  // keep the reads
  }
  return 0;
}
