// config.json parsing for the SSM architectures: keys, defaults, the two ways
// transformers writes an infinite time_step_limit, state sizes, and the
// options rejected by name.
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "engine/model_config.h"
#include "gtest/gtest.h"

namespace hybridserve::engine {
namespace {

// A Mamba2 config as transformers 5 writes it (with {"__float__": ...}).
constexpr char kMamba2[] = R"({
  "architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2",
  "vocab_size": 256, "hidden_size": 64, "expand": 2, "num_heads": 8, "head_dim": 16,
  "state_size": 16, "n_groups": 2, "conv_kernel": 4, "num_hidden_layers": 3,
  "chunk_size": 8, "layer_norm_epsilon": 1e-05, "hidden_act": "silu",
  "use_bias": false, "use_conv_bias": true, "residual_in_fp32": true,
  "time_step_limit": [0.0, {"__float__": "Infinity"}], "time_step_rank": 4,
  "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
  "dtype": "float32"
})";

absl::StatusOr<ModelConfig> Parse(const std::string& text) {
  return ParseModelConfig(text, "config.json");
}

std::string With(const std::string& from, const std::string& to) {
  std::string s = absl::StrReplaceAll(kMamba2, {{from, to}});
  EXPECT_NE(s, kMamba2) << "pattern not found: " << from;
  return s;
}

TEST(SsmConfigTest, ParsesMamba2) {
  auto c = Parse(kMamba2);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "Mamba2ForCausalLM");
  EXPECT_EQ(c->family(), ArchitectureFamily::kSsm);
  EXPECT_EQ(c->num_attention_layers(), 0);
  EXPECT_EQ(c->num_ssm_layers(), 3);
  for (LayerKind k : c->layer_kinds) EXPECT_EQ(k, LayerKind::kMamba2);
  const SsmConfig& m = c->ssm;
  EXPECT_EQ(m.d_inner, 128);
  EXPECT_EQ(m.num_heads, 8);
  EXPECT_EQ(m.head_dim, 16);
  EXPECT_EQ(m.n_groups, 2);
  EXPECT_EQ(m.d_state, 16);
  EXPECT_EQ(m.d_conv, 4);
  EXPECT_EQ(m.chunk_size, 8);
  EXPECT_TRUE(m.conv_bias);
  EXPECT_FALSE(m.proj_bias);
  EXPECT_EQ(m.dt_min, 0.0);
  EXPECT_TRUE(std::isinf(m.dt_max) && m.dt_max > 0);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_EQ(c->max_position_embeddings, 0);
  // conv window [128 + 2*2*16 = 192, 3] + state [8, 16, 16], f32, per layer.
  EXPECT_EQ(m.conv_channels(LayerKind::kMamba2), 192);
  EXPECT_EQ(c->state_bytes_per_seq(), 3u * (192 * 3 + 8 * 16 * 16) * 4);
}

TEST(SsmConfigTest, TimeStepLimitForms) {
  auto bare = Parse(With(R"({"__float__": "Infinity"})", "Infinity"));
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_TRUE(std::isinf(bare->ssm.dt_max));
  auto finite = Parse(With(R"([0.0, {"__float__": "Infinity"}])", "[0.01, 0.5]"));
  ASSERT_TRUE(finite.ok()) << finite.status();
  EXPECT_DOUBLE_EQ(finite->ssm.dt_min, 0.01);
  EXPECT_DOUBLE_EQ(finite->ssm.dt_max, 0.5);
  auto absent = Parse(With(R"("time_step_limit": [0.0, {"__float__": "Infinity"}],)", ""));
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_TRUE(std::isinf(absent->ssm.dt_max));
  for (const char* bad : {"[0.5, 0.1]", "[-1, 2]", "[0.0]", R"([0, {"__float__": "x"}])",
                          R"([{"__float__": "Infinity"}, 1])", "\"inf\""}) {
    auto c = Parse(With(R"([0.0, {"__float__": "Infinity"}])", bad));
    EXPECT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("time_step_limit"), std::string::npos) << c.status();
  }
}

