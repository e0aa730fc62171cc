#include "tools/lib/tiny_model.h"

#include <algorithm>
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
#include "absl/strings/str_join.h"
#include "engine/checkpoint.h"
#include "engine/generation_config.h"
#include "engine/json_util.h"
#include "engine/model_config.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/plan_builder.h"
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
// (independent of TinyModelTensors), with HF names and shapes.
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

// Runs a shell command, appending its stdout and stderr to *output; returns
// pclose's status.
int RunCommand(const std::string& cmd, std::string* output) {
  std::FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  return pclose(pipe);
}

TinyModelOptions SmallOptions() {
  TinyModelOptions o;  // the "tiny" preset
  o.seed = 7;
  o.num_layers = 3;
  return o;
}

TEST(TinyModelTest, WritesLoadableModelForEveryDtypeAndSharding) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int shards : {1, 3}) {
      SCOPED_TRACE(absl::StrCat(std::string(engine::DTypeName(dtype)), " ",
                                shards, " shard(s)"));
      TinyModelOptions o = SmallOptions();
      o.dtype = dtype;
      o.num_shards = shards;
      std::vector<std::string> lines;
      o.progress = [&](std::string_view l) { lines.emplace_back(l); };
      const auto dir = testing::MakeTempDir() / "model";
      ASSERT_TRUE(WriteTinyModel(o, dir).ok());
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
                static_cast<uint64_t>(TinyModelNumParameters(o)) *
                    engine::DTypeSize(dtype));
      // Stored values are the f32 stream rounded once to the dtype.
      for (const TinyTensor& t : TinyModelTensors(o)) {
        EXPECT_EQ((*ckpt)->Find(t.name)->dtype, dtype);
        const std::vector<float> want = TinyTensorValues(o.seed, t);
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
  TinyModelOptions o = SmallOptions();
  o.num_shards = 2;
  const auto a = testing::MakeTempDir(), b = testing::MakeTempDir(),
             c = testing::MakeTempDir();
  ASSERT_TRUE(WriteTinyModel(o, a).ok());
  ASSERT_TRUE(WriteTinyModel(o, b).ok());
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(a)) {
    const auto name = entry.path().filename();
    EXPECT_EQ(ReadAll(a / name), ReadAll(b / name)) << name;
    ++files;
  }
  EXPECT_EQ(files, 2u + 1u + 4u);  // shards, index, 4 JSON files
  o.seed = 8;
  ASSERT_TRUE(WriteTinyModel(o, c).ok());
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
  TinyTensor norm{"model.norm.weight", {4}, TensorInit::kNorm};
  EXPECT_EQ(TinyTensorValues(0, norm),
            std::vector<float>({0.8345885872840881f, 0.9102532863616943f,
                                0.9840520620346069f, 0.9421810507774353f}));
  TinyTensor up{"model.layers.1.mlp.up_proj.weight", {3}, TensorInit::kNormal};
  EXPECT_EQ(TinyTensorValues(42, up),
            std::vector<float>({-0.035635337233543396f, -0.0230848528444767f,
                                0.021611079573631287f}));
}

TEST(TinyModelTest, ValueStatistics) {
  TinyTensor m{"m", {256, 256}, TensorInit::kNormal}, n{"n", {4096}, TensorInit::kNorm};
  auto stats = [](const std::vector<float>& v) {
    double sum = 0, sq = 0;
    for (float x : v) sum += x;
    const double mean = sum / static_cast<double>(v.size());
    for (float x : v) sq += (x - mean) * (x - mean);
    return std::pair(mean, std::sqrt(sq / static_cast<double>(v.size())));
  };
  auto [mm, ms] = stats(TinyTensorValues(1, m));
  EXPECT_NEAR(mm, 0.0, 0.001);
  EXPECT_NEAR(ms, 0.02, 0.0005);
  auto [nm, ns] = stats(TinyTensorValues(1, n));
  EXPECT_NEAR(nm, 1.0, 0.01);
  EXPECT_NEAR(ns, 0.1, 0.005);
  // Different tensors get different streams.
  EXPECT_NE(TinyTensorValues(1, {"a", {8}, TensorInit::kNormal}),
            TinyTensorValues(1, {"b", {8}, TensorInit::kNormal}));
}

