#include "tools/lib/tiny_model.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/checkpoint.h"
#include "engine/generation_config.h"
#include "engine/json_util.h"
#include "engine/model_config.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace hybridserve::tools {
namespace {

using engine::Checkpoint;
using engine::DType;
using engine::ModelConfig;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// The tensors a LlamaForCausalLM checkpoint must hold, from its config alone
// (independent of TinyLlamaTensors), with HF names and shapes.
std::map<std::string, std::vector<int64_t>> ExpectedLlamaTensors(
    const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_kv_heads * c.head_dim, inter = c.intermediate_size;
  std::map<std::string, std::vector<int64_t>> t;
  t["model.embed_tokens.weight"] = {c.vocab_size, h};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    t[p + "input_layernorm.weight"] = {h};
    t[p + "post_attention_layernorm.weight"] = {h};
    t[p + "self_attn.q_proj.weight"] = {q, h};
    t[p + "self_attn.k_proj.weight"] = {kv, h};
    t[p + "self_attn.v_proj.weight"] = {kv, h};
    t[p + "self_attn.o_proj.weight"] = {h, q};
    if (c.attention_bias) {
      t[p + "self_attn.q_proj.bias"] = {q};
      t[p + "self_attn.k_proj.bias"] = {kv};
      t[p + "self_attn.v_proj.bias"] = {kv};
      t[p + "self_attn.o_proj.bias"] = {h};
    }
    t[p + "mlp.gate_proj.weight"] = {inter, h};
    t[p + "mlp.up_proj.weight"] = {inter, h};
    t[p + "mlp.down_proj.weight"] = {h, inter};
    if (c.mlp_bias) {
      t[p + "mlp.gate_proj.bias"] = {inter};
      t[p + "mlp.up_proj.bias"] = {inter};
      t[p + "mlp.down_proj.bias"] = {h};
    }
  }
  t["model.norm.weight"] = {h};
  if (!c.tie_word_embeddings) t["lm_head.weight"] = {c.vocab_size, h};
  return t;
}

// Checks the checkpoint holds exactly the tensors the config implies, with
// their shapes, and that each reads as f32.
void ExpectLlamaCheckpoint(const ModelConfig& config, const Checkpoint& ckpt) {
  const auto expected = ExpectedLlamaTensors(config);
  std::vector<std::string> names;
  for (const auto& [name, shape] : expected) names.push_back(name);
  EXPECT_EQ(ckpt.TensorNames(), names);
  for (const auto& [name, shape] : expected) {
    const engine::SafetensorsEntry* e = ckpt.Find(name);
    ASSERT_NE(e, nullptr) << name;
    EXPECT_EQ(e->shape, shape) << name;
    std::vector<float> values(static_cast<size_t>(e->num_elements()));
    EXPECT_TRUE(ckpt.Read(name, shape, DType::kF32, values.data()).ok()) << name;
  }
}

TinyLlamaOptions SmallOptions() {
  TinyLlamaOptions o;  // the "tiny" preset
  o.seed = 7;
  o.num_layers = 3;
  return o;
}

