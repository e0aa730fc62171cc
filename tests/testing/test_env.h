// Paths tests use, from environment variables tests/CMakeLists.txt sets.
#ifndef HYBRIDSERVE_TESTS_TESTING_TEST_ENV_H_
#define HYBRIDSERVE_TESTS_TESTING_TEST_ENV_H_

#include <filesystem>

namespace hybridserve::testing {

// The repository root (HS_SOURCE_DIR).
std::filesystem::path SourceDir();
// The build folder (HS_BINARY_DIR): tools are at BinaryDir() / "tools".
std::filesystem::path BinaryDir();
// ../shared/testdata (HS_SHARED_TESTDATA); may not exist.
std::filesystem::path SharedTestdataDir();
// A fresh, empty temporary folder, removed when the test binary exits.
std::filesystem::path MakeTempDir();

}  // namespace hybridserve::testing

#endif  // HYBRIDSERVE_TESTS_TESTING_TEST_ENV_H_