TEST(TinyModelTest, TiedEmbeddingsHaveNoLmHead) {
  TinyModelOptions o = SmallOptions();
  o.tie_word_embeddings = true;
  o.head_dim = 32;  // differs from hidden / heads = 16
  const auto dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteTinyModel(o, dir).ok());
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
  TinyModelOptions o = SmallOptions();
  o.num_shards = 3;
  const auto dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteTinyModel(o, dir).ok());
  o.num_shards = 1;
  ASSERT_TRUE(WriteTinyModel(o, dir).ok());
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
  EXPECT_GT(TinyModelNumParameters(*demo), 2'000'000);
  EXPECT_LT(TinyModelNumParameters(*demo), 10'000'000);
  auto big = TinyLlamaPreset("100m");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->hidden_size, 768);
  EXPECT_EQ(big->num_layers, 12);
  EXPECT_EQ(big->intermediate_size, 2048);
  EXPECT_EQ(big->num_heads, 12);
  EXPECT_EQ(big->num_kv_heads, 4);
  EXPECT_EQ(big->vocab_size, 32000);
  EXPECT_NEAR(static_cast<double>(TinyModelNumParameters(*big)), 100e6, 5e6);
  for (const auto& name : TinyLlamaPresetNames()) {
    EXPECT_TRUE(TinyLlamaPreset(name).ok()) << name;
    EXPECT_TRUE(ValidateTinyModelOptions(*TinyLlamaPreset(name)).ok()) << name;
  }
  auto unknown = TinyLlamaPreset("huge");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(Msg(unknown.status()).find("\"huge\""), std::string::npos);
  EXPECT_NE(Msg(unknown.status()).find("100m"), std::string::npos);

  struct Bad {
    void (*edit)(TinyModelOptions&);
    const char* needle;
  };
  const Bad bad[] = {
      {[](TinyModelOptions& o) { o.vocab_size = 260; }, "vocab_size"},
      {[](TinyModelOptions& o) { o.num_kv_heads = 3; }, "num_kv_heads"},
      {[](TinyModelOptions& o) { o.hidden_size = 0; }, "hidden_size"},
      {[](TinyModelOptions& o) { o.head_dim = 15; }, "head_dim"},
      {[](TinyModelOptions& o) { o.num_shards = 0; }, "shards"},
      {[](TinyModelOptions& o) { o.num_shards = 1000; }, "shards"},
      {[](TinyModelOptions& o) { o.dtype = DType::kI32; }, "dtype"},
      {[](TinyModelOptions& o) { o.rope_theta = -1; }, "rope_theta"},
  };
  for (const Bad& b : bad) {
    TinyModelOptions o;
    b.edit(o);
    const absl::Status s = WriteTinyModel(o, testing::MakeTempDir());
    ASSERT_FALSE(s.ok()) << b.needle;
    EXPECT_NE(Msg(s).find(b.needle), std::string::npos) << s;
  }
}