TEST(TinyModelTest, WritesLoadableModelForEveryDtypeAndSharding) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int shards : {1, 3}) {
      SCOPED_TRACE(absl::StrCat(std::string(engine::DTypeName(dtype)), " ",
                                shards, " shard(s)"));
      TinyLlamaOptions o = SmallOptions();
      o.dtype = dtype;
      o.num_shards = shards;
      std::vector<std::string> lines;
      o.progress = [&](std::string_view l) { lines.emplace_back(l); };
      const auto dir = testing::MakeTempDir() / "model";
      ASSERT_TRUE(WriteTinyLlama(o, dir).ok());
      EXPECT_GE(lines.size(), static_cast<size_t>(shards) + 1);

      auto config = engine::LoadModelConfig(dir);
      ASSERT_TRUE(config.ok()) << config.status();
      EXPECT_EQ(config->vocab_size, o.vocab_size);
      EXPECT_EQ(config->hidden_size, o.hidden_size);
      EXPECT_EQ(config->num_layers, 3);
      EXPECT_EQ(config->num_attention_heads, o.num_heads);
      EXPECT_EQ(config->num_kv_heads, o.num_kv_heads);
      EXPECT_EQ(config->head_dim, o.head_dim);
      EXPECT_EQ(config->rope.type, engine::RopeType::kDefault);
      EXPECT_DOUBLE_EQ(config->rope.theta, o.rope_theta);
      EXPECT_EQ(config->bos_token_id, kTinyLlamaBosId);
      EXPECT_EQ(config->eos_token_ids, std::vector<int64_t>({kTinyLlamaEosId}));
      EXPECT_EQ(config->torch_dtype, dtype == DType::kF32    ? "float32"
                                     : dtype == DType::kBF16 ? "bfloat16"
                                                             : "float16");
      auto gen = engine::LoadGenerationConfig(dir);
      ASSERT_TRUE(gen.ok()) << gen.status();
      EXPECT_EQ(gen->eos_token_ids, std::vector<int64_t>({kTinyLlamaEosId}));

      EXPECT_EQ(std::filesystem::exists(dir / "model.safetensors.index.json"),
                shards > 1);
      for (int s = 1; shards > 1 && s <= shards; ++s) {
        EXPECT_TRUE(std::filesystem::exists(
            dir / absl::StrCat("model-0000", s, "-of-00003.safetensors")));
      }

      auto ckpt = Checkpoint::Open(dir);
      ASSERT_TRUE(ckpt.ok()) << ckpt.status();
      ExpectLlamaCheckpoint(*config, **ckpt);
      EXPECT_EQ((*ckpt)->total_bytes(),
                static_cast<uint64_t>(TinyLlamaNumParameters(o)) *
                    engine::DTypeSize(dtype));
      // Stored values are the f32 stream rounded once to the dtype.
      for (const TinyLlamaTensor& t : TinyLlamaTensors(o)) {
        EXPECT_EQ((*ckpt)->Find(t.name)->dtype, dtype);
        const std::vector<float> want = TinyLlamaTensorValues(o.seed, t);
        std::vector<float> got(want.size());
        ASSERT_TRUE((*ckpt)->Read(t.name, t.shape, DType::kF32, got.data()).ok());
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ(got[i], engine::RoundTo(dtype, want[i])) << t.name << i;
        }
      }
    }
  }
}

TEST(TinyModelTest, SameSeedSameBytesOtherSeedOtherWeights) {
  TinyLlamaOptions o = SmallOptions();
  o.num_shards = 2;
  const auto a = testing::MakeTempDir(), b = testing::MakeTempDir(),
             c = testing::MakeTempDir();
  ASSERT_TRUE(WriteTinyLlama(o, a).ok());
  ASSERT_TRUE(WriteTinyLlama(o, b).ok());
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(a)) {
    const auto name = entry.path().filename();
    EXPECT_EQ(ReadAll(a / name), ReadAll(b / name)) << name;
    ++files;
  }
  EXPECT_EQ(files, 2u + 1u + 4u);  // shards, index, 4 JSON files
  o.seed = 8;
  ASSERT_TRUE(WriteTinyLlama(o, c).ok());
  EXPECT_NE(ReadAll(a / "model-00001-of-00002.safetensors"),
            ReadAll(c / "model-00001-of-00002.safetensors"));
  EXPECT_EQ(ReadAll(a / "config.json"), ReadAll(c / "config.json"));
}

TEST(TinyModelTest, ValuesMatchIndependentPythonComputation) {
  // Computed with a separate plain-Python implementation of the documented
  // recipe: state = splitmix64(seed ^ fnv1a64(name)); pairs of splitmix64
  // outputs → u1 = ((a >> 11) + 1) * 2^-53, u2 = (b >> 11) * 2^-53 →
  // Box-Muller r*cos, r*sin with r = sqrt(-2 ln u1); norms 1 + 0.1 z,
  // matrices 0.02 z, rounded once to f32.
  TinyLlamaTensor norm{"model.norm.weight", {4}, true};
  EXPECT_EQ(TinyLlamaTensorValues(0, norm),
            std::vector<float>({0.8345885872840881f, 0.9102532863616943f,
                                0.9840520620346069f, 0.9421810507774353f}));
  TinyLlamaTensor up{"model.layers.1.mlp.up_proj.weight", {3}, false};
  EXPECT_EQ(TinyLlamaTensorValues(42, up),
            std::vector<float>({-0.035635337233543396f, -0.0230848528444767f,
                                0.021611079573631287f}));
}

