// libFuzzer target: arbitrary bytes through a real tokenizer (Llama-3's, from
// the shared test data; a tiny byte-level one when that is absent): encode as
// text, decode and stream-decode as ids. Output text must be valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace {

using hybridserve::engine::tokenizer::IncrementalDetokenizer;
using hybridserve::engine::tokenizer::Tokenizer;

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

const Tokenizer& TheTokenizer() {
  static const Tokenizer* t = [] {
    const char* dir = std::getenv("HS_FUZZ_TOKENIZER");
    auto loaded = Tokenizer::FromFile(dir != nullptr ? dir : HS_FUZZ_DEFAULT_TOKENIZER);
    if (!loaded.ok()) std::abort();  // the fuzz script always provides one
    return loaded->release();
  }();
  return *t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizer& t = TheTokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto ids = t.Encode(text, size % 2 == 0);
  if (ids.ok()) {
    auto back = t.Decode(*ids, false);
    if (back.ok() && !ValidUtf8(*back)) std::abort();
  }
  std::vector<int32_t> raw;
  for (size_t i = 0; i + 3 < size; i += 4) {
    int32_t v;
    __builtin_memcpy(&v, data + i, 4);
    raw.push_back(static_cast<int32_t>(static_cast<uint32_t>(v) % (t.vocab_size() + 8)));
  }
  IncrementalDetokenizer stream(t, size % 3 == 0);
  std::string streamed;
  for (int32_t id : raw) (void)stream.Step(id, &streamed);
  stream.Finish(&streamed);
  if (!ValidUtf8(streamed)) std::abort();
  return 0;
}
