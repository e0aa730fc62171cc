#include "engine/json_util.h"

#include <cmath>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace hybridserve::engine {
namespace {

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST(JsonUtilTest, ReadFileToStringReadsAndNamesMissingFile) {
  const auto dir = testing::MakeTempDir();
  {
    std::ofstream(dir / "a.json") << "{\"x\": 1}";
  }
  auto text = ReadFileToString(dir / "a.json");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "{\"x\": 1}");
  auto missing = ReadFileToString(dir / "nope.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(Msg(missing.status()).find("nope.json"), std::string::npos);
}

TEST(JsonUtilTest, AcceptsInfinityAndNaN) {
  auto doc = ParseJsonObject(
      R"({"time_step_limit": [0.0, Infinity], "a": -Infinity, "b": NaN})",
      "config.json");
  ASSERT_TRUE(doc.ok()) << doc.status();
  const auto& limit = (*doc)["time_step_limit"];
  ASSERT_TRUE(limit.IsArray());
  EXPECT_TRUE(std::isinf(limit[1].GetDouble()));
  auto a = JsonDouble(*doc, "a", "config.json");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(**a, -INFINITY);
  auto b = JsonDouble(*doc, "b", "config.json");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(std::isnan(**b));
}

TEST(JsonUtilTest, SyntaxErrorNamesSourceAndOffset) {
  auto doc = ParseJsonObject(R"({"a": 1,, })", "my/config.json");
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(Msg(doc.status()).find("my/config.json"), std::string::npos);
  EXPECT_NE(Msg(doc.status()).find("byte 8"), std::string::npos)
      << doc.status();
}

TEST(JsonUtilTest, RejectsNonObject) {
  auto doc = ParseJsonObject("[1, 2]", "x.json");
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(Msg(doc.status()).find("expected a JSON object"), std::string::npos);
}

TEST(JsonUtilTest, TypedAccessors) {
  auto doc = ParseJsonObject(
      R"({"i": 7, "f": 2048.0, "frac": 1.5, "d": 1e-5, "t": true, "s": "hi",
          "n": null, "list": [1, 2, 3], "badlist": [1, "x"], "neg": -3})",
      "c.json");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(*JsonInt(*doc, "i", "c.json").value(), 7);
  EXPECT_EQ(*JsonInt(*doc, "f", "c.json").value(), 2048);  // integral double
  EXPECT_EQ(*JsonInt(*doc, "neg", "c.json").value(), -3);
  EXPECT_FALSE(JsonInt(*doc, "absent", "c.json").value().has_value());
  EXPECT_FALSE(JsonInt(*doc, "n", "c.json").value().has_value());  // null
  auto frac = JsonInt(*doc, "frac", "c.json");
  ASSERT_FALSE(frac.ok());
  EXPECT_NE(Msg(frac.status()).find("\"frac\""), std::string::npos);
  EXPECT_NE(Msg(frac.status()).find("c.json"), std::string::npos);
  EXPECT_FALSE(JsonInt(*doc, "s", "c.json").ok());
  EXPECT_FALSE(JsonInt(*doc, "t", "c.json").ok());

  EXPECT_DOUBLE_EQ(*JsonDouble(*doc, "d", "c.json").value(), 1e-5);
  EXPECT_DOUBLE_EQ(*JsonDouble(*doc, "i", "c.json").value(), 7.0);
  EXPECT_FALSE(JsonDouble(*doc, "s", "c.json").ok());

  EXPECT_TRUE(*JsonBool(*doc, "t", "c.json").value());
  EXPECT_FALSE(JsonBool(*doc, "i", "c.json").ok());

  EXPECT_EQ(*JsonString(*doc, "s", "c.json").value(), "hi");
  EXPECT_FALSE(JsonString(*doc, "i", "c.json").ok());

  EXPECT_EQ(JsonIntOrIntList(*doc, "i", "c.json").value(),
            std::vector<int64_t>({7}));
  EXPECT_EQ(JsonIntOrIntList(*doc, "list", "c.json").value(),
            std::vector<int64_t>({1, 2, 3}));
  EXPECT_TRUE(JsonIntOrIntList(*doc, "absent", "c.json").value().empty());
  auto bad = JsonIntOrIntList(*doc, "badlist", "c.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(Msg(bad.status()).find("\"badlist\"[1]"), std::string::npos)
      << bad.status();
  EXPECT_FALSE(JsonIntOrIntList(*doc, "s", "c.json").ok());
}

}  // namespace
}  // namespace hybridserve::engine
