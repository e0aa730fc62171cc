#include "engine/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace hybridserve::engine {
namespace {

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// Writes `8-byte length` + `header` + `data`, the length being header.size()
// unless overridden.
void WriteRaw(const std::filesystem::path& path, const std::string& header,
              const std::string& data,
              std::optional<uint64_t> length = std::nullopt) {
  uint64_t len = length.value_or(header.size());
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<char>(len & 0xff);
    len >>= 8;
  }
  std::ofstream out(path, std::ios::binary);
  out << bytes << header << data;
}

template <typename T>
absl::Span<const std::byte> AsBytes(const std::vector<T>& v) {
  return {reinterpret_cast<const std::byte*>(v.data()), v.size() * sizeof(T)};
}

class SafetensorsTest : public ::testing::Test {
 protected:
  std::filesystem::path dir_ = testing::MakeTempDir();

  // Opens `header`/`data` written raw and expects an error whose message
  // contains the file name and every string in `needles`.
  void ExpectError(const std::string& header, const std::string& data,
                   const std::vector<std::string>& needles,
                   std::optional<uint64_t> length = std::nullopt) {
    const auto path = dir_ / "bad.safetensors";
    WriteRaw(path, header, data, length);
    auto f = SafetensorsFile::Open(path);
    ASSERT_FALSE(f.ok()) << header;
    EXPECT_NE(Msg(f.status()).find(path.string()), std::string::npos)
        << f.status();
    for (const std::string& n : needles) {
      EXPECT_NE(Msg(f.status()).find(n), std::string::npos)
          << "want \"" << n << "\" in: " << f.status();
    }
  }
};

TEST_F(SafetensorsTest, WriteThenOpenRoundTrips) {
  const std::vector<float> a = {1.0f, -2.0f, 3.5f, 0.25f, 8.0f, -0.5f};
  const std::vector<uint16_t> b = {0x3f80, 0x4000, 0xc040};
  const std::vector<int32_t> c = {7, -9};
  const std::vector<SafetensorsWriteEntry> entries = {
      {"layer.a", DType::kF32, {2, 3}, AsBytes(a)},
      {"layer.b", DType::kBF16, {3}, AsBytes(b)},
      {"empty", DType::kF16, {0, 4}, {}},
      {"ids", DType::kI32, {2}, AsBytes(c)},
  };
  const auto path = dir_ / "m.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, entries, {{"format", "pt"}}).ok());

  // The header is padded with spaces to a multiple of 8.
  std::ifstream in(path, std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)),
                  std::istreambuf_iterator<char>());
  uint64_t header_len = 0;
  std::memcpy(&header_len, raw.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(raw[8], '{');
  EXPECT_EQ(raw.size(), 8 + header_len + 24 + 6 + 0 + 8);

  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  ASSERT_EQ((*f)->entries().size(), 4u);
  const SafetensorsEntry* ea = (*f)->Find("layer.a");
  ASSERT_NE(ea, nullptr);
  EXPECT_EQ(ea->dtype, DType::kF32);
  EXPECT_EQ(ea->shape, std::vector<int64_t>({2, 3}));
  EXPECT_EQ(ea->num_elements(), 6);
  ASSERT_EQ(ea->num_bytes, 24u);
  EXPECT_EQ(std::memcmp(ea->data, a.data(), 24), 0);
  const SafetensorsEntry* eb = (*f)->Find("layer.b");
  ASSERT_NE(eb, nullptr);
  EXPECT_EQ(std::memcmp(eb->data, b.data(), 6), 0);
  const SafetensorsEntry* ee = (*f)->Find("empty");
  ASSERT_NE(ee, nullptr);
  EXPECT_EQ(ee->num_elements(), 0);
  EXPECT_EQ(ee->num_bytes, 0u);
  const SafetensorsEntry* ec = (*f)->Find("ids");
  ASSERT_NE(ec, nullptr);
  EXPECT_EQ(std::memcmp(ec->data, c.data(), 8), 0);
  EXPECT_EQ((*f)->Find("nope"), nullptr);
}

