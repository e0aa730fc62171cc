// ApiKeyStore: keys-file parsing (each error names the line, never the key),
// authentication of `authorization` values, and reloads that keep the keys in
// use when the new file is bad.
#include "server/api_keys.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hybridserve::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAliceKey[] = "alice-0123456789abcdef";
constexpr char kBobKey[] = "bob-fedcba9876543210XYZ";
constexpr char kCarolKey[] = "carol-0000111122223333";

class TempFile {
 public:
  explicit TempFile(const std::string& name)
      : path_(std::filesystem::path(::testing::TempDir()) /
              absl::StrCat("api_keys_", name, "_", ::getpid())) {}
  ~TempFile() { std::filesystem::remove(path_); }
  void Write(const std::string& text) const { std::ofstream(path_, std::ios::binary) << text; }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

std::string TwoKeys() {
  return absl::StrCat("# service accounts\n", "alice ", kAliceKey, "\n", "\n",
                      "  bob\t", kBobKey, "  \r\n");
}

TEST(ParseApiKeys, NamesInOrderCommentsBlankLinesAndCrLfIgnored) {
  auto keys = ParseApiKeys(TwoKeys(), "keys.txt");
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].name, "alice");
  EXPECT_EQ((*keys)[1].name, "bob");
  EXPECT_EQ((*keys)[0].digest, DigestOfKey(kAliceKey));
  EXPECT_EQ((*keys)[1].digest, DigestOfKey(kBobKey));
}

TEST(ParseApiKeys, DigestIsSha256) {
  // FIPS 180-2 test vector.
  const KeyDigest d = DigestOfKey("abc");
  std::string hex;
  for (uint8_t b : d) absl::StrAppend(&hex, absl::Hex(b, absl::kZeroPad2));
  EXPECT_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

struct BadFile {
  const char* what;
  std::string text;
  std::string want;  // in the message, with the line
};

TEST(ParseApiKeys, ErrorsNameTheLineAndNeverTheKey) {
  const std::string secret = "s3cr3t-but-short";  // 16 chars: valid length
  const std::vector<BadFile> cases = {
      {"empty file", "", "no keys"},
      {"only comments", "# nothing\n\n   \n", "no keys"},
      {"one field", "alice\n", "keys.txt:1: want '<name> <key>' (1 fields)"},
      {"three fields", absl::StrCat("alice ", secret, " extra\n"), "keys.txt:1: want '<name> <key>' (3 fields)"},
      {"short key", "alice 0123456789abcde\n", "keys.txt:1: the key is 15 characters; at least 16"},
      {"empty key after name", "# c\nalice   \n", "keys.txt:2: want '<name> <key>' (1 fields)"},
      {"bad name", absl::StrCat("al/ice ", secret, "\n"), "keys.txt:1: a key name may hold only"},
      {"long name", absl::StrCat(std::string(65, 'n'), " ", secret, "\n"), "longer than 64"},
      {"non-ASCII key", absl::StrCat("alice ", secret, "\xc3\xa9\n"), "not printable ASCII"},
      {"control char in key", absl::StrCat("alice ", secret, "\x01\n"), "not printable ASCII"},
      {"duplicate name", absl::StrCat("alice ", secret, "\nbob ", kBobKey, "\nalice ", kCarolKey, "\n"),
       "keys.txt:3: the key name is already used on line 1"},
      {"duplicate key", absl::StrCat("alice ", secret, "\nbob ", secret, "\n"),
       "keys.txt:2: the key is the same as the key on line 1"},
      {"swapped fields", absl::StrCat(secret, "xx alice\n"), "keys.txt:1: the key is 5 characters"},
  };
  for (const BadFile& c : cases) {
    auto keys = ParseApiKeys(c.text, "keys.txt");
    ASSERT_FALSE(keys.ok()) << c.what;
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(keys.status().message()), HasSubstr(c.want)) << c.what;
    EXPECT_THAT(std::string(keys.status().message()), Not(HasSubstr(secret))) << c.what;
  }
}

