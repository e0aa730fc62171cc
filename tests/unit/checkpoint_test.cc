#include "engine/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace hybridserve::engine {
namespace {

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

template <typename T>
absl::Span<const std::byte> AsBytes(const std::vector<T>& v) {
  return {reinterpret_cast<const std::byte*>(v.data()), v.size() * sizeof(T)};
}

// Values with more precision than bf16/f16 keep, so conversions show.
std::vector<float> Values(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = scale * (static_cast<float>(i) - 2.3f) / 3.0f;
  }
  return v;
}

std::vector<uint16_t> To16(const std::vector<float>& v, DType dtype) {
  std::vector<uint16_t> out(v.size());
  ConvertFloats(v.data(), DType::kF32, out.data(), dtype, v.size());
  return out;
}

class CheckpointTest : public ::testing::Test {
 protected:
  std::filesystem::path dir_ = testing::MakeTempDir();

  void WriteIndex(const std::string& weight_map_json) {
    std::ofstream(dir_ / "model.safetensors.index.json")
        << R"({"metadata": {"total_size": 0}, "weight_map": )"
        << weight_map_json << "}";
  }

  // Two shards: shard 1 holds a [2,3] F32 and b [4] BF16; shard 2 holds c [5]
  // F16.
  void WriteTwoShards() {
    const std::vector<float> a = Values(6, 1.0f);
    const std::vector<uint16_t> b = To16(Values(4, 2.0f), DType::kBF16);
    const std::vector<uint16_t> c = To16(Values(5, 0.5f), DType::kF16);
    ASSERT_TRUE(WriteSafetensors(dir_ / "model-00001-of-00002.safetensors",
                                 {{"a", DType::kF32, {2, 3}, AsBytes(a)},
                                  {"b", DType::kBF16, {4}, AsBytes(b)}},
                                 {{"format", "pt"}})
                    .ok());
    ASSERT_TRUE(WriteSafetensors(dir_ / "model-00002-of-00002.safetensors",
                                 {{"c", DType::kF16, {5}, AsBytes(c)}},
                                 {{"format", "pt"}})
                    .ok());
  }
};

TEST_F(CheckpointTest, MissingFolder) {
  auto c = Checkpoint::Open(dir_ / "nope");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(Msg(c.status()).find("nope"), std::string::npos);
}

TEST_F(CheckpointTest, FolderWithoutWeights) {
  auto c = Checkpoint::Open(dir_);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Msg(c.status()).find("model.safetensors"), std::string::npos);
  EXPECT_NE(Msg(c.status()).find(dir_.string()), std::string::npos);
}

TEST_F(CheckpointTest, SingleFileReadsWithConversion) {
  const std::vector<float> w = Values(6, 1.0f);
  const std::vector<uint16_t> wb = To16(w, DType::kBF16);
  const std::vector<uint16_t> wh = To16(w, DType::kF16);
  ASSERT_TRUE(WriteSafetensors(dir_ / "model.safetensors",
                               {{"f32", DType::kF32, {2, 3}, AsBytes(w)},
                                {"bf16", DType::kBF16, {2, 3}, AsBytes(wb)},
                                {"f16", DType::kF16, {2, 3}, AsBytes(wh)}},
                               {})
                  .ok());
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->TensorNames(),
            std::vector<std::string>({"bf16", "f16", "f32"}));
  EXPECT_EQ((*ckpt)->total_bytes(), 24u + 12u + 12u);

  const std::vector<int64_t> shape = {2, 3};
  for (const char* name : {"f32", "bf16", "f16"}) {
    const DType src = (*ckpt)->Find(name)->dtype;
    for (DType dst : {DType::kF32, DType::kBF16, DType::kF16}) {
      std::vector<std::byte> out(6 * DTypeSize(dst));
      ASSERT_TRUE((*ckpt)->Read(name, shape, dst, out.data()).ok());
      std::vector<float> back(6);
      ConvertFloats(out.data(), dst, back.data(), DType::kF32, 6);
      for (size_t i = 0; i < 6; ++i) {
        EXPECT_EQ(back[i], RoundTo(dst, RoundTo(src, w[i])))
            << name << " → " << DTypeName(dst) << " [" << i << "]";
      }
    }
  }
}

