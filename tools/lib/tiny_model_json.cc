#include "tools/lib/tiny_model_json.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rapidjson/prettywriter.h"
#include "rapidjson/stringbuffer.h"

namespace hybridserve::tools::internal {
namespace {

using engine::DType;
using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

constexpr const char* kTransformersVersion = "5.24.0";
constexpr const char* kBosToken = "<|begin_of_text|>";
constexpr const char* kEosToken = "<|end_of_text|>";

void Key(JsonWriter& w, std::string_view k) {
  w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
}
void Str(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

std::string Finish(rapidjson::StringBuffer& buffer) {
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

// ---- config.json -----------------------------------------------------------

// A JSON object whose keys are written sorted, as transformers writes
// config.json (json.dumps(..., sort_keys=True)).
class SortedObject {
 public:
  using Value = std::function<void(JsonWriter&)>;
  void Set(std::string key, Value value) { values_[std::move(key)] = std::move(value); }
  void Int(std::string key, int64_t v) {
    Set(std::move(key), [v](JsonWriter& w) { w.Int64(v); });
  }
  void Double(std::string key, double v) {
    Set(std::move(key), [v](JsonWriter& w) { w.Double(v); });
  }
  void Bool(std::string key, bool v) {
    Set(std::move(key), [v](JsonWriter& w) { w.Bool(v); });
  }
  void String(std::string key, std::string v) {
    Set(std::move(key), [v = std::move(v)](JsonWriter& w) { Str(w, v); });
  }
  void Null(std::string key) {
    Set(std::move(key), [](JsonWriter& w) { w.Null(); });
  }
  void Write(JsonWriter& w) const {
    w.StartObject();
    for (const auto& [key, value] : values_) {
      Key(w, key);
      value(w);
    }
    w.EndObject();
  }

 private:
  std::map<std::string, Value> values_;
};

// [0.0, +inf] as transformers 5.24.0 serialises float("inf").
void WriteTimeStepLimit(JsonWriter& w) {
  w.StartArray();
  w.Double(0.0);
  w.StartObject();
  Key(w, "__float__");
  Str(w, "Infinity");
  w.EndObject();
  w.EndArray();
}

// Keys every PreTrainedConfig of these classes writes.
void CommonKeys(const TinyModelOptions& o, SortedObject& c) {
  c.Set("architectures", [&o](JsonWriter& w) {
    w.StartArray();
    Str(w, TinyArchitectureClass(o.architecture));
    w.EndArray();
  });
  c.Int("bos_token_id", kTinyLlamaBosId);
  c.String("dtype", TorchDTypeName(o.dtype));
  c.Int("eos_token_id", kTinyLlamaEosId);
  c.String("hidden_act", "silu");
  c.Int("hidden_size", o.hidden_size);
  c.Int("num_hidden_layers", o.num_layers);
  c.Null("pad_token_id");
  c.Bool("tie_word_embeddings", o.tie_word_embeddings);
  c.String("transformers_version", kTransformersVersion);
  c.Bool("use_cache", true);
  c.Int("vocab_size", o.vocab_size);
}

// MambaConfig / Mamba2Config keys shared by both.
void MambaCommonKeys(const TinyModelOptions& o, SortedObject& c) {
  c.Int("conv_kernel", o.ssm_conv_kernel);
  c.Int("expand", o.ssm_expand);
  c.Double("initializer_range", 0.1);
  c.Double("layer_norm_epsilon", 1e-5);
  c.Bool("rescale_prenorm_residual", false);
  c.Bool("residual_in_fp32", true);
  c.Int("state_size", o.ssm_state_size);
  c.Double("time_step_floor", 1e-4);
  c.Double("time_step_max", 0.1);
  c.Double("time_step_min", 0.001);
  // "auto" in both configs: ceil(hidden_size / 16).
  c.Int("time_step_rank", (o.hidden_size + 15) / 16);
  c.Bool("use_bias", false);
  c.Bool("use_conv_bias", true);
}

// The dense families' keys: Llama's, with each family's own (Qwen2 has no
// attention_bias key, its q/k/v biases are implied; Qwen2/Qwen3 and Mistral
// write their sliding-window keys, off here).
void LlamaKeys(const TinyModelOptions& o, SortedObject& c) {
  const TinyArchitecture a = o.architecture;
  if (a != TinyArchitecture::kQwen2) c.Bool("attention_bias", false);
  c.Double("attention_dropout", 0.0);
  if (a != TinyArchitecture::kQwen2) c.Int("head_dim", o.head_dim);
  c.Double("initializer_range", 0.02);
  c.Int("intermediate_size", o.intermediate_size);
  c.Int("max_position_embeddings", o.max_position_embeddings);
  if (a == TinyArchitecture::kLlama) {
    c.Bool("mlp_bias", false);
    c.Int("pretraining_tp", 1);
  }
  if (a == TinyArchitecture::kQwen2 || a == TinyArchitecture::kQwen3) {
    c.Int("max_window_layers", o.num_layers);
    c.Bool("use_sliding_window", false);
    c.Set("layer_types", [&o](JsonWriter& w) {
      w.StartArray();
      for (int64_t i = 0; i < o.num_layers; ++i) Str(w, "full_attention");
      w.EndArray();
    });
  }
  if (a != TinyArchitecture::kLlama) c.Null("sliding_window");
  c.String("model_type", std::string(TinyArchitectureName(a)));
  c.Int("num_attention_heads", o.num_heads);
  c.Int("num_key_value_heads", o.num_kv_heads);
  c.Double("rms_norm_eps", 1e-5);
  c.Set("rope_parameters", [&o](JsonWriter& w) {
    w.StartObject();
    Key(w, "rope_theta");
    w.Double(o.rope_theta);
    Key(w, "rope_type");
    Str(w, "default");
    w.EndObject();
  });
}

void Mamba2Keys(const TinyModelOptions& o, SortedObject& c) {
  MambaCommonKeys(o, c);
  c.Int("chunk_size", o.ssm_chunk_size);
  c.Int("head_dim", o.ssm_head_dim);
  c.String("model_type", "mamba2");
  c.Int("n_groups", o.ssm_n_groups);
  c.Int("num_heads", o.ssm_num_heads);
  c.Set("time_step_limit", WriteTimeStepLimit);
}

void MambaKeys(const TinyModelOptions& o, SortedObject& c) {
  MambaCommonKeys(o, c);
  c.Int("intermediate_size", o.ssm_expand * o.hidden_size);
  c.String("model_type", "mamba");
  c.String("time_step_init_scheme", "random");
  c.Double("time_step_scale", 1.0);
  c.Bool("use_associative_scan", true);
  c.Bool("use_mambapy", false);
}

void BambaKeys(const TinyModelOptions& o, SortedObject& c) {
  c.Bool("attention_bias", false);
  c.Double("attention_dropout", 0.0);
  c.Set("attn_layer_indices", [&o](JsonWriter& w) {
    w.StartArray();
    for (int64_t i : o.attn_layer_indices) w.Int64(i);
    w.EndArray();
  });
  c.Double("initializer_range", 0.02);
  c.Int("intermediate_size", o.intermediate_size);
  c.Int("mamba_chunk_size", o.ssm_chunk_size);
  c.Bool("mamba_conv_bias", true);
  c.Int("mamba_d_conv", o.ssm_conv_kernel);
  c.Int("mamba_d_head", o.ssm_head_dim);
  c.Int("mamba_d_state", o.ssm_state_size);
  c.Int("mamba_expand", o.ssm_expand);
  c.Int("mamba_n_groups", o.ssm_n_groups);
  c.Int("mamba_n_heads", o.ssm_num_heads);
  c.Bool("mamba_proj_bias", false);
  c.Int("max_position_embeddings", o.max_position_embeddings);
  c.Bool("mlp_bias", false);
  c.String("model_type", "bamba");
  c.Int("num_attention_heads", o.num_heads);
  c.Int("num_key_value_heads", o.num_kv_heads);
  c.Int("num_logits_to_keep", 1);
  c.Double("rms_norm_eps", 1e-5);
  // BambaConfig fixes partial_rotary_factor at 0.5 (reference deviations
  // table, row 3); no attn_rotary_emb key, as transformers writes none.
  c.Set("rope_parameters", [&o](JsonWriter& w) {
    w.StartObject();
    Key(w, "partial_rotary_factor");
    w.Double(0.5);
    Key(w, "rope_theta");
    w.Double(o.rope_theta);
    Key(w, "rope_type");
    Str(w, "default");
    w.EndObject();
  });
  c.Set("time_step_limit", WriteTimeStepLimit);
  c.Double("z_loss_coefficient", 0.0);
}

// ---- Tokenizer -------------------------------------------------------------

std::string Utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    s.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
  return s;
}

// GPT-2's byte → unicode table: printable Latin-1 bytes map to themselves,
// the others to U+0100 + n in byte order.
std::vector<std::string> ByteLevelSymbols() {
  std::vector<std::string> symbols(256);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) ||
                           (b >= 0xae && b <= 0xff);
    symbols[b] = Utf8(printable ? b : next++);
  }
  return symbols;
}

void AddedToken(JsonWriter& w, int64_t id, std::string_view content,
                bool with_id) {
  w.StartObject();
  if (with_id) {
    Key(w, "id");
    w.Int64(id);
  }
  Key(w, "content");
  Str(w, content);
  Key(w, "single_word");
  w.Bool(false);
  Key(w, "lstrip");
  w.Bool(false);
  Key(w, "rstrip");
  w.Bool(false);
  Key(w, "normalized");
  w.Bool(false);
  Key(w, "special");
  w.Bool(true);
  w.EndObject();
}

void ByteLevelObject(JsonWriter& w, bool add_prefix_space, bool trim_offsets) {
  w.StartObject();
  Key(w, "type");
  Str(w, "ByteLevel");
  Key(w, "add_prefix_space");
  w.Bool(add_prefix_space);
  Key(w, "trim_offsets");
  w.Bool(trim_offsets);
  Key(w, "use_regex");
  w.Bool(true);
  w.EndObject();
}

void TemplatePiece(JsonWriter& w, bool special, std::string_view id,
                   int type_id) {
  w.StartObject();
  Key(w, special ? "SpecialToken" : "Sequence");
  w.StartObject();
  Key(w, "id");
  Str(w, id);
  Key(w, "type_id");
  w.Int(type_id);
  w.EndObject();
  w.EndObject();
}

// TemplateProcessing: "<|begin_of_text|> $A" (pairs: "bos $A bos $B").
void BosTemplate(JsonWriter& w) {
  w.StartObject();
  Key(w, "type");
  Str(w, "TemplateProcessing");
  Key(w, "single");
  w.StartArray();
  TemplatePiece(w, true, kBosToken, 0);
  TemplatePiece(w, false, "A", 0);
  w.EndArray();
  Key(w, "pair");
  w.StartArray();
  TemplatePiece(w, true, kBosToken, 0);
  TemplatePiece(w, false, "A", 0);
  TemplatePiece(w, true, kBosToken, 1);
  TemplatePiece(w, false, "B", 1);
  w.EndArray();
  Key(w, "special_tokens");
  w.StartObject();
  Key(w, kBosToken);
  w.StartObject();
  Key(w, "id");
  Str(w, kBosToken);
  Key(w, "ids");
  w.StartArray();
  w.Int64(kTinyLlamaBosId);
  w.EndArray();
  Key(w, "tokens");
  w.StartArray();
  Str(w, kBosToken);
  w.EndArray();
  w.EndObject();
  w.EndObject();
  w.EndObject();
}

// Merges of common English pairs, in rank order, as byte-level strings; each
// result becomes token 258 + rank.
const std::pair<const char*, const char*> kMerges[kTinyLlamaNumMerges] = {
    {"\xc4\xa0", "t"},  // "Ġ t" (Ġ is the space byte)
    {"h", "e"},         {"i", "n"},  {"\xc4\xa0t", "he"},
    {"e", "r"},         {"a", "n"},  {"o", "n"},
    {"r", "e"},
};

// tokenizer.json in the `tokenizers` format: BPE over the 256 byte symbols
// plus the merges, ByteLevel pre-tokenizer and decoder (as GPT-2 and Llama-3
// configure them), a BOS-adding post-processor, two special tokens.
std::string TokenizerJsonImpl() {
  const std::vector<std::string> symbols = ByteLevelSymbols();
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.SetIndent(' ', 2);
  w.StartObject();
  Key(w, "version");
  Str(w, "1.0");
  Key(w, "truncation");
  w.Null();
  Key(w, "padding");
  w.Null();
  Key(w, "added_tokens");
  w.StartArray();
  AddedToken(w, kTinyLlamaBosId, kBosToken, true);
  AddedToken(w, kTinyLlamaEosId, kEosToken, true);
  w.EndArray();
  Key(w, "normalizer");
  w.Null();
  Key(w, "pre_tokenizer");
  ByteLevelObject(w, /*add_prefix_space=*/false, /*trim_offsets=*/true);
  // As Llama-3.1's: ByteLevel (offsets only), then a template that puts
  // <|begin_of_text|> first, so encode(add_special_tokens=True) adds BOS as
  // tokenizer_config.json's add_bos_token says.
  Key(w, "post_processor");
  w.StartObject();
  Key(w, "type");
  Str(w, "Sequence");
  Key(w, "processors");
  w.StartArray();
  ByteLevelObject(w, /*add_prefix_space=*/true, /*trim_offsets=*/false);
  BosTemplate(w);
  w.EndArray();
  w.EndObject();
  Key(w, "decoder");
  ByteLevelObject(w, /*add_prefix_space=*/true, /*trim_offsets=*/true);
  Key(w, "model");
  w.StartObject();
  Key(w, "type");
  Str(w, "BPE");
  Key(w, "dropout");
  w.Null();
  Key(w, "unk_token");
  w.Null();
  Key(w, "continuing_subword_prefix");
  w.Null();
  Key(w, "end_of_word_suffix");
  w.Null();
  Key(w, "fuse_unk");
  w.Bool(false);
  Key(w, "byte_fallback");
  w.Bool(false);
  Key(w, "ignore_merges");
  w.Bool(false);
  Key(w, "vocab");
  w.StartObject();
  for (int b = 0; b < 256; ++b) {
    Key(w, symbols[static_cast<size_t>(b)]);
    w.Int(b);
  }
  // The special tokens are in the model's vocab too (as GPT-2's
  // <|endoftext|> is), so `tokenizers` keeps their ids and leaves no gap.
  Key(w, kBosToken);
  w.Int64(kTinyLlamaBosId);
  Key(w, kEosToken);
  w.Int64(kTinyLlamaEosId);
  for (int64_t m = 0; m < kTinyLlamaNumMerges; ++m) {
    Key(w, absl::StrCat(kMerges[m].first, kMerges[m].second));
    w.Int64(258 + m);
  }
  w.EndObject();
  Key(w, "merges");
  w.StartArray();
  for (const auto& [a, b] : kMerges) Str(w, absl::StrCat(a, " ", b));
  w.EndArray();
  w.EndObject();
  w.EndObject();
  return Finish(buffer);
}

std::string TokenizerConfigJsonImpl(const TinyModelOptions& o) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.SetIndent(' ', 2);
  w.StartObject();
  Key(w, "add_bos_token");
  w.Bool(true);
  Key(w, "add_eos_token");
  w.Bool(false);
  Key(w, "added_tokens_decoder");
  w.StartObject();
  Key(w, absl::StrCat(kTinyLlamaBosId));
  AddedToken(w, kTinyLlamaBosId, kBosToken, false);
  Key(w, absl::StrCat(kTinyLlamaEosId));
  AddedToken(w, kTinyLlamaEosId, kEosToken, false);
  w.EndObject();
  Key(w, "bos_token");
  Str(w, kBosToken);
  Key(w, "clean_up_tokenization_spaces");
  w.Bool(false);
  Key(w, "eos_token");
  Str(w, kEosToken);
  Key(w, "model_input_names");
  w.StartArray();
  Str(w, "input_ids");
  Str(w, "attention_mask");
  w.EndArray();
  Key(w, "model_max_length");
  // Pure SSM configs have no max_position_embeddings.
  const bool ssm_only = o.architecture == TinyArchitecture::kMamba2 ||
                        o.architecture == TinyArchitecture::kMamba;
  w.Int64(ssm_only ? int64_t{1} << 20 : o.max_position_embeddings);
  Key(w, "tokenizer_class");
  Str(w, "PreTrainedTokenizerFast");
  w.EndObject();
  return Finish(buffer);
}

}  // namespace