TEST_F(SafetensorsTest, NoMetadataKeyWhenEmpty) {
  const std::vector<float> a = {1.0f};
  const auto path = dir_ / "m.safetensors";
  ASSERT_TRUE(
      WriteSafetensors(path, {{"x", DType::kF32, {1}, AsBytes(a)}}, {}).ok());
  std::ifstream in(path, std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)),
                  std::istreambuf_iterator<char>());
  EXPECT_EQ(raw.find("__metadata__"), std::string::npos);
  EXPECT_NE(raw.find(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})"),
            std::string::npos);
}

TEST_F(SafetensorsTest, WriteRejectsSizeMismatchAndDuplicates) {
  const std::vector<float> a = {1.0f, 2.0f};
  auto s = WriteSafetensors(dir_ / "w.safetensors",
                            {{"t", DType::kF32, {3}, AsBytes(a)}}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Msg(s).find("\"t\""), std::string::npos) << s;
  s = WriteSafetensors(dir_ / "w.safetensors",
                       {{"t", DType::kF32, {2}, AsBytes(a)},
                        {"t", DType::kF32, {2}, AsBytes(a)}},
                       {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Msg(s).find("duplicate"), std::string::npos) << s;
}

TEST_F(SafetensorsTest, MissingFile) {
  auto f = SafetensorsFile::Open(dir_ / "absent.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(Msg(f.status()).find("absent.safetensors"), std::string::npos);
}

TEST_F(SafetensorsTest, FileShorterThanLengthField) {
  const auto path = dir_ / "short.safetensors";
  std::ofstream(path, std::ios::binary) << "abc";
  auto f = SafetensorsFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(Msg(f.status()).find("short.safetensors"), std::string::npos);
  EXPECT_NE(Msg(f.status()).find("too small"), std::string::npos);
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFileSize) {
  ExpectError("{}", "", {"header length 1000 exceeds the file size"}, 1000);
  // A huge value must not wrap around in the comparison.
  ExpectError("{}", "", {"exceeds the file size"}, ~uint64_t{0});
}

TEST_F(SafetensorsTest, BadJson) {
  ExpectError(R"({"a": {"dtype": "F32",)", "", {"invalid JSON"});
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  ExpectError("[1, 2, 3]", "", {"expected a JSON object"});
}

TEST_F(SafetensorsTest, EntryNotAnObject) {
  ExpectError(R"({"w": 5})", "", {"\"w\"", "not an object"});
}

TEST_F(SafetensorsTest, UnknownDtype) {
  ExpectError(R"({"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})",
              std::string(8, '\0'), {"\"w\"", "F64"});
}

TEST_F(SafetensorsTest, NegativeShape) {
  ExpectError(
      R"({"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}})",
      std::string(8, '\0'), {"\"w\"", "non-negative integers"});
}

TEST_F(SafetensorsTest, NonIntegerShape) {
  ExpectError(
      R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})",
      std::string(8, '\0'), {"\"w\"", "shape"});
  ExpectError(
      R"({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})",
      std::string(8, '\0'), {"\"w\"", "shape"});
}

TEST_F(SafetensorsTest, MissingOrMalformedOffsets) {
  ExpectError(R"({"w": {"dtype": "F32", "shape": [2]}})", std::string(8, '\0'),
              {"\"w\"", "data_offsets"});
  ExpectError(
      R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, -8]}})",
      std::string(8, '\0'), {"\"w\"", "data_offsets"});
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  ExpectError(
      R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
      std::string(8, '\0'), {"\"w\"", "past the data section"});
}

TEST_F(SafetensorsTest, UnorderedOffsets) {
  ExpectError(
      R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})",
      std::string(8, '\0'), {"\"w\"", "unordered"});
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  ExpectError(
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
      std::string(12, '\0'), {"\"b\"", "overlaps tensor \"a\""});
}

TEST_F(SafetensorsTest, SizeNotNumelTimesDtypeSize) {
  ExpectError(
      R"({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 8]}})",
      std::string(8, '\0'), {"\"w\"", "hold 8 bytes", "needs 6"});
}

TEST_F(SafetensorsTest, ElementCountOverflow) {
  // 2^62 * 8 elements overflows uint64 before the dtype size is applied.
  ExpectError(
      R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 8],
          "data_offsets": [0, 8]}})",
      std::string(8, '\0'), {"\"w\"", "overflows"});
  // 2^62 elements fit; times 4 bytes does not.
  ExpectError(
      R"({"w": {"dtype": "F32", "shape": [4611686018427387904],
          "data_offsets": [0, 8]}})",
      std::string(8, '\0'), {"\"w\"", "overflows"});
}