TEST(TinyModelTest, TokenizerFilesHaveByteLevelLayout) {
  const auto dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteTinyModel(SmallOptions(), dir).ok());
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
  ASSERT_TRUE(WriteTinyModel(SmallOptions(), dir).ok());
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
  // tests/CMakeLists.txt makes this test depend on the tool.
  ASSERT_TRUE(std::filesystem::exists(tool)) << tool << " is not built";
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
        "--dtype", "--shards", "--preset", "--architecture",
        "--attn_layer_indices", "--ssm_state_size", "--ssm_conv_kernel",
        "--ssm_expand", "--ssm_num_heads", "--ssm_head_dim", "--ssm_n_groups",
        "--ssm_chunk_size"}) {
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
  ASSERT_TRUE(std::filesystem::is_directory(fixtures)) << fixtures << " does not exist";
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

// ---- Mamba-2, Bamba, Mamba-1 -------------------------------------------------

using engine::LayerKind;

std::vector<LayerKind> ExpectedKinds(const TinyModelOptions& o) {
  std::vector<LayerKind> kinds;
  for (int64_t i = 0; i < o.num_layers; ++i) {
    switch (o.architecture) {
      case TinyArchitecture::kLlama:
      case TinyArchitecture::kQwen3:
      case TinyArchitecture::kQwen2:
      case TinyArchitecture::kMistral:
        kinds.push_back(LayerKind::kAttention);
        break;
      case TinyArchitecture::kMamba2:
        kinds.push_back(LayerKind::kMamba2);
        break;
      case TinyArchitecture::kMamba:
        kinds.push_back(LayerKind::kMamba1);
        break;
      case TinyArchitecture::kBamba:
        kinds.push_back(std::count(o.attn_layer_indices.begin(),
                                   o.attn_layer_indices.end(), i)
                            ? LayerKind::kAttention
                            : LayerKind::kMamba2);
        break;
    }
  }
  return kinds;
}

std::unique_ptr<engine::Engine> MakeEngine(const std::filesystem::path& dir) {
  engine::EngineOptions eo;
  eo.model_dir = dir;
  eo.device = "cpu";
  eo.num_threads = testing::TestCpuThreads();
  eo.kv_cache_bytes = 16 << 20;
  eo.max_num_tokens = 256;
  eo.max_num_seqs = 4;
  eo.max_model_len = 512;
  auto e = engine::Engine::Create(eo);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : nullptr;
}

// Last-position logits of `prompt` (prefilled in one step) through our engine.
std::vector<float> EngineLogits(engine::Engine& e, const std::vector<int32_t>& prompt) {
  engine::PlanBuilder builder(e.memory_plan().num_blocks, e.memory_plan().block_tokens,
                              e.memory_plan().num_state_slots);
  auto plan = builder.Build({{.seq_id = 0, .tokens = prompt}});
  EXPECT_TRUE(plan.ok()) << plan.status();
  engine::StepOutput out;
  EXPECT_TRUE(e.Step(*plan, &out).ok());
  return out.logits;
}

std::string ArchName(TinyArchitecture a) { return std::string(TinyArchitectureName(a)); }

TEST(TinyModelTest, EveryArchitectureLoadsInTheEngineAndRunsSteps) {
  for (TinyArchitecture a : AllTinyArchitectures()) {
    SCOPED_TRACE(ArchName(a));
    auto o = TinyModelPreset(a, "tiny");
    ASSERT_TRUE(o.ok()) << o.status();
    o->seed = 11;
    const auto dir = testing::MakeTempDir() / ArchName(a);
    ASSERT_TRUE(WriteTinyModel(*o, dir).ok());

    auto config = engine::LoadModelConfig(dir);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->architecture, TinyArchitectureClass(a));
    EXPECT_EQ(config->vocab_size, o->vocab_size);
    EXPECT_EQ(config->hidden_size, o->hidden_size);
    EXPECT_EQ(config->layer_kinds, ExpectedKinds(*o));
    EXPECT_EQ(config->bos_token_id, kTinyLlamaBosId);
    EXPECT_EQ(config->eos_token_ids, std::vector<int64_t>({kTinyLlamaEosId}));
    if (!IsDenseTransformer(a)) {
      EXPECT_EQ(config->ssm.d_inner, o->ssm_expand * o->hidden_size);
      EXPECT_EQ(config->ssm.d_state, o->ssm_state_size);
      EXPECT_EQ(config->ssm.d_conv, o->ssm_conv_kernel);
    }
    if (a == TinyArchitecture::kMamba2 || a == TinyArchitecture::kBamba) {
      EXPECT_EQ(config->ssm.num_heads, o->ssm_num_heads);
      EXPECT_EQ(config->ssm.head_dim, o->ssm_head_dim);
      EXPECT_EQ(config->ssm.n_groups, o->ssm_n_groups);
      EXPECT_EQ(config->ssm.dt_min, 0.0);
      EXPECT_TRUE(std::isinf(config->ssm.dt_max));
    }
    // The checkpoint holds exactly the listed tensors.
    auto ckpt = Checkpoint::Open(dir);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    std::vector<std::string> names;
    for (const TinyTensor& t : TinyModelTensors(*o)) {
      names.push_back(t.name);
      ASSERT_NE((*ckpt)->Find(t.name), nullptr) << t.name;
      EXPECT_EQ((*ckpt)->Find(t.name)->shape, t.shape) << t.name;
    }
    std::sort(names.begin(), names.end());
    EXPECT_EQ((*ckpt)->TensorNames(), names);

    // Prefill, then two decode steps, in our engine: finite logits, and the
    // decode continues the prefilled state (the state slot / KV blocks).
    auto e = MakeEngine(dir);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->memory_plan().num_state_slots > 0, !IsDenseTransformer(a));
    EXPECT_EQ(e->memory_plan().num_blocks > 0,
              IsDenseTransformer(a) || a == TinyArchitecture::kBamba);
    const std::vector<int32_t> prompt = {256, 72, 101, 108, 108, 111, 261, 33};
    engine::PlanBuilder builder(e->memory_plan().num_blocks, e->memory_plan().block_tokens,
                                e->memory_plan().num_state_slots);
    auto plan = builder.Build({{.seq_id = 0, .tokens = {prompt.begin(), prompt.end() - 2}}});
    ASSERT_TRUE(plan.ok()) << plan.status();
    engine::StepOutput out;
    ASSERT_TRUE(e->Step(*plan, &out).ok());
    for (int32_t token : {prompt[6], prompt[7]}) {
      plan = builder.Build({{.seq_id = 0, .tokens = {token}}});
      ASSERT_TRUE(plan.ok()) << plan.status();
      ASSERT_TRUE(e->Step(*plan, &out).ok());
    }
    ASSERT_EQ(out.logits.size(), static_cast<size_t>(o->vocab_size));
    for (float v : out.logits) ASSERT_TRUE(std::isfinite(v));
    // Incremental decode agrees with one pass over the whole prompt (class (c)).
    const std::vector<float> whole = EngineLogits(*e, prompt);
    ASSERT_EQ(whole.size(), out.logits.size());
    float gap = 0.0f, spread = 0.0f;
    for (size_t i = 0; i < whole.size(); ++i) {
      gap = std::max(gap, std::abs(whole[i] - out.logits[i]));
      spread = std::max(spread, std::abs(whole[i] - whole[0]));
    }
    EXPECT_LT(gap, 1e-4f);
    EXPECT_GT(spread, 1e-3f) << "logits do not depend on the token";
  }
}

