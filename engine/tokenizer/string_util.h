// Glue for this Abseil build, which does not alias absl::string_view to
// std::string_view: StrCat arguments and hash-container lookups by
// std::string_view need a conversion.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_STRING_UTIL_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_STRING_UTIL_H_

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace hybridserve::engine::tokenizer {

inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

namespace internal {
inline absl::string_view CatArg(std::string_view s) { return AbslView(s); }
inline absl::string_view CatArg(const std::string& s) { return AbslView(s); }
inline absl::string_view CatArg(const char* s) { return absl::string_view(s); }
template <typename T>
const T& CatArg(const T& v) {
  return v;
}
}  // namespace internal

// absl::StrCat that also takes std::string_view arguments.
template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(internal::CatArg(args)...);
}

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_STRING_UTIL_H_