TEST_F(CheckpointTest, ReadErrors) {
  const std::vector<float> w = Values(6, 1.0f);
  const std::vector<int32_t> ids = {1, 2};
  ASSERT_TRUE(WriteSafetensors(dir_ / "model.safetensors",
                               {{"w", DType::kF32, {2, 3}, AsBytes(w)},
                                {"ids", DType::kI32, {2}, AsBytes(ids)}},
                               {})
                  .ok());
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  std::vector<float> out(6);

  absl::Status s = (*ckpt)->Read("model.missing.weight", {2, 3}, DType::kF32,
                                 out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(Msg(s).find("\"model.missing.weight\""), std::string::npos) << s;
  EXPECT_NE(Msg(s).find(dir_.string()), std::string::npos) << s;

  s = (*ckpt)->Read("w", {3, 2}, DType::kF32, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Msg(s).find("\"w\""), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("model.safetensors"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("[2, 3]"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("[3, 2]"), std::string::npos) << s;

  s = (*ckpt)->Read("w", {2, 3, 1}, DType::kF32, out.data());
  EXPECT_FALSE(s.ok());

  s = (*ckpt)->Read("ids", {2}, DType::kF32, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Msg(s).find("\"ids\""), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("I32"), std::string::npos) << s;
}

TEST_F(CheckpointTest, ShardedOpensEveryShard) {
  WriteTwoShards();
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors",
                 "b": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors"})");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->TensorNames(), std::vector<std::string>({"a", "b", "c"}));
  EXPECT_EQ((*ckpt)->total_bytes(), 24u + 8u + 10u);
  std::vector<float> c(5);
  ASSERT_TRUE((*ckpt)->Read("c", {5}, DType::kF32, c.data()).ok());
  const std::vector<float> want = Values(5, 0.5f);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(c[i], RoundTo(DType::kF16, want[i]));
}

TEST_F(CheckpointTest, IndexNamesMissingShard) {
  WriteTwoShards();
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors",
                 "c": "model-00003-of-00003.safetensors"})");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Msg(ckpt.status()).find("model.safetensors.index.json"),
            std::string::npos)
      << ckpt.status();
  EXPECT_NE(Msg(ckpt.status()).find("model-00003-of-00003.safetensors"),
            std::string::npos);
  EXPECT_NE(Msg(ckpt.status()).find("\"c\""), std::string::npos);
}

TEST_F(CheckpointTest, IndexMapsTensorToWrongShard) {
  WriteTwoShards();
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors",
                 "b": "model-00001-of-00002.safetensors",
                 "c": "model-00001-of-00002.safetensors",
                 "d": "model-00002-of-00002.safetensors"})");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  // The first bad entry in name order is "c" (in shard 2, mapped to 1).
  EXPECT_NE(Msg(ckpt.status()).find("\"c\""), std::string::npos)
      << ckpt.status();
  EXPECT_NE(Msg(ckpt.status()).find("model-00001-of-00002.safetensors"),
            std::string::npos);
  EXPECT_NE(Msg(ckpt.status()).find("does not contain it"), std::string::npos);
  EXPECT_NE(Msg(ckpt.status()).find("different shard"), std::string::npos);
}

TEST_F(CheckpointTest, IndexMapsTensorNoShardHolds) {
  WriteTwoShards();
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors",
                 "zzz": "model-00002-of-00002.safetensors"})");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Msg(ckpt.status()).find("\"zzz\""), std::string::npos)
      << ckpt.status();
  EXPECT_NE(Msg(ckpt.status()).find("no shard holds it"), std::string::npos);
}

TEST_F(CheckpointTest, DuplicateTensorAcrossShards) {
  WriteTwoShards();
  const std::vector<float> a = Values(6, 1.0f);
  ASSERT_TRUE(WriteSafetensors(dir_ / "model-00002-of-00002.safetensors",
                               {{"a", DType::kF32, {2, 3}, AsBytes(a)}}, {})
                  .ok());
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors",
                 "b": "model-00002-of-00002.safetensors"})");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Msg(ckpt.status()).find("\"a\" is in two shards"),
            std::string::npos)
      << ckpt.status();
  EXPECT_NE(Msg(ckpt.status()).find("model-00001-of-00002.safetensors"),
            std::string::npos);
  EXPECT_NE(Msg(ckpt.status()).find("model-00002-of-00002.safetensors"),
            std::string::npos);
}

TEST_F(CheckpointTest, MalformedShardIsNamed) {
  WriteTwoShards();
  std::ofstream(dir_ / "model-00002-of-00002.safetensors", std::ios::binary)
      << "garbage that is not safetensors";
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors"})");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Msg(ckpt.status()).find("model-00002-of-00002.safetensors"),
            std::string::npos)
      << ckpt.status();
}

TEST_F(CheckpointTest, MalformedIndex) {
  WriteTwoShards();
  std::ofstream(dir_ / "model.safetensors.index.json") << "{\"weight_map\": [";
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Msg(ckpt.status()).find("model.safetensors.index.json"),
            std::string::npos)
      << ckpt.status();

  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"metadata": {}})";
  ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Msg(ckpt.status()).find("weight_map"), std::string::npos)
      << ckpt.status();

  WriteIndex(R"({"a": "../outside.safetensors"})");
  ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Msg(ckpt.status()).find("\"a\""), std::string::npos)
      << ckpt.status();
  EXPECT_NE(Msg(ckpt.status()).find("not a file name inside"),
            std::string::npos);

  WriteIndex(R"({"a": 3})");
  ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Msg(ckpt.status()).find("\"a\""), std::string::npos)
      << ckpt.status();
}

}  // namespace
}  // namespace hybridserve::engine