TEST(TinyModelTest, ValueStatistics) {
  TinyLlamaTensor m{"m", {256, 256}, false}, n{"n", {4096}, true};
  auto stats = [](const std::vector<float>& v) {
    double sum = 0, sq = 0;
    for (float x : v) sum += x;
    const double mean = sum / static_cast<double>(v.size());
    for (float x : v) sq += (x - mean) * (x - mean);
    return std::pair(mean, std::sqrt(sq / static_cast<double>(v.size())));
  };
  auto [mm, ms] = stats(TinyLlamaTensorValues(1, m));
  EXPECT_NEAR(mm, 0.0, 0.001);
  EXPECT_NEAR(ms, 0.02, 0.0005);
  auto [nm, ns] = stats(TinyLlamaTensorValues(1, n));
  EXPECT_NEAR(nm, 1.0, 0.01);
  EXPECT_NEAR(ns, 0.1, 0.005);
  // Different tensors get different streams.
  EXPECT_NE(TinyLlamaTensorValues(1, {"a", {8}, false}),
            TinyLlamaTensorValues(1, {"b", {8}, false}));
}

TEST(TinyModelTest, TiedEmbeddingsHaveNoLmHead) {
  TinyLlamaOptions o = SmallOptions();
  o.tie_word_embeddings = true;
  o.head_dim = 32;  // differs from hidden / heads = 16
  const auto dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteTinyLlama(o, dir).ok());
  auto config = engine::LoadModelConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_EQ(config->head_dim, 32);
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->Find("lm_head.weight"), nullptr);
  ExpectLlamaCheckpoint(*config, **ckpt);
}

TEST(TinyModelTest, RewritingAFolderReplacesOldWeightFiles) {
  TinyLlamaOptions o = SmallOptions();
  o.num_shards = 3;
  const auto dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteTinyLlama(o, dir).ok());
  o.num_shards = 1;
  ASSERT_TRUE(WriteTinyLlama(o, dir).ok());
  EXPECT_FALSE(std::filesystem::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(dir / "model-00001-of-00003.safetensors"));
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
}

TEST(TinyModelTest, PresetsAndValidation) {
  auto tiny = TinyLlamaPreset("tiny");
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->hidden_size, 64);
  EXPECT_EQ(tiny->num_layers, 2);
  auto demo = TinyLlamaPreset("demo");
  ASSERT_TRUE(demo.ok());
  EXPECT_GT(TinyLlamaNumParameters(*demo), 2'000'000);
  EXPECT_LT(TinyLlamaNumParameters(*demo), 10'000'000);
  auto big = TinyLlamaPreset("100m");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->hidden_size, 768);
  EXPECT_EQ(big->num_layers, 12);
  EXPECT_EQ(big->intermediate_size, 2048);
  EXPECT_EQ(big->num_heads, 12);
  EXPECT_EQ(big->num_kv_heads, 4);
  EXPECT_EQ(big->vocab_size, 32000);
  EXPECT_NEAR(static_cast<double>(TinyLlamaNumParameters(*big)), 100e6, 5e6);
  for (const auto& name : TinyLlamaPresetNames()) {
    EXPECT_TRUE(TinyLlamaPreset(name).ok()) << name;
    EXPECT_TRUE(ValidateTinyLlamaOptions(*TinyLlamaPreset(name)).ok()) << name;
  }
  auto unknown = TinyLlamaPreset("huge");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(Msg(unknown.status()).find("\"huge\""), std::string::npos);
  EXPECT_NE(Msg(unknown.status()).find("100m"), std::string::npos);

  struct Bad {
    void (*edit)(TinyLlamaOptions&);
    const char* needle;
  };
  const Bad bad[] = {
      {[](TinyLlamaOptions& o) { o.vocab_size = 260; }, "vocab_size"},
      {[](TinyLlamaOptions& o) { o.num_kv_heads = 3; }, "num_kv_heads"},
      {[](TinyLlamaOptions& o) { o.hidden_size = 0; }, "hidden_size"},
      {[](TinyLlamaOptions& o) { o.head_dim = 15; }, "head_dim"},
      {[](TinyLlamaOptions& o) { o.num_shards = 0; }, "shards"},
      {[](TinyLlamaOptions& o) { o.num_shards = 1000; }, "shards"},
      {[](TinyLlamaOptions& o) { o.dtype = DType::kI32; }, "dtype"},
      {[](TinyLlamaOptions& o) { o.rope_theta = -1; }, "rope_theta"},
  };
  for (const Bad& b : bad) {
    TinyLlamaOptions o;
    b.edit(o);
    const absl::Status s = WriteTinyLlama(o, testing::MakeTempDir());
    ASSERT_FALSE(s.ok()) << b.needle;
    EXPECT_NE(Msg(s).find(b.needle), std::string::npos) << s;
  }
}

