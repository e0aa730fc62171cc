#include "tests/testing/test_env.h"

#include <cstdlib>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "gtest/gtest.h"

namespace hybridserve::testing {
namespace {

// The environment variable `name` if set, else the value CMake compiled in.
std::filesystem::path FromEnv(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  if (value != nullptr && *value != '\0') return value;
  return fallback;
}

struct TempDirs {
  std::mutex mu;
  std::vector<std::filesystem::path> dirs;
  ~TempDirs() {
    std::error_code ec;
    for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};

TempDirs& AllTempDirs() {
  static TempDirs* dirs = new TempDirs();
  return *dirs;
}

// Removes the folders at exit (a static with a destructor would run too late
// for some test binaries; atexit runs before sanitizers report).
void RemoveTempDirs() {
  TempDirs& t = AllTempDirs();
  std::lock_guard<std::mutex> lock(t.mu);
  std::error_code ec;
  for (const auto& d : t.dirs) std::filesystem::remove_all(d, ec);
  t.dirs.clear();
}

}  // namespace

std::filesystem::path SourceDir() {
  return FromEnv("HS_SOURCE_DIR", HS_DEFAULT_SOURCE_DIR);
}
std::filesystem::path BinaryDir() {
  return FromEnv("HS_BINARY_DIR", HS_DEFAULT_BINARY_DIR);
}
std::filesystem::path SharedTestdataDir() {
  return FromEnv("HS_SHARED_TESTDATA", HS_DEFAULT_SHARED_TESTDATA);
}
std::string TestPython() {
  return FromEnv("HS_TEST_PYTHON", HS_DEFAULT_TEST_PYTHON).string();
}

int TestCpuThreads() {
  const char* value = std::getenv("HS_TEST_CPU_THREADS");
  if (value == nullptr || *value == '\0') return 2;
  const int n = std::atoi(value);
  return n > 0 ? n : 2;
}

std::filesystem::path MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "hs_test_XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  const char* made = mkdtemp(buf.data());
  EXPECT_NE(made, nullptr) << "mkdtemp failed";
  TempDirs& t = AllTempDirs();
  std::lock_guard<std::mutex> lock(t.mu);
  if (t.dirs.empty()) std::atexit(RemoveTempDirs);
  t.dirs.emplace_back(made);
  return t.dirs.back();
}

}  // namespace hybridserve::testing
