#include "server/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstddef>
#include <fstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace hybridserve::server {
namespace {

constexpr size_t kMinKeyChars = 16;
constexpr size_t kMaxKeyChars = 4096;
constexpr size_t kMaxNameChars = 64;
constexpr std::streamsize kMaxFileBytes = 1 << 20;
constexpr char kRejected[] = "missing or invalid API key";

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

bool IsKeyChar(char c) { return c > 0x20 && c < 0x7f; }

}  // namespace

KeyDigest DigestOfKey(absl::string_view key) {
  KeyDigest digest{};
  unsigned int size = 0;
  // EVP_Digest only fails on allocation failure; a zero digest then matches
  // no stored key (stored digests come from the same call, checked below).
  if (EVP_Digest(key.data(), key.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != digest.size()) {
    digest.fill(0);
  }
  return digest;
}

absl::StatusOr<std::vector<ApiKeyEntry>> ParseApiKeys(absl::string_view text,
                                                      absl::string_view source) {
  std::vector<ApiKeyEntry> keys;
  absl::flat_hash_map<std::string, int> line_of_name;
  absl::flat_hash_map<std::string, int> line_of_digest;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    auto bad = [&](auto&&... parts) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_number, ": ", parts...));
    };
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return bad("want '<name> <key>' (", fields.size(), " fields)");
    }
    const absl::string_view name = fields[0];
    const absl::string_view key = fields[1];
    if (name.size() > kMaxNameChars) return bad("key name longer than ", kMaxNameChars, " characters");
    for (char c : name) {
      if (!IsNameChar(c)) return bad("a key name may hold only [A-Za-z0-9_.-]");
    }
    if (key.size() < kMinKeyChars) {
      return bad("the key is ", key.size(), " characters; at least ", kMinKeyChars,
                 " are required");
    }
    if (key.size() > kMaxKeyChars) {
      return bad("the key is longer than ", kMaxKeyChars, " characters");
    }
    for (char c : key) {
      if (!IsKeyChar(c)) return bad("the key holds a character that is not printable ASCII");
    }
    if (auto [it, inserted] = line_of_name.emplace(std::string(name), line_number); !inserted) {
      return bad("the key name is already used on line ", it->second);
    }
    ApiKeyEntry entry{std::string(name), DigestOfKey(key)};
    const std::string digest(entry.digest.begin(), entry.digest.end());
    if (auto [it, inserted] = line_of_digest.emplace(digest, line_number); !inserted) {
      return bad("the key is the same as the key on line ", it->second);
    }
    keys.push_back(std::move(entry));
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": no keys (want lines of '<name> <key>'); with no keys every RPC "
                             "would be refused"));
  }
  return keys;
}

absl::StatusOr<std::vector<std::string>> ApiKeyStore::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read API keys file ", path));
  std::string text(static_cast<size_t>(kMaxFileBytes) + 1, '\0');
  in.read(text.data(), kMaxFileBytes + 1);
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading API keys file ", path));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > static_cast<size_t>(kMaxFileBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": larger than ", kMaxFileBytes, " bytes"));
  }
  absl::StatusOr<std::vector<ApiKeyEntry>> keys = ParseApiKeys(text, path);
  if (!keys.ok()) return keys.status();
  std::vector<std::string> names;
  names.reserve(keys->size());
  for (const ApiKeyEntry& k : *keys) names.push_back(k.name);
  Set(*std::move(keys));
  return names;
}

void ApiKeyStore::Set(std::vector<ApiKeyEntry> keys) {
  auto set = std::make_shared<const KeySet>(std::move(keys));
  absl::MutexLock lock(&mu_);
  keys_ = std::move(set);
}

std::shared_ptr<const ApiKeyStore::KeySet> ApiKeyStore::Snapshot() const {
  absl::ReaderMutexLock lock(&mu_);
  return keys_;
}

bool ApiKeyStore::enabled() const { return Snapshot() != nullptr; }

absl::StatusOr<std::string> ApiKeyStore::AuthenticateHeader(absl::string_view authorization) const {
  const std::shared_ptr<const KeySet> keys = Snapshot();
  if (keys == nullptr) return absl::FailedPreconditionError("no API keys are configured");
  absl::string_view value = absl::StripAsciiWhitespace(authorization);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError(kRejected);
  }
  const absl::string_view key = absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size()));
  if (key.empty() || key.size() > kMaxKeyChars) return absl::UnauthenticatedError(kRejected);
  const KeyDigest digest = DigestOfKey(key);
  // Every stored digest is compared, whatever matched before; the index is
  // selected with a mask rather than a branch.
  size_t found = keys->size();
  for (size_t i = 0; i < keys->size(); ++i) {
    const size_t equal =
        static_cast<size_t>(CRYPTO_memcmp(digest.data(), (*keys)[i].digest.data(), digest.size()) == 0);
    const size_t mask = ~(equal - 1);  // all ones when equal, else zero
    found = (i & mask) | (found & ~mask);
  }
  if (found == keys->size()) return absl::UnauthenticatedError(kRejected);
  return (*keys)[found].name;
}

absl::StatusOr<std::string> ApiKeyStore::Authenticate(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  auto [begin, end] = metadata.equal_range("authorization");
  if (begin == end || std::next(begin) != end) {
    if (!enabled()) return absl::FailedPreconditionError("no API keys are configured");
    return absl::UnauthenticatedError(kRejected);
  }
  return AuthenticateHeader(absl::string_view(begin->second.data(), begin->second.size()));
}

}  // namespace hybridserve::server
