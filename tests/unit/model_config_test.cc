#include "engine/model_config.h"

#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_cat.h"
#include "engine/generation_config.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace hybridserve::engine {
namespace {

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// What transformers v5 save_pretrained writes for a small LlamaForCausalLM.
constexpr const char* kV5Config = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "dtype": "bfloat16",
  "eos_token_id": 2,
  "head_dim": 16,
  "hidden_act": "silu",
  "hidden_size": 64,
  "initializer_range": 0.02,
  "intermediate_size": 128,
  "max_position_embeddings": 2048,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 4,
  "num_hidden_layers": 3,
  "num_key_value_heads": 2,
  "pad_token_id": null,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
  "tie_word_embeddings": false,
  "transformers_version": "5.24.0",
  "use_cache": true,
  "vocab_size": 300
})";

// Replaces `from` by `to` in kV5Config (each must occur).
std::string V5With(std::string_view from, std::string_view to) {
  std::string s = kV5Config;
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(ModelConfigTest, ParsesV5Config) {
  auto c = ParseModelConfig(kV5Config, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->vocab_size, 300);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->intermediate_size, 128);
  EXPECT_EQ(c->num_layers, 3);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->rope.type, RopeType::kDefault);
  EXPECT_DOUBLE_EQ(c->rope.theta, 500000.0);
  EXPECT_EQ(c->rotary_dim(), 16);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, std::vector<int64_t>({2}));
  EXPECT_FALSE(c->pad_token_id.has_value());
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  ASSERT_EQ(c->layer_kinds.size(), 3u);
  for (LayerKind k : c->layer_kinds) EXPECT_EQ(k, LayerKind::kAttention);
  EXPECT_EQ(c->family(), ArchitectureFamily::kTransformer);
  EXPECT_EQ(FamilyName(c->family()), "transformer");
  EXPECT_EQ(c->num_attention_layers(), 3);
}

TEST(ModelConfigTest, ParsesV4ConfigWithDefaults) {
  // A v4-style Llama-2 config: torch_dtype, rope_theta at top level, no
  // head_dim / num_key_value_heads / tie_word_embeddings.
  constexpr const char* kV4 = R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 96, "intermediate_size": 256, "num_hidden_layers": 2,
    "num_attention_heads": 6, "max_position_embeddings": 4096,
    "vocab_size": 1000, "rope_theta": 10000.0, "rope_scaling": null,
    "torch_dtype": "float16", "eos_token_id": [5, 7], "bos_token_id": 3})";
  auto c = ParseModelConfig(kV4, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_kv_heads, 6);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_EQ(c->rope.type, RopeType::kDefault);
  EXPECT_DOUBLE_EQ(c->rope.theta, 10000.0);
  EXPECT_EQ(c->torch_dtype, "float16");
  EXPECT_EQ(c->eos_token_ids, std::vector<int64_t>({5, 7}));
}

