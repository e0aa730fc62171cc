// ApiKeyStore: the API keys of --api-keys-file and the check of each RPC's
// `authorization: Bearer <key>` metadata against them.
//
// File format (docs/deploy.md): one key per line, `<name> <key>` separated by
// spaces or tabs; blank lines and lines starting with `#` are ignored. A name is
// 1-64 characters of [A-Za-z0-9_.-] (it becomes a metric label); a key is 16-4096
// printable ASCII characters without spaces. Names and keys must be unique, and a
// file must hold at least one key. Parse errors name the file and the line,
// never a name or a key (a line with its fields swapped would show the key).
//
// Keys are kept only as SHA-256 digests. Authenticate hashes the presented key
// and compares its digest with every stored digest (no early exit, constant-time
// comparison of equal-length digests), so the time taken does not depend on
// which key matched or how much of a key was right.
//
// Thread-safe: Load (SIGHUP reload) may run while RPCs authenticate.
#ifndef HYBRIDSERVE_SERVER_API_KEYS_H_
#define HYBRIDSERVE_SERVER_API_KEYS_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/string_ref.h"

namespace hybridserve::server {

using KeyDigest = std::array<uint8_t, 32>;  // SHA-256

struct ApiKeyEntry {
  std::string name;
  KeyDigest digest;
};

// Parses the text of a keys file; `source` (the path) goes into error messages.
absl::StatusOr<std::vector<ApiKeyEntry>> ParseApiKeys(absl::string_view text,
                                                      absl::string_view source);

// SHA-256 of `key`.
KeyDigest DigestOfKey(absl::string_view key);

class ApiKeyStore {
 public:
  ApiKeyStore() = default;
  ApiKeyStore(const ApiKeyStore&) = delete;
  ApiKeyStore& operator=(const ApiKeyStore&) = delete;

  // Reads and parses `path` and, when it is valid, replaces the keys with its
  // keys. Returns the names of the new keys.
  // On error the keys in use stay as they were (a bad reload locks no one out
  // and lets no one in).
  absl::StatusOr<std::vector<std::string>> Load(const std::string& path);

  // Replaces the keys (tests; Load uses it after parsing).
  void Set(std::vector<ApiKeyEntry> keys);

  // True once keys have been loaded: from then on every RPC but health and
  // reflection needs a valid key.
  bool enabled() const;

  // The name of the key an `authorization` header value ("Bearer <key>", the
  // scheme case-insensitive) holds. UNAUTHENTICATED ("missing or invalid API
  // key") when the value is malformed or the key unknown; the message never
  // holds the presented key.
  absl::StatusOr<std::string> AuthenticateHeader(absl::string_view authorization) const;

  // The same for a call's client metadata: exactly one `authorization` entry.
  absl::StatusOr<std::string> Authenticate(
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

 private:
  using KeySet = std::vector<ApiKeyEntry>;
  // Swapped whole on reload; readers keep the set they started with.
  std::shared_ptr<const KeySet> Snapshot() const;

  mutable absl::Mutex mu_;
  std::shared_ptr<const KeySet> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hybridserve::server

#endif  // HYBRIDSERVE_SERVER_API_KEYS_H_