TEST(TinyModelTest, TokenizerFilesHaveByteLevelLayout) {
  const auto dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteTinyLlama(SmallOptions(), dir).ok());
  auto text = engine::ReadFileToString(dir / "tokenizer.json");
  ASSERT_TRUE(text.ok());
  auto doc = engine::ParseJsonObject(*text, "tokenizer.json");
  ASSERT_TRUE(doc.ok()) << doc.status();
  const auto& model = (*doc)["model"];
  EXPECT_STREQ(model["type"].GetString(), "BPE");
  const auto& vocab = model["vocab"];
  EXPECT_EQ(vocab.MemberCount(), static_cast<unsigned>(kTinyLlamaMinVocabSize));
  std::set<int> ids;
  for (auto it = vocab.MemberBegin(); it != vocab.MemberEnd(); ++it) {
    ids.insert(it->value.GetInt());
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kTinyLlamaMinVocabSize));
  EXPECT_EQ(*ids.rbegin(), kTinyLlamaMinVocabSize - 1);
  EXPECT_EQ(vocab["!"].GetInt(), 33);
  EXPECT_EQ(vocab["\xc4\xa0"].GetInt(), 32);   // "Ġ" is the space byte
  EXPECT_EQ(vocab["\xc4\x80"].GetInt(), 0);    // "Ā" is byte 0
  EXPECT_EQ(vocab["\xc3\xbf"].GetInt(), 255);  // "ÿ" is itself
  EXPECT_EQ(vocab["<|begin_of_text|>"].GetInt(), kTinyLlamaBosId);
  EXPECT_EQ(vocab["<|end_of_text|>"].GetInt(), kTinyLlamaEosId);
  EXPECT_EQ(model["merges"].Size(), static_cast<unsigned>(kTinyLlamaNumMerges));
  EXPECT_STREQ((*doc)["pre_tokenizer"]["type"].GetString(), "ByteLevel");
  EXPECT_FALSE((*doc)["pre_tokenizer"]["add_prefix_space"].GetBool());
  EXPECT_TRUE((*doc)["pre_tokenizer"]["use_regex"].GetBool());
  EXPECT_STREQ((*doc)["decoder"]["type"].GetString(), "ByteLevel");
  EXPECT_EQ((*doc)["added_tokens"].Size(), 2u);

  auto config = engine::ReadFileToString(dir / "tokenizer_config.json");
  ASSERT_TRUE(config.ok());
  auto cdoc = engine::ParseJsonObject(*config, "tokenizer_config.json");
  ASSERT_TRUE(cdoc.ok());
  EXPECT_TRUE((*cdoc)["add_bos_token"].GetBool());
  EXPECT_STREQ((*cdoc)["bos_token"].GetString(), "<|begin_of_text|>");
  EXPECT_STREQ((*cdoc)["eos_token"].GetString(), "<|end_of_text|>");
}

TEST(TinyModelTest, TokenizerLoadsInHuggingFaceTokenizers) {
  const std::string python = testing::TestPython();
  if (python.empty()) {
    GTEST_SKIP() << "HS_TEST_PYTHON is empty: configure with "
                    "-DHS_TEST_PYTHON=$(bash scripts/python_env.sh | tail -n1) "
                    "to check tokenizer.json against HF tokenizers";
  }
  const auto dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteTinyLlama(SmallOptions(), dir).ok());
  const auto script = dir / "check.py";
  std::ofstream(script) << R"(import sys
