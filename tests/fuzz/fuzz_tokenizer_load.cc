// libFuzzer target: arbitrary bytes as tokenizer.json; what loads must encode
// and decode a short text without crashing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto tokenizer = hybridserve::engine::tokenizer::Tokenizer::FromJson(json);
  if (tokenizer.ok()) {
    auto ids = (*tokenizer)->Encode("Hello, wörld! 123 \xe4\xb8\xad\xe6\x96\x87", true);
    if (ids.ok()) (void)(*tokenizer)->Decode(*ids, false);
  }
  return 0;
}