TEST(SsmConfigTest, RejectsUnsupportedOptionsByName) {
  const std::pair<std::string, std::string> cases[] = {
      {R"("hidden_act": "silu")", R"("hidden_act": "gelu")"},
      {R"("num_heads": 8)", R"("num_heads": 6)"},           // 6 * 16 != 128
      {R"("n_groups": 2)", R"("n_groups": 3)"},             // 8 % 3 != 0
      {R"("model_type": "mamba2")", R"("model_type": "mamba")"},
      {R"("dtype": "float32")", R"("dtype": "float32", "norm_before_gate": true)"},
      {R"("dtype": "float32")", R"("dtype": "float32", "rmsnorm": false)"},
      {R"("dtype": "float32")", R"("dtype": "float32", "D_has_hdim": true)"},
      {R"("state_size": 16,)", ""},
  };
  const char* names[] = {"hidden_act", "num_heads", "n_groups", "model_type",
                         "norm_before_gate", "rmsnorm", "D_has_hdim", "state_size"};
  for (size_t i = 0; i < std::size(cases); ++i) {
    auto c = Parse(With(cases[i].first, cases[i].second));
    ASSERT_FALSE(c.ok()) << names[i];
    EXPECT_NE(c.status().message().find(names[i]), std::string::npos) << c.status();
  }
  // The implemented values of those options are accepted.
  EXPECT_TRUE(Parse(With(R"("dtype": "float32")",
                         R"("dtype": "float32", "norm_before_gate": false, "rmsnorm": true)"))
                  .ok());
}

constexpr char kBamba[] = R"({
  "architectures": ["BambaForCausalLM"], "model_type": "bamba",
  "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
  "rms_norm_eps": 1e-05, "attn_layer_indices": [1, 3], "mamba_n_heads": 8,
  "mamba_d_head": "auto", "mamba_d_state": 16, "mamba_n_groups": 2, "mamba_expand": 2,
  "mamba_d_conv": 4, "mamba_chunk_size": 256, "mamba_conv_bias": true,
  "mamba_proj_bias": false, "hidden_act": "silu",
  "rope_parameters": {"partial_rotary_factor": 0.5, "rope_theta": 10000.0, "rope_type": "default"},
  "time_step_limit": [0.0, {"__float__": "Infinity"}], "tie_word_embeddings": false
})";

TEST(SsmConfigTest, ParsesBamba) {
  auto c = Parse(kBamba);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->family(), ArchitectureFamily::kHybrid);
  const std::vector<LayerKind> want = {LayerKind::kMamba2, LayerKind::kAttention,
                                       LayerKind::kMamba2, LayerKind::kAttention};
  EXPECT_EQ(c->layer_kinds, want);
  EXPECT_EQ(c->num_attention_layers(), 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->rotary_dim(), 8);  // transformers' BambaConfig: half of head_dim
  EXPECT_EQ(c->ssm.head_dim, 16);  // "auto": 2 * 64 / 8
  EXPECT_EQ(c->ssm.n_groups, 2);
  EXPECT_DOUBLE_EQ(c->ssm.norm_eps, 1e-5);
  EXPECT_EQ(c->state_bytes_per_seq(), 2u * (192 * 3 + 8 * 16 * 16) * 4);
  // As transformers: half of head_dim whatever attn_rotary_emb and the
  // file's partial_rotary_factor say.
  std::string text = absl::StrReplaceAll(kBamba, {{R"("tie_word_embeddings": false)",
                                                   R"("tie_word_embeddings": false, "attn_rotary_emb": 12)"},
                                                  {R"("partial_rotary_factor": 0.5)",
                                                   R"("partial_rotary_factor": 1.0)"}});
  auto r = Parse(text);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rotary_dim(), 8);
  // No attention layers at all: a pure SSM model.
  auto none = Parse(absl::StrReplaceAll(kBamba, {{R"("attn_layer_indices": [1, 3],)", ""}}));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->family(), ArchitectureFamily::kSsm);
}

TEST(SsmConfigTest, BambaRejectsByName) {
  const std::pair<std::string, std::string> cases[] = {
      {R"("attn_layer_indices": [1, 3])", R"("attn_layer_indices": [1, 4])"},
      {R"("mamba_d_head": "auto")", R"("mamba_d_head": 12)"},
      {R"("mamba_n_groups": 2)", R"("mamba_n_groups": 3)"},
      {R"("mamba_d_state": 16,)", ""},
      {R"("hidden_act": "silu")", R"("hidden_act": "relu")"},
  };
  const char* names[] = {"attn_layer_indices", "mamba_d_head", "mamba_n_groups",
                         "mamba_d_state", "hidden_act"};
  for (size_t i = 0; i < std::size(cases); ++i) {
    std::string text = absl::StrReplaceAll(kBamba, {{cases[i].first, cases[i].second}});
    ASSERT_NE(text, kBamba) << names[i];
    auto c = Parse(text);
    ASSERT_FALSE(c.ok()) << names[i];
    EXPECT_NE(c.status().message().find(names[i]), std::string::npos) << c.status();
  }
}

}  // namespace
}  // namespace hybridserve::engine