TEST(ModelConfigTest, ExplicitHeadDimMayDifferFromHiddenOverHeads) {
  auto c = ParseModelConfig(V5With("\"head_dim\": 16", "\"head_dim\": 32"),
                            "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 32);  // hidden 64 / 4 heads would be 16
  EXPECT_EQ(c->rotary_dim(), 32);
}

TEST(ModelConfigTest, V4RopeScalingLlama3) {
  // Llama-3.1's rope_scaling as v4 writes it ("rope_type"), theta at top.
  std::string json = V5With(
      R"("rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"})",
      R"("rope_theta": 500000.0, "rope_scaling": {"factor": 8.0,
          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192, "rope_type": "llama3"})");
  auto c = ParseModelConfig(json, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(c->rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope.high_freq_factor, 4.0);
  EXPECT_EQ(c->rope.original_max_position_embeddings, 8192);
}

TEST(ModelConfigTest, V4RopeScalingLinearWithOldTypeKey) {
  std::string json = V5With(
      R"("rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"})",
      R"("rope_scaling": {"type": "linear", "factor": 2.0})");
  auto c = ParseModelConfig(json, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope.type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(c->rope.factor, 2.0);
  EXPECT_DOUBLE_EQ(c->rope.theta, 10000.0);  // no theta anywhere: default
}

TEST(ModelConfigTest, V5RopeParametersLlama3WithPartialRotary) {
  std::string json = V5With(
      R"("rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"})",
      R"("rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0,
          "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192,
          "partial_rotary_factor": 0.5})");
  auto c = ParseModelConfig(json, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope.factor, 32.0);
  EXPECT_DOUBLE_EQ(c->rope.partial_rotary_factor, 0.5);
  EXPECT_EQ(c->rotary_dim(), 8);
}

TEST(ModelConfigTest, Llama3OriginalMaxDefaultsToMaxPositionEmbeddings) {
  std::string json = V5With(
      R"("rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"})",
      R"("rope_parameters": {"rope_type": "llama3", "factor": 8,
          "low_freq_factor": 1, "high_freq_factor": 4})");
  auto c = ParseModelConfig(json, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope.original_max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c->rope.factor, 8.0);  // integers are accepted as numbers
}

TEST(ModelConfigTest, AcceptsInfinityElsewhereInConfig) {
  auto c = ParseModelConfig(
      V5With("\"use_cache\": true",
             "\"use_cache\": true, \"time_step_limit\": [0.0, Infinity]"),
      "config.json");
  EXPECT_TRUE(c.ok()) << c.status();
}

struct RejectCase {
  const char* name;
  std::string from;
  std::string to;
  std::string expect_in_message;
};

TEST(ModelConfigTest, RejectionsNameTheProblem) {
  const std::string rope_default =
      R"("rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"})";
  const std::vector<RejectCase> cases = {
      {"architecture", R"(["LlamaForCausalLM"])", R"(["GPT2LMHeadModel"])",
       "unsupported architecture \"GPT2LMHeadModel\" (supported: "
       "LlamaForCausalLM"},
      {"quantized", R"("use_cache": true)", R"("use_cache": true, "quantization_config": {"bits": 4})",
       "quantization_config"},
      {"two architectures", R"(["LlamaForCausalLM"])",
       R"(["LlamaForCausalLM", "X"])", "exactly one"},
      {"longrope", rope_default,
       R"("rope_parameters": {"rope_type": "longrope", "factor": 4.0})",
       "unsupported rope type \"longrope\""},
      {"yarn without factor", rope_default,
       R"("rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0})",
       "requires \"factor\""},
      {"dynamic v4", rope_default,
       R"("rope_scaling": {"type": "dynamic", "factor": 2.0})",
       "unsupported rope type \"dynamic\""},
      {"longrope", rope_default, R"("rope_parameters": {"rope_type": "longrope"})",
       "\"longrope\""},
      {"linear without factor", rope_default,
       R"("rope_parameters": {"rope_type": "linear"})", "requires \"factor\""},
      {"llama3 without low_freq_factor", rope_default,
       R"("rope_parameters": {"rope_type": "llama3", "factor": 8.0,
           "high_freq_factor": 4.0})",
       "requires \"low_freq_factor\""},
      {"hidden_act", "\"silu\"", "\"gelu\"", "hidden_act\" \"gelu\""},
      {"missing vocab", "\"vocab_size\": 300", "\"vocab\": 300",
       "missing required key \"vocab_size\""},
      {"zero layers", "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 0",
       "\"num_hidden_layers\" must be positive"},
      {"string size", "\"hidden_size\": 64", "\"hidden_size\": \"64\"",
       "\"hidden_size\" must be an integer"},
      {"gqa", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3",
       "multiple of \"num_key_value_heads\""},
      {"eos out of range", "\"eos_token_id\": 2", "\"eos_token_id\": [2, 300]",
       "\"eos_token_id\" 300 is outside"},
      {"dtype", "\"bfloat16\"", "\"float64\"", "unsupported dtype \"float64\""},
      {"model_type", "\"llama\"", "\"mistral\"", "model_type \"mistral\""},
      {"odd rotary dim", rope_default,
       R"("rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.35})",
       "rotary dimension"},
  };
  for (const RejectCase& rc : cases) {
    auto c = ParseModelConfig(V5With(rc.from, rc.to), "dir/config.json");
    ASSERT_FALSE(c.ok()) << rc.name;
    EXPECT_NE(Msg(c.status()).find(rc.expect_in_message), std::string::npos)
        << rc.name << ": " << c.status();
    EXPECT_NE(Msg(c.status()).find("dir/config.json"), std::string::npos)
        << rc.name << ": " << c.status();
  }
  // Without head_dim it is derived (64 / 4 = 16) ...
  auto c = ParseModelConfig(V5With("\"head_dim\": 16,", ""), "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 16);
  // ... which fails when the heads do not divide hidden_size.
  auto bad = ParseModelConfig(
      absl::StrReplaceAll(std::string(kV5Config),
                          {{"\"head_dim\": 16,", ""},
                           {"\"hidden_size\": 64", "\"hidden_size\": 66"}}),
      "config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(Msg(bad.status()).find("no \"head_dim\""), std::string::npos)
      << bad.status();
}