TEST(ApiKeyStore, DisabledUntilKeysAreLoaded) {
  ApiKeyStore store;
  EXPECT_FALSE(store.enabled());
  EXPECT_EQ(store.AuthenticateHeader(absl::StrCat("Bearer ", kAliceKey)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ApiKeyStore, AuthenticatesEachKeyToItsName) {
  ApiKeyStore store;
  store.Set(*ParseApiKeys(TwoKeys(), "keys"));
  ASSERT_TRUE(store.enabled());
  auto alice = store.AuthenticateHeader(absl::StrCat("Bearer ", kAliceKey));
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(*alice, "alice");
  auto bob = store.AuthenticateHeader(absl::StrCat("bearer ", kBobKey));  // scheme in any case
  ASSERT_TRUE(bob.ok()) << bob.status();
  EXPECT_EQ(*bob, "bob");
  auto spaced = store.AuthenticateHeader(absl::StrCat("  BEARER   ", kBobKey, " "));
  ASSERT_TRUE(spaced.ok()) << spaced.status();
  EXPECT_EQ(*spaced, "bob");
}

TEST(ApiKeyStore, RejectsNearMissesWithOneMessage) {
  ApiKeyStore store;
  store.Set(*ParseApiKeys(TwoKeys(), "keys"));
  const std::string alice = kAliceKey;
  std::string last_char_changed = alice;
  last_char_changed.back() ^= 1;
  const std::vector<std::string> rejected = {
      "",
      "Bearer",
      "Bearer ",
      alice,                                      // no scheme
      absl::StrCat("Basic ", alice),              // other scheme
      absl::StrCat("Bearer ", alice.substr(1)),   // prefix missing
      absl::StrCat("Bearer ", alice, "x"),        // one extra character
      absl::StrCat("Bearer ", alice.substr(0, alice.size() - 1)),
      absl::StrCat("Bearer ", last_char_changed),
      absl::StrCat("Bearer ", kCarolKey),         // unknown key
      absl::StrCat("Bearer ", std::string(5000, 'a')),
      "Bearer alice",                             // the name is not the key
  };
  for (const std::string& value : rejected) {
    auto name = store.AuthenticateHeader(value);
    ASSERT_FALSE(name.ok()) << value.substr(0, 64);
    EXPECT_EQ(name.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(name.status().message(), "missing or invalid API key");
  }
}

TEST(ApiKeyStore, AuthenticateReadsExactlyOneAuthorizationEntry) {
  ApiKeyStore store;
  store.Set(*ParseApiKeys(TwoKeys(), "keys"));
  const std::string good = absl::StrCat("Bearer ", kAliceKey);
  const std::string other = absl::StrCat("Bearer ", kBobKey);
  using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;
  Metadata one = {{"user-agent", "test"}, {"authorization", good}};
  auto name = store.Authenticate(one);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "alice");
  Metadata none = {{"user-agent", "test"}};
  EXPECT_EQ(store.Authenticate(none).status().code(), absl::StatusCode::kUnauthenticated);
  Metadata two = {{"authorization", good}, {"authorization", other}};
  EXPECT_EQ(store.Authenticate(two).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(ApiKeyStore, ReloadReplacesKeysAndABadFileKeepsTheOldOnes) {
  TempFile file("reload");
  ApiKeyStore store;
  file.Write(TwoKeys());
  auto names = store.Load(file.path());
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre("alice", "bob"));

  // Bob removed, carol added.
  file.Write(absl::StrCat("alice ", kAliceKey, "\ncarol ", kCarolKey, "\n"));
  names = store.Load(file.path());
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre("alice", "carol"));
  EXPECT_FALSE(store.AuthenticateHeader(absl::StrCat("Bearer ", kBobKey)).ok());
  EXPECT_EQ(*store.AuthenticateHeader(absl::StrCat("Bearer ", kCarolKey)), "carol");

  // An invalid file (a short key) and a missing one: the keys stay as they were.
  file.Write(absl::StrCat("alice ", kAliceKey, "\nmallory short\n"));
  auto bad = store.Load(file.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr(":2: the key is 5 characters"));
  EXPECT_EQ(*store.AuthenticateHeader(absl::StrCat("Bearer ", kCarolKey)), "carol");
  auto missing = store.Load(file.path() + ".missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("cannot read API keys file"));
  EXPECT_EQ(*store.AuthenticateHeader(absl::StrCat("Bearer ", kAliceKey)), "alice");
  EXPECT_EQ(*store.AuthenticateHeader(absl::StrCat("Bearer ", kCarolKey)), "carol");
}

TEST(ApiKeyStore, ReloadWhileAuthenticating) {
  // Readers see either the old set or the new one, never a mix or a torn set:
  // alice is in both, so she always passes.
  ApiKeyStore store;
  const std::string both = absl::StrCat("alice ", kAliceKey, "\nbob ", kBobKey, "\n");
  const std::string alice_carol = absl::StrCat("alice ", kAliceKey, "\ncarol ", kCarolKey, "\n");
  store.Set(*ParseApiKeys(both, "a"));
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread reader([&] {
    while (!stop.load()) {
      auto name = store.AuthenticateHeader(absl::StrCat("Bearer ", kAliceKey));
      if (!name.ok() || *name != "alice") failures.fetch_add(1);
    }
  });
  for (int i = 0; i < 200; ++i) store.Set(*ParseApiKeys(i % 2 ? both : alice_carol, "k"));
  stop.store(true);
  reader.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace hybridserve::server
