// Paths tests use: compiled in by tests/CMakeLists.txt, overridable by
// environment variables of the same names (HS_SOURCE_DIR, ...).
#ifndef HYBRIDSERVE_TESTS_TESTING_TEST_ENV_H_
#define HYBRIDSERVE_TESTS_TESTING_TEST_ENV_H_

#include <filesystem>
#include <string>

namespace hybridserve::testing {

// The repository root (HS_SOURCE_DIR).
std::filesystem::path SourceDir();
// The build folder (HS_BINARY_DIR): tools are at BinaryDir() / "tools".
std::filesystem::path BinaryDir();
// ../shared/testdata (HS_SHARED_TESTDATA); may not exist.
std::filesystem::path SharedTestdataDir();
// The test venv's Python (HS_TEST_PYTHON: scripts/python_env.sh made it, with
// tests/requirements.txt installed); empty when there is none.
std::string TestPython();
// CPU threads tests give the engine: HS_TEST_CPU_THREADS, default 2. The TSan
// stage sets 1, since OpenMP's runtime is not instrumented.
int TestCpuThreads();
// A fresh, empty temporary folder, removed when the test binary exits.
std::filesystem::path MakeTempDir();

}  // namespace hybridserve::testing

#endif  // HYBRIDSERVE_TESTS_TESTING_TEST_ENV_H_