// Every integer key of every architecture's transformers-written config, set
// to a huge value: sizes are refused by name with the bound, nothing else
// overflows or allocates (the config fuzzer once found num_hidden_layers =
// 2^62 reaching a vector of that many layer kinds).
// The registry: each dense family's keys, from configs shaped as
// transformers 5 writes them.
TEST(ModelConfigTest, RegistryFamiliesParseTheirOwnKeys) {
  const std::string qwen3 = absl::StrReplaceAll(
      kV5Config, {{"LlamaForCausalLM", "Qwen3ForCausalLM"},
                  {R"("model_type": "llama")", R"("model_type": "qwen3")"},
                  {R"("attention_bias": false)", R"("attention_bias": true)"},
                  {R"("use_cache": true)",
                   R"("use_cache": true, "use_sliding_window": false, "sliding_window": 8)"}});
  auto c = ParseModelConfig(qwen3, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->qk_norm);
  EXPECT_TRUE(c->attention_bias);
  EXPECT_TRUE(c->attention_out_bias);
  EXPECT_EQ(c->sliding_window, 0);  // use_sliding_window false
  EXPECT_EQ(c->graph, ModelGraph::kDecoder);
  EXPECT_EQ(c->family(), ArchitectureFamily::kTransformer);

  const std::string qwen2 = absl::StrReplaceAll(
      kV5Config, {{"LlamaForCausalLM", "Qwen2ForCausalLM"},
                  {R"("model_type": "llama")", R"("model_type": "qwen2")"},
                  {R"("use_cache": true)",
                   R"("use_cache": true, "use_sliding_window": true, "sliding_window": 32)"}});
  c = ParseModelConfig(qwen2, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->qk_norm);
  EXPECT_TRUE(c->attention_bias);       // q/k/v always
  EXPECT_FALSE(c->attention_out_bias);  // o_proj never
  EXPECT_EQ(c->sliding_window, 32);

  const std::string mistral = absl::StrReplaceAll(
      kV5Config, {{"LlamaForCausalLM", "MistralForCausalLM"},
                  {R"("model_type": "llama")", R"("model_type": "mistral")"},
                  {R"("use_cache": true)", R"("use_cache": true, "sliding_window": 4096)"}});
  c = ParseModelConfig(mistral, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 4096);
  EXPECT_FALSE(c->attention_bias);
  c = ParseModelConfig(absl::StrReplaceAll(mistral, {{"4096", "null"}}), "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 0);

  // A family's model_type must match its architecture.
  c = ParseModelConfig(absl::StrReplaceAll(mistral, {{R"("model_type": "mistral")",
                                                      R"("model_type": "qwen3")"}}),
                       "config.json");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);

  // Every entry names a distinct architecture and model_type.
  std::set<std::string> names, types;
  for (const ArchitectureInfo& a : RegisteredArchitectures()) {
    EXPECT_TRUE(names.insert(std::string(a.name)).second) << a.name;
    EXPECT_TRUE(types.insert(std::string(a.model_type)).second) << a.model_type;
  }
  EXPECT_GE(names.size(), 7u);
}