TEST(TinyModelTest, BambaAttentionAtChosenLayers) {
  auto o = TinyModelPreset(TinyArchitecture::kBamba, "tiny");
  ASSERT_TRUE(o.ok());
  o->num_layers = 8;
  o->attn_layer_indices = {1, 5};
  const auto dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteTinyModel(*o, dir).ok());
  auto config = engine::LoadModelConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->layer_kinds, ExpectedKinds(*o));
  EXPECT_EQ(config->num_attention_layers(), 2);
  EXPECT_EQ(config->num_ssm_layers(), 6);
  EXPECT_EQ(config->rotary_dim(), o->head_dim / 2);  // BambaConfig's half
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok());
  EXPECT_NE((*ckpt)->Find("model.layers.5.self_attn.q_proj.weight"), nullptr);
  EXPECT_NE((*ckpt)->Find("model.layers.4.mamba.in_proj.weight"), nullptr);
  EXPECT_EQ((*ckpt)->Find("model.layers.5.mamba.in_proj.weight"), nullptr);
  EXPECT_NE((*ckpt)->Find("model.layers.7.feed_forward.down_proj.weight"), nullptr);
  auto e = MakeEngine(dir);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(EngineLogits(*e, {256, 1, 2, 3}).size(), static_cast<size_t>(o->vocab_size));
}