TEST_F(SafetensorsTest, TruncatedFile) {
  const std::vector<float> a(16, 1.0f), b(16, 2.0f);
  const auto path = dir_ / "trunc.safetensors";
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"first", DType::kF32, {16}, AsBytes(a)},
                                {"second", DType::kF32, {4, 4}, AsBytes(b)}},
                               {})
                  .ok());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  auto f = SafetensorsFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(Msg(f.status()).find(path.string()), std::string::npos);
  EXPECT_NE(Msg(f.status()).find("\"second\""), std::string::npos) << f.status();
  EXPECT_NE(Msg(f.status()).find("truncated"), std::string::npos) << f.status();
}

TEST_F(SafetensorsTest, DuplicateTensorInHeader) {
  ExpectError(
      R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
          "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
      std::string(8, '\0'), {"\"w\"", "twice"});
}

TEST_F(SafetensorsTest, NonStringMetadata) {
  ExpectError(R"({"__metadata__": {"format": 1}})", "", {"__metadata__"});
}

TEST_F(SafetensorsTest, EntriesAreInOffsetOrderAndGapsAreTolerated) {
  WriteRaw(dir_ / "gap.safetensors",
           R"({"late": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]},
               "early": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})",
           "ab....cd");
  auto f = SafetensorsFile::Open(dir_ / "gap.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->entries().size(), 2u);
  EXPECT_EQ((*f)->entries()[0].name, "early");
  EXPECT_EQ((*f)->entries()[1].name, "late");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*f)->Find("late")->data),
                        2),
            "cd");
}

// Seeded random corruptions of a valid file: Open either fails with a message
// naming the file or returns entries that lie inside the file. (Run under
// ASan in CI, this is the never-a-crash check.)
TEST_F(SafetensorsTest, RandomCorruptionsNeverEscapeTheFile) {
  const std::vector<float> a(8, 1.0f), b(4, 2.0f);
  const auto good = dir_ / "good.safetensors";
  ASSERT_TRUE(WriteSafetensors(good,
                               {{"a", DType::kF32, {2, 4}, AsBytes(a)},
                                {"b", DType::kF32, {4}, AsBytes(b)}},
                               {{"k", "v"}})
                  .ok());
  std::ifstream in(good, std::ios::binary);
  const std::string original((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  uint64_t state = 12345;
  auto next = [&state]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  const auto path = dir_ / "mutated.safetensors";
  int failures = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes = original;
    const int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits; ++e) {
      // Mostly in the length field and header, where parsing happens.
      const size_t limit = next() % 4 == 0 ? bytes.size() : 8 + 120;
      const size_t at = next() % std::min(limit, bytes.size());
      const char replacements[] = "0123456789-.,:[]{}\" eE\x7f\x01";
      bytes[at] = next() % 2 ? static_cast<char>(next() & 0xff)
                             : replacements[next() % (sizeof(replacements) - 1)];
    }
    if (next() % 8 == 0) bytes.resize(next() % bytes.size());
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << bytes;
    }
    auto f = SafetensorsFile::Open(path);
    if (!f.ok()) {
      ++failures;
      ASSERT_NE(Msg(f.status()).find(path.string()), std::string::npos)
          << f.status();
      continue;
    }
    const uint64_t header_len = [&] {
      uint64_t v = 0;
      std::memcpy(&v, bytes.data(), 8);
      return v;
    }();
    for (const SafetensorsEntry& e : (*f)->entries()) {
      ASSERT_LE(e.num_bytes, bytes.size() - 8 - header_len) << e.name;
      uint64_t numel = 1;
      for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
      ASSERT_EQ(numel * DTypeSize(e.dtype), e.num_bytes) << e.name;
      // Touch every byte: outside the mapping this would fault.
      volatile unsigned sink = 0;
      for (size_t i = 0; i < e.num_bytes; ++i) {
        sink = sink + static_cast<unsigned>(e.data[i]);
      }
    }
  }
  EXPECT_GT(failures, 1000);  // most corruptions must be caught
}

}  // namespace
}  // namespace hybridserve::engine