// YaRN as transformers' _compute_yarn_parameters reads it (numerics: the
// qwen3_f32_yarn golden fixture).
TEST(ModelConfigTest, YarnRopeParameters) {
  auto c = ParseModelConfig(
      V5With(R"("rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"})",
             R"("rope_parameters": {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                "original_max_position_embeddings": 32768})"),
      "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope.type, RopeType::kYarn);
  EXPECT_EQ(c->rope.original_max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(c->rope.attention_factor, 0.1 * std::log(4.0) + 1.0);
  EXPECT_DOUBLE_EQ(c->rope.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(c->rope.beta_slow, 1.0);
  EXPECT_TRUE(c->rope.truncate);
  // Explicit attention_factor wins; mscale / mscale_all_dim otherwise.
  c = ParseModelConfig(
      V5With(R"("rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"})",
             R"("rope_parameters": {"rope_type": "yarn", "factor": 4.0, "mscale": 1.0,
                "mscale_all_dim": 0.5, "beta_fast": 16, "truncate": false})"),
      "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope.attention_factor,
                   (0.1 * std::log(4.0) + 1.0) / (0.05 * std::log(4.0) + 1.0));
  EXPECT_DOUBLE_EQ(c->rope.beta_fast, 16.0);
  EXPECT_FALSE(c->rope.truncate);
  const RopeTables t = ComputeRopeTables(c->rope, c->rotary_dim());
  EXPECT_FLOAT_EQ(t.attention_scaling, static_cast<float>(c->rope.attention_factor));
}

TEST(ModelConfigTest, HugeSizesAreRefusedByName) {
  const auto fixtures = testing::SourceDir() / "tests" / "golden" / "fixtures";
  int refused = 0;
  std::set<std::string> accepted;
  for (const char* fixture : {"llama_f32_gqa_tied", "mamba2_f32_g1_chunk8",
                              "mamba_f32_untied", "bamba_f32_attn1"}) {
    std::ifstream in(fixtures / fixture / "config.json");
    ASSERT_TRUE(in) << fixture;
    const std::string text((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
    ASSERT_TRUE(ParseModelConfig(text, "config.json").ok()) << fixture;
    // Each `"key": <digits>` in turn.
    for (size_t at = text.find("\": "); at != std::string::npos;
         at = text.find("\": ", at + 1)) {
      const size_t value = at + 3;
      size_t end = value;
      while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
      if (end == value || (end < text.size() && (text[end] == '.' || text[end] == 'e'))) continue;
      const size_t key_start = text.rfind('"', at - 1) + 1;
      const std::string key = text.substr(key_start, at - key_start);
      for (const char* huge : {"4611686018427387904", "9223372036854775807", "1099511627777"}) {
        std::string edited = text;
        edited.replace(value, end - value, huge);
        auto c = ParseModelConfig(edited, "config.json");
        if (key.find("token_id") != std::string::npos) continue;  // ids, not sizes
        if (c.ok()) {
          accepted.insert(key);
          continue;
        }
        EXPECT_NE(Msg(c.status()).find(key), std::string::npos)
            << fixture << " " << key << ": " << c.status();
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 60);
  // Keys the graph does not read may be anything: Mamba-1's intermediate_size
  // (transformers derives it from expand), Mamba-2's time_step_rank (dt is per
  // head), Bamba's num_logits_to_keep, Llama's pretraining_tp.
  EXPECT_EQ(absl::StrJoin(accepted, ","),
            "intermediate_size,num_logits_to_keep,pretraining_tp,time_step_rank");
}

TEST(ModelConfigTest, LoadModelConfigReadsFolder) {
  const auto dir = testing::MakeTempDir();
  auto missing = LoadModelConfig(dir);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(Msg(missing.status()).find("config.json"), std::string::npos);
  {
    std::ofstream(dir / "config.json") << kV5Config;
  }
  auto c = LoadModelConfig(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_layers, 3);
}

// ---- Rope tables ----------------------------------------------------------

// ULP distance between two positive finite floats.
int64_t UlpDistance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::abs(static_cast<int64_t>(ia) - static_cast<int64_t>(ib));
}

TEST(RopeTablesTest, DefaultSmallDimByHand) {
  // theta 10000, dim 8: inv_freq[i] = 10000^(-2i/8) = 1, 1/10, 1/100, 1/1000;
  // every exponent (0, .25, .5, .75) and power (1, 10, 100, 1000) is exact in
  // f32, so the table is 1/x rounded once.
  RopeConfig rope;
  rope.theta = 10000.0;
  RopeTables t = ComputeRopeTables(rope, 8);
  ASSERT_EQ(t.inv_freq.size(), 4u);
  EXPECT_EQ(t.inv_freq[0], 1.0f);
  EXPECT_EQ(t.inv_freq[1], 0.1f);
  EXPECT_EQ(t.inv_freq[2], 0.01f);
  EXPECT_EQ(t.inv_freq[3], 0.001f);
  EXPECT_EQ(t.attention_scaling, 1.0f);
}

TEST(RopeTablesTest, LinearDividesByFactor) {
  RopeConfig rope;
  rope.type = RopeType::kLinear;
  rope.factor = 4.0;
  RopeTables t = ComputeRopeTables(rope, 8);
  ASSERT_EQ(t.inv_freq.size(), 4u);
  // Dividing by a power of two is exact: 0.1f / 4 == 0.025f etc.
  EXPECT_EQ(t.inv_freq[0], 0.25f);
  EXPECT_EQ(t.inv_freq[1], 0.025f);
  EXPECT_EQ(t.inv_freq[2], 0.0025f);
  EXPECT_EQ(t.inv_freq[3], 0.00025f);
}

TEST(RopeTablesTest, PartialRotaryUsesRotaryDimAsDenominator) {
  // head_dim 64 with partial_rotary_factor 0.5 → dim 32:
  // inv_freq[i] = 10000^(-2i/32). Reference values computed in Python with
  // every step rounded to f32 through struct.pack('f'):
  //   [1] = 1/f32(10000 ** f32(2/32))  = 0.5623413324356079 (0x3f0ff59a)
  //   [15] = 1/f32(10000 ** f32(30/32)) = 0.00017782794020604342 (0x393a7753)
  RopeConfig rope;
  RopeTables t = ComputeRopeTables(rope, 32);
  ASSERT_EQ(t.inv_freq.size(), 16u);
  EXPECT_EQ(t.inv_freq[1], 0.5623413324356079f);
  EXPECT_EQ(t.inv_freq[15], 0.00017782794020604342f);
}

TEST(RopeTablesTest, Llama31ParametersMatchIndependentComputation) {
  // Llama-3.1: theta 500000, head_dim 128, factor 8, low 1, high 4, original
  // context 8192. Reference values computed in plain Python (no torch/numpy),
  // following transformers' _compute_llama3_parameters with every tensor op
  // rounded to f32 (struct.pack('f')), scalars cast to f32, and
  // `scalar / tensor` as reciprocal(tensor) * scalar, as torch does:
  //   inv  = 1 / f32(f32(500000) ** f32(i / 128))       for i = 0, 2, ..., 126
  //   wl   = f32(1 / inv) * f32(2 * pi)
  //   high-frequency (wl < 2048): inv; low (wl > 8192): inv / 8;
  //   medium: s = (f32(1 / wl) * 8192 - 1) / 3,
  //           ((1 - s) * inv) / 8 + s * inv.
  // Indices 0..28 are high, 29..34 medium, 35..63 low frequency. The last
  // column is the same formula in double precision (exact math to ~1e-16),
  // which the f32 values match to within 1e-7 relative.
  struct Ref {
    int index;
    float want;
    double exact;
  };
  const Ref refs[] = {
      {0, 1.0f, 1.0},
      {1, 0.8146172165870667f, 0.8146172338565447},
      {10, 0.12868738174438477f, 0.12868737343265052},
      {28, 0.0032114461064338684f, 0.0032114459947525913},
      {29, 0.0021665706299245358f, 0.002166570763503359},
      {31, 0.0008567514596506953f, 0.0008567514129196321},
      {34, 0.0001785077911335975f, 0.00017850781276799638},
      {35, 9.556212171446532e-05f, 9.556212353964683e-05},
      {50, 4.411534519022098e-06f, 4.411534674558404e-06},
      {63, 3.068925877869333e-07f, 3.068925988914511e-07},
  };
  RopeConfig rope;
  rope.type = RopeType::kLlama3;
  rope.theta = 500000.0;
  rope.factor = 8.0;
  rope.low_freq_factor = 1.0;
  rope.high_freq_factor = 4.0;
  rope.original_max_position_embeddings = 8192;
  RopeTables t = ComputeRopeTables(rope, 128);
  ASSERT_EQ(t.inv_freq.size(), 64u);
  EXPECT_EQ(t.attention_scaling, 1.0f);
  for (const Ref& r : refs) {
    const float got = t.inv_freq[static_cast<size_t>(r.index)];
    EXPECT_EQ(got, r.want) << "index " << r.index << " ulps "
                           << UlpDistance(got, r.want);
    EXPECT_NEAR(got / r.exact, 1.0, 2e-7) << "index " << r.index;
  }
  // Low-frequency entries are exactly the default table divided by 8.
  RopeConfig plain;
  plain.theta = 500000.0;
  RopeTables d = ComputeRopeTables(plain, 128);
  for (size_t i = 35; i < 64; ++i) EXPECT_EQ(t.inv_freq[i], d.inv_freq[i] / 8.0f);
  for (size_t i = 0; i < 29; ++i) EXPECT_EQ(t.inv_freq[i], d.inv_freq[i]);
}

// ---- generation_config.json -----------------------------------------------

TEST(GenerationConfigTest, ParsesFieldsAndToleratesMissingFile) {
  auto g = ParseGenerationConfig(
      R"({"bos_token_id": 1, "eos_token_id": [2, 9], "do_sample": true,
          "temperature": 0.6, "top_p": 0.9, "top_k": 50,
          "repetition_penalty": 1.1, "max_new_tokens": 64,
          "transformers_version": "5.24.0"})",
      "generation_config.json");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->bos_token_id, 1);
  EXPECT_EQ(g->eos_token_ids, std::vector<int64_t>({2, 9}));
  EXPECT_EQ(g->do_sample, true);
  EXPECT_DOUBLE_EQ(*g->temperature, 0.6);
  EXPECT_DOUBLE_EQ(*g->top_p, 0.9);
  EXPECT_EQ(g->top_k, 50);
  EXPECT_FALSE(g->min_p.has_value());
  EXPECT_DOUBLE_EQ(*g->repetition_penalty, 1.1);
  EXPECT_EQ(g->max_new_tokens, 64);

  const auto dir = testing::MakeTempDir();
  auto empty = LoadGenerationConfig(dir);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_FALSE(empty->temperature.has_value());
  EXPECT_TRUE(empty->eos_token_ids.empty());
  {
    std::ofstream(dir / "generation_config.json") << R"({"temperature": "hot"})";
  }
  auto bad = LoadGenerationConfig(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(Msg(bad.status()).find("generation_config.json"), std::string::npos);
  EXPECT_NE(Msg(bad.status()).find("\"temperature\""), std::string::npos);
}

}  // namespace
}  // namespace hybridserve::engine