TEST(TinyModelTest, SsmPresetsAndValidation) {
  for (TinyArchitecture a : AllTinyArchitectures()) {
    for (const std::string& name : TinyModelPresetNames(a)) {
      auto o = TinyModelPreset(a, name);
      ASSERT_TRUE(o.ok()) << ArchName(a) << " " << name;
      EXPECT_EQ(o->architecture, a);
      EXPECT_TRUE(ValidateTinyModelOptions(*o).ok())
          << ArchName(a) << " " << name << ": " << ValidateTinyModelOptions(*o);
    }
    auto unknown = TinyModelPreset(a, "huge");
    ASSERT_FALSE(unknown.ok());
    EXPECT_NE(Msg(unknown.status()).find("demo"), std::string::npos);
  }
  // The demo hybrid: a few M parameters, one attention layer in four, every id
  // a token.
  auto demo = TinyModelPreset(TinyArchitecture::kBamba, "demo");
  ASSERT_TRUE(demo.ok());
  EXPECT_GT(TinyModelNumParameters(*demo), 2'000'000);
  EXPECT_LT(TinyModelNumParameters(*demo), 10'000'000);
  EXPECT_EQ(demo->num_layers, 4 * static_cast<int64_t>(demo->attn_layer_indices.size()));
  EXPECT_EQ(demo->vocab_size, kTinyLlamaMinVocabSize);

  struct Bad {
    TinyArchitecture arch;
    void (*edit)(TinyModelOptions&);
    const char* needle;
  };
  const Bad bad[] = {
      {TinyArchitecture::kMamba2, [](TinyModelOptions& o) { o.ssm_num_heads = 4; },
       "ssm_num_heads * ssm_head_dim"},
      {TinyArchitecture::kMamba2, [](TinyModelOptions& o) { o.ssm_n_groups = 3; },
       "ssm_n_groups"},
      {TinyArchitecture::kMamba2, [](TinyModelOptions& o) { o.ssm_state_size = 0; },
       "ssm_state_size"},
      {TinyArchitecture::kMamba, [](TinyModelOptions& o) { o.ssm_conv_kernel = 1; },
       "ssm_conv_kernel"},
      {TinyArchitecture::kBamba, [](TinyModelOptions& o) { o.attn_layer_indices = {4}; },
       "attn_layer_indices"},
      {TinyArchitecture::kBamba,
       [](TinyModelOptions& o) { o.attn_layer_indices = {2, 1}; }, "attn_layer_indices"},
      {TinyArchitecture::kBamba, [](TinyModelOptions& o) { o.head_dim = 32; }, "head_dim"},
      {TinyArchitecture::kBamba, [](TinyModelOptions& o) { o.num_kv_heads = 3; },
       "num_kv_heads"},
  };
  for (const Bad& b : bad) {
    auto o = TinyModelPreset(b.arch, "tiny");
    ASSERT_TRUE(o.ok());
    b.edit(*o);
    const absl::Status s = WriteTinyModel(*o, testing::MakeTempDir());
    ASSERT_FALSE(s.ok()) << b.needle;
    EXPECT_NE(Msg(s).find(b.needle), std::string::npos) << s;
  }
  // Sizes a pure SSM model does not have are not checked.
  auto mamba = TinyModelPreset(TinyArchitecture::kMamba, "tiny");
  mamba->num_kv_heads = 3;
  EXPECT_TRUE(ValidateTinyModelOptions(*mamba).ok());
}

TEST(TinyModelTest, SsmInitialisation) {
  auto o = TinyModelPreset(TinyArchitecture::kMamba, "tiny");
  ASSERT_TRUE(o.ok());
  for (const TinyTensor& t : TinyModelTensors(*o)) {
    const std::vector<float> v = TinyTensorValues(3, t);
    if (t.name == "backbone.layers.0.mixer.A_log") {  // [d_inner, N]: log(1..N)
      EXPECT_EQ(v[0], 0.0f);
      EXPECT_EQ(v[1], std::log(2.0f));
      EXPECT_EQ(v[t.shape[1]], 0.0f);
    }
    if (t.name == "backbone.layers.0.mixer.D") {
      EXPECT_EQ(v, std::vector<float>(v.size(), 1.0f));
    }
    if (t.name == "backbone.layers.0.mixer.dt_proj.bias") {
      // softplus(bias) is dt in [1e-3, 0.1].
      for (float b : v) {
        const double dt = std::log1p(std::exp(static_cast<double>(b)));
        EXPECT_GE(dt, 0.999e-3);
        EXPECT_LE(dt, 0.1001);
      }
    }
  }
}

