#include "tests/testing/golden.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/json_util.h"
#include "engine/safetensors.h"
#include "engine/status_macros.h"
#include "tests/testing/test_env.h"

namespace hybridserve::testing {
namespace {

std::filesystem::path FixturesDir() { return SourceDir() / "tests" / "golden" / "fixtures"; }

absl::StatusOr<std::vector<float>> ReadF32(const engine::SafetensorsFile& file,
                                           const std::string& name, int64_t expect_numel) {
  const engine::SafetensorsEntry* e = file.Find(name);
  if (e == nullptr) return absl::NotFoundError(absl::StrCat(file.path().string(), ": no ", name));
  if (e->dtype != engine::DType::kF32 || e->num_elements() != expect_numel) {
    return absl::InvalidArgumentError(absl::StrCat(file.path().string(), ": ", name,
                                                   " has the wrong dtype or size"));
  }
  std::vector<float> v(expect_numel);
  std::memcpy(v.data(), e->data, e->num_bytes);
  return v;
}

std::vector<int32_t> IntArray(const rapidjson::Value& v) {
  std::vector<int32_t> out;
  for (const auto& x : v.GetArray()) out.push_back(x.GetInt());
  return out;
}

}  // namespace

std::vector<std::string> GoldenFixtureNames() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(FixturesDir(), ec)) {
    if (std::filesystem::exists(entry.path() / "expected.json")) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> GoldenFixtureNames(engine::ArchitectureFamily family) {
  std::vector<std::string> names;
  for (const std::string& n : GoldenFixtureNames()) {
    auto config = engine::LoadModelConfig(FixturesDir() / n);
    if (config.ok() && config->family() == family) names.push_back(n);
  }
  return names;
}

absl::StatusOr<GoldenFixture> LoadGoldenFixture(const std::string& name) {
  GoldenFixture f;
  f.name = name;
  f.dir = FixturesDir() / name;
  const std::string json_path = (f.dir / "expected.json").string();
  HS_ASSIGN_OR_RETURN(std::string text, engine::ReadFileToString(json_path));
  HS_ASSIGN_OR_RETURN(rapidjson::Document doc, engine::ParseJsonObject(text, json_path));
  f.checkpoint_dtype = doc["checkpoint_dtype"].GetString();
  HS_ASSIGN_OR_RETURN(std::string config_text,
                      engine::ReadFileToString(f.dir / "config.json"));
  HS_ASSIGN_OR_RETURN(rapidjson::Document config,
                      engine::ParseJsonObject(config_text, "config.json"));
  f.vocab_size = config["vocab_size"].GetInt64();
  HS_ASSIGN_OR_RETURN(auto expected,
                      engine::SafetensorsFile::Open(f.dir / "expected.safetensors"));
  int index = 0;
  for (const auto& c : doc["cases"].GetArray()) {
    GoldenCase gc;
    gc.prompt_ids = IntArray(c["prompt_ids"]);
    gc.full_ids = IntArray(c["full_ids"]);
    gc.num_greedy = c["num_greedy"].GetInt();
    const int64_t len = static_cast<int64_t>(gc.full_ids.size());
    const std::string prefix = absl::StrCat("case", index, ".");
    HS_ASSIGN_OR_RETURN(gc.logits_f32, ReadF32(*expected, prefix + "logits_f32", len * f.vocab_size));
    HS_ASSIGN_OR_RETURN(gc.top2_margin, ReadF32(*expected, prefix + "top2_margin", len));
    if (c.HasMember("bf16_vs_f32_max_abs_gap")) {
      gc.bf16_vs_f32_max_abs_gap = c["bf16_vs_f32_max_abs_gap"].GetDouble();
      HS_ASSIGN_OR_RETURN(gc.logits_native,
                          ReadF32(*expected, prefix + "logits_native", len * f.vocab_size));
    }
    f.cases.push_back(std::move(gc));
    ++index;
  }
  return f;
}

}  // namespace hybridserve::testing