from tokenizers import Tokenizer
t = Tokenizer.from_file(sys.argv[1])
s = "Hello there, the inn is open! h\u00e9llo \u4e16\u754c \U0001f642\n\tend  "
ids = t.encode(s, add_special_tokens=False).ids
assert t.decode(ids) == s, (t.decode(ids), s)
assert ids[:6] == [72, 101, 108, 108, 111, 261], ids   # "Hello", " the"
assert max(ids) < 266, ids
with_bos = t.encode("the end").ids
assert with_bos[0] == 256 and with_bos[1:] == t.encode("the end", add_special_tokens=False).ids, with_bos
assert t.token_to_id("<|end_of_text|>") == 257
assert t.encode("a<|end_of_text|>", add_special_tokens=False).ids == [97, 257]
print("ok")
)";
  const std::string cmd = absl::StrCat("\"", python, "\" \"", script.string(),
                                       "\" \"", (dir / "tokenizer.json").string(),
                                       "\" 2>&1");
  std::FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  const int rc = pclose(pipe);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_NE(output.find("ok"), std::string::npos) << output;
}

TEST(TinyModelTest, CommandLineToolWritesModelAndDocumentsEveryFlag) {
  const auto tool = testing::BinaryDir() / "tools" / "hs_make_tiny_model";
  if (!std::filesystem::exists(tool)) {
    GTEST_SKIP() << tool << " is not built";
  }
  const auto dir = testing::MakeTempDir();
  auto run = [](const std::string& cmd, std::string* output) {
    std::FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return -1;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
    return pclose(pipe);
  };
  std::string help;
  run(absl::StrCat("\"", tool.string(), "\" --help"), &help);
  for (const char* flag :
       {"--out", "--seed", "--vocab_size", "--hidden_size", "--intermediate_size",
        "--num_layers", "--num_heads", "--num_kv_heads", "--head_dim",
        "--max_position_embeddings", "--rope_theta", "--tie_word_embeddings",
        "--dtype", "--shards", "--preset"}) {
    EXPECT_NE(help.find(absl::StrCat(flag, " (")), std::string::npos)
        << flag << " missing from --help:\n"
        << help;
  }
  std::string out;
  const int rc = run(absl::StrCat("\"", tool.string(), "\" --out \"",
                                  (dir / "m").string(),
                                  "\" --dtype bf16 --shards 2 --num_layers 1 "
                                  "--head_dim 8 --tie_word_embeddings"),
                     &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("wrote"), std::string::npos) << out;
  auto config = engine::LoadModelConfig(dir / "m");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_layers, 1);
  EXPECT_EQ(config->head_dim, 8);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_EQ(config->torch_dtype, "bfloat16");
  auto ckpt = Checkpoint::Open(dir / "m");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ExpectLlamaCheckpoint(*config, **ckpt);

  std::string err;
  EXPECT_NE(run(absl::StrCat("\"", tool.string(), "\" --out \"",
                             (dir / "x").string(), "\" --dtype int8"),
                &err),
            0);
  EXPECT_NE(err.find("--dtype"), std::string::npos) << err;
}

// The loader on checkpoints transformers itself wrote (tests/golden/fixtures,
// when present): every config parses and every checkpoint holds exactly the
// tensors its config implies.
TEST(TinyModelTest, LoaderAcceptsTransformersWrittenFixtures) {
  const auto fixtures = testing::SourceDir() / "tests" / "golden" / "fixtures";
  if (!std::filesystem::is_directory(fixtures)) {
    GTEST_SKIP() << fixtures << " does not exist";
  }
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(fixtures)) {
    if (!std::filesystem::exists(entry.path() / "config.json")) continue;
    SCOPED_TRACE(entry.path().string());
    auto config = engine::LoadModelConfig(entry.path());
    ASSERT_TRUE(config.ok()) << config.status();
    // SSM / hybrid fixtures are checked by tests/golden/ssm_*_test.cc.
    if (config->architecture != "LlamaForCausalLM") continue;
    auto ckpt = Checkpoint::Open(entry.path());
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    ExpectLlamaCheckpoint(*config, **ckpt);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace hybridserve::tools