TEST(TinyModelTest, CommandLineToolWritesEveryArchitecture) {
  const auto tool = testing::BinaryDir() / "tools" / "hs_make_tiny_model";
  // tests/CMakeLists.txt makes this test depend on the tool.
  ASSERT_TRUE(std::filesystem::exists(tool)) << tool << " is not built";
  const auto dir = testing::MakeTempDir();
  const std::string bin = absl::StrCat("\"", tool.string(), "\" --out \"");
  std::string out;
  ASSERT_EQ(RunCommand(absl::StrCat(bin, (dir / "b").string(),
                                    "\" --architecture bamba --num_layers 8 "
                                    "--attn_layer_indices 1,5 --hidden_size 128 "
                                    "--num_heads 4 --num_kv_heads 2 --ssm_n_groups 2"),
                       &out),
            0)
      << out;
  EXPECT_NE(out.find("BambaForCausalLM"), std::string::npos) << out;
  auto config = engine::LoadModelConfig(dir / "b");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->head_dim, 32);           // follows hidden / heads
  EXPECT_EQ(config->ssm.num_heads, 16);      // follows 2 x 128 / 16
  EXPECT_EQ(config->ssm.n_groups, 2);
  std::vector<LayerKind> kinds(8, LayerKind::kMamba2);
  kinds[1] = kinds[5] = LayerKind::kAttention;
  EXPECT_EQ(config->layer_kinds, kinds);

  for (const char* arch : {"mamba2", "mamba"}) {
    out.clear();
    ASSERT_EQ(RunCommand(absl::StrCat(bin, (dir / arch).string(),
                                      "\" --architecture ", arch,
                                      " --ssm_state_size 8 --dtype bf16"),
                         &out),
              0)
        << out;
    config = engine::LoadModelConfig(dir / arch);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->ssm.d_state, 8);
    EXPECT_EQ(config->torch_dtype, "bfloat16");
  }

  struct BadCall {
    const char* args;
    const char* needle;
  };
  const BadCall bad[] = {
      {"--architecture mamba2 --num_heads 4", "--num_heads does not apply"},
      {"--architecture llama --ssm_state_size 4", "--ssm_state_size does not apply"},
      {"--architecture mamba --ssm_n_groups 2", "--ssm_n_groups does not apply"},
      {"--attn_layer_indices 1", "--attn_layer_indices does not apply"},
      {"--architecture bamba --attn_layer_indices 1,x", "--attn_layer_indices"},
      {"--architecture gpt2", "--architecture"},
      {"--architecture mamba2 --preset 100m", "--preset"},
  };
  for (const BadCall& b : bad) {
    std::string err;
    EXPECT_NE(RunCommand(absl::StrCat(bin, (dir / "x").string(), "\" ", b.args), &err), 0)
        << b.args;
    EXPECT_NE(err.find(b.needle), std::string::npos) << b.args << ": " << err;
  }
}