std::string TorchDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    default:
      return "float32";
  }
}

std::string ConfigJson(const TinyModelOptions& o) {
  SortedObject c;
  CommonKeys(o, c);
  switch (o.architecture) {
    case TinyArchitecture::kLlama:
    case TinyArchitecture::kQwen3:
    case TinyArchitecture::kQwen2:
    case TinyArchitecture::kMistral:
      LlamaKeys(o, c);
      break;
    case TinyArchitecture::kMamba2:
      Mamba2Keys(o, c);
      break;
    case TinyArchitecture::kBamba:
      BambaKeys(o, c);
      break;
    case TinyArchitecture::kMamba:
      MambaKeys(o, c);
      break;
  }
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.SetIndent(' ', 2);
  c.Write(w);
  return Finish(buffer);
}

// As transformers 5.24.0 writes it for these classes (GenerationConfig
// from_model_config).
std::string GenerationConfigJson() {
  SortedObject c;
  c.Bool("_from_model_config", true);
  c.Int("bos_token_id", kTinyLlamaBosId);
  c.Int("eos_token_id", kTinyLlamaEosId);
  c.Bool("output_attentions", false);
  c.Bool("output_hidden_states", false);
  c.String("transformers_version", kTransformersVersion);
  c.Bool("use_cache", true);
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.SetIndent(' ', 2);
  c.Write(w);
  return Finish(buffer);
}

std::string TokenizerJson() { return TokenizerJsonImpl(); }

std::string TokenizerConfigJson(const TinyModelOptions& o) {
  return TokenizerConfigJsonImpl(o);
}

}  // namespace hybridserve::tools::internal