// The folders as transformers sees them: config.json and
// generation_config.json are what save_pretrained writes back for the class,
// from_pretrained loads every weight (nothing missing, unexpected or
// mismatched), the tokenizer loads, and the forward pass gives our engine's
// logits (f32 tolerance, DESIGN.md section 7). Needs the pinned transformers
// of scripts/make_golden.sh (.venv-golden, or HS_GOLDEN_PYTHON).
TEST(TinyModelTest, TransformersLoadsEveryArchitecture) {
  std::string python;
  if (const char* env = std::getenv("HS_GOLDEN_PYTHON"); env != nullptr) {
    python = env;
  } else if (const auto venv = testing::SourceDir() / ".venv-golden" / "bin" / "python";
             std::filesystem::exists(venv)) {
    python = venv.string();
  }
  if (python.empty()) {
    GTEST_SKIP() << "SKIPPED: no transformers venv (run scripts/make_golden.sh, "
                    "or set HS_GOLDEN_PYTHON) to check the folders against "
                    "transformers";
  }
  const auto root = testing::MakeTempDir();
  std::vector<std::pair<std::string, TinyModelOptions>> models;
  for (TinyArchitecture a : AllTinyArchitectures()) {
    auto o = TinyModelPreset(a, "tiny");
    ASSERT_TRUE(o.ok());
    o->seed = 5;
    models.emplace_back(ArchName(a), *o);
  }
  {  // Bamba with two attention layers, groups, tied embeddings.
    auto o = *TinyModelPreset(TinyArchitecture::kBamba, "tiny");
    o.num_layers = 6;
    o.attn_layer_indices = {0, 4};
    o.ssm_n_groups = 2;
    o.tie_word_embeddings = true;
    models.emplace_back("bamba_attn04_g2_tied", o);
    auto m = *TinyModelPreset(TinyArchitecture::kMamba2, "tiny");
    m.ssm_n_groups = 4;
    m.ssm_conv_kernel = 3;
    m.tie_word_embeddings = true;
    models.emplace_back("mamba2_g4_tied", m);
  }
  const std::vector<int32_t> prompt = {256, 72, 101, 108, 108, 111, 261, 33, 10, 3, 300};
  std::string folders;
  for (const auto& [name, o] : models) {
    ASSERT_TRUE(WriteTinyModel(o, root / name).ok()) << name;
    absl::StrAppend(&folders, " \"", (root / name).string(), "\"");
  }
  const auto script = root / "check.py";
  std::ofstream(script) << R"(import json, os, sys, tempfile, warnings
warnings.filterwarnings("ignore")
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
torch.set_grad_enabled(False)
ids = json.loads(sys.argv[1])
result = {}
for folder in sys.argv[2:]:
    r = {}
    def resaved(obj, name):
        with tempfile.TemporaryDirectory() as d:
            obj.save_pretrained(d)
            with open(os.path.join(d, name)) as f:
                return json.load(f)
    for name, cls in (("config.json", AutoConfig), ("generation_config.json", GenerationConfig)):
        with open(os.path.join(folder, name)) as f:
            ours = json.load(f)
        theirs = resaved(cls.from_pretrained(folder), name)
        r[name] = sorted(k for k in set(ours) | set(theirs) if ours.get(k, "?") != theirs.get(k, "?"))
    config = AutoConfig.from_pretrained(folder)
    kw = {"attn_implementation": "eager"} if config.model_type in ("llama", "bamba") else {}
    model, info = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, output_loading_info=True, **kw)
    r["loading"] = {k: sorted(map(str, v)) for k, v in info.items() if v}
    r["class"] = type(model).__name__
    tok = AutoTokenizer.from_pretrained(folder)
    r["tokens"] = tok("Hello the").input_ids
    out = model.eval()(input_ids=torch.tensor([ids]), use_cache=False)
    r["logits"] = out.logits[0, -1].tolist()
    result[os.path.basename(folder)] = r
print("RESULT " + json.dumps(result))
)";
  std::string output;
  const int rc = RunCommand(absl::StrCat("\"", python, "\" \"", script.string(), "\" \"[",
                                         absl::StrJoin(prompt, ","), "]\"", folders),
                            &output);
  ASSERT_EQ(rc, 0) << output;
  const size_t at = output.rfind("RESULT ");
  ASSERT_NE(at, std::string::npos) << output;
  auto doc = engine::ParseJsonObject(output.substr(at + 7), "check.py output");
  ASSERT_TRUE(doc.ok()) << doc.status();
  for (const auto& [name, o] : models) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(doc->HasMember(name.c_str()));
    const auto& r = (*doc)[name.c_str()];
    EXPECT_EQ(r["config.json"].Size(), 0u) << "config.json keys differ from transformers'";
    EXPECT_EQ(r["generation_config.json"].Size(), 0u);
    EXPECT_EQ(r["loading"].MemberCount(), 0u) << "missing / unexpected / mismatched weights";
    EXPECT_EQ(std::string(r["class"].GetString()), TinyArchitectureClass(o.architecture));
    std::vector<int64_t> tokens;
    for (const auto& t : r["tokens"].GetArray()) tokens.push_back(t.GetInt64());
    EXPECT_EQ(tokens, std::vector<int64_t>({256, 72, 101, 108, 108, 111, 261}));
    auto e = MakeEngine(root / name);
    ASSERT_NE(e, nullptr);
    const std::vector<float> ours = EngineLogits(*e, prompt);
    ASSERT_EQ(r["logits"].Size(), ours.size());
    float gap = 0.0f;
    for (size_t i = 0; i < ours.size(); ++i) {
      gap = std::max(gap, std::abs(ours[i] - r["logits"][static_cast<rapidjson::SizeType>(i)]
                                                 .GetFloat()));
    }
    EXPECT_LT(gap, 1e-3f) << "max |logit gap| to transformers";
    std::printf("%s: max |logit gap| to transformers %.3g\n", name.c_str(), gap);
  }
}

}  // namespace
}  // namespace hybridserve::tools
