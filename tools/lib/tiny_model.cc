#include "tools/lib/tiny_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numbers>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "engine/safetensors.h"
#include "engine/status_macros.h"
#include "rapidjson/prettywriter.h"
#include "rapidjson/stringbuffer.h"

namespace hybridserve::tools {
namespace {

using engine::DType;
using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

constexpr const char* kTransformersVersion = "5.24.0";
constexpr const char* kBosToken = "<|begin_of_text|>";
constexpr const char* kEosToken = "<|end_of_text|>";

// ---- Random numbers --------------------------------------------------------

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// Standard normal samples: Box-Muller on splitmix64 uniforms, in double.
class NormalStream {
 public:
  explicit NormalStream(uint64_t seed) : state_(seed) {}
  double Next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    // u1 in (0, 1] so log(u1) is finite; u2 in [0, 1).
    const double u1 =
        static_cast<double>((SplitMix64(state_) >> 11) + 1) * 0x1.0p-53;
    const double u2 = static_cast<double>(SplitMix64(state_) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double theta = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(theta);
    has_spare_ = true;
    return r * std::cos(theta);
  }

 private:
  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// ---- JSON helpers ----------------------------------------------------------

void Key(JsonWriter& w, std::string_view k) {
  w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
}
void Str(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

absl::Status WriteTextFile(const std::filesystem::path& path,
                           std::string_view text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", path.string()));
  }
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0) ok = false;
  if (!ok) return absl::DataLossError(absl::StrCat("error writing ", path.string()));
  return absl::OkStatus();
}

std::string Finish(rapidjson::StringBuffer& buffer) {
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

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

// config.json with the keys and key order transformers v5 writes for
// LlamaForCausalLM (sorted, rope in `rope_parameters`, `dtype`).
std::string ConfigJson(const TinyLlamaOptions& o) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.SetIndent(' ', 2);
  w.StartObject();
  Key(w, "architectures");
  w.StartArray();
  Str(w, "LlamaForCausalLM");
  w.EndArray();
  Key(w, "attention_bias");
  w.Bool(false);
  Key(w, "attention_dropout");
  w.Double(0.0);
  Key(w, "bos_token_id");
  w.Int64(kTinyLlamaBosId);
  Key(w, "dtype");
  Str(w, TorchDTypeName(o.dtype));
  Key(w, "eos_token_id");
  w.Int64(kTinyLlamaEosId);
  Key(w, "head_dim");
  w.Int64(o.head_dim);
  Key(w, "hidden_act");
  Str(w, "silu");
  Key(w, "hidden_size");
  w.Int64(o.hidden_size);
  Key(w, "initializer_range");
  w.Double(0.02);
  Key(w, "intermediate_size");
  w.Int64(o.intermediate_size);
  Key(w, "max_position_embeddings");
  w.Int64(o.max_position_embeddings);
  Key(w, "mlp_bias");
  w.Bool(false);
  Key(w, "model_type");
  Str(w, "llama");
  Key(w, "num_attention_heads");
  w.Int64(o.num_heads);
  Key(w, "num_hidden_layers");
  w.Int64(o.num_layers);
  Key(w, "num_key_value_heads");
  w.Int64(o.num_kv_heads);
  Key(w, "pad_token_id");
  w.Null();
  Key(w, "pretraining_tp");
  w.Int(1);
  Key(w, "rms_norm_eps");
  w.Double(1e-5);
  Key(w, "rope_parameters");
  w.StartObject();
  Key(w, "rope_theta");
  w.Double(o.rope_theta);
  Key(w, "rope_type");
  Str(w, "default");
  w.EndObject();
  Key(w, "tie_word_embeddings");
  w.Bool(o.tie_word_embeddings);
  Key(w, "transformers_version");
  Str(w, kTransformersVersion);
  Key(w, "use_cache");
  w.Bool(true);
  Key(w, "vocab_size");
  w.Int64(o.vocab_size);
  w.EndObject();
  return Finish(buffer);
}

std::string GenerationConfigJson() {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.SetIndent(' ', 2);
  w.StartObject();
  Key(w, "_from_model_config");
  w.Bool(true);
  Key(w, "bos_token_id");
  w.Int64(kTinyLlamaBosId);
  Key(w, "eos_token_id");
  w.Int64(kTinyLlamaEosId);
  Key(w, "transformers_version");
  Str(w, kTransformersVersion);
  w.EndObject();
  return Finish(buffer);
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
std::string TokenizerJson() {
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

std::string TokenizerConfigJson(const TinyLlamaOptions& o) {
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
  w.Int64(o.max_position_embeddings);
  Key(w, "tokenizer_class");
  Str(w, "PreTrainedTokenizerFast");
  w.EndObject();
  return Finish(buffer);
}

// ---- Weights ---------------------------------------------------------------

// Shard index of each tensor: contiguous runs of about equal bytes; every
// shard non-empty. REQUIRES: 1 <= num_shards <= tensors.size().
std::vector<int> AssignShards(const std::vector<TinyLlamaTensor>& tensors,
                              int num_shards) {
  std::vector<uint64_t> numel(tensors.size());
  uint64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    numel[i] = 1;
    for (int64_t d : tensors[i].shape) numel[i] *= static_cast<uint64_t>(d);
    total += numel[i];
  }
  std::vector<int> shard(tensors.size());
  std::vector<int> count(static_cast<size_t>(num_shards), 0);
  uint64_t before = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    // The shard that the tensor's middle falls into.
    const uint64_t mid2 = 2 * before + numel[i];
    shard[i] = static_cast<int>(std::min<uint64_t>(
        mid2 * static_cast<uint64_t>(num_shards) / (2 * total + 1),
        static_cast<uint64_t>(num_shards - 1)));
    ++count[static_cast<size_t>(shard[i])];
    before += numel[i];
  }
  for (int c : count) {
    if (c == 0) {
      // A large tensor swallowed a shard: split by count instead.
      for (size_t i = 0; i < tensors.size(); ++i) {
        shard[i] = static_cast<int>(i * static_cast<size_t>(num_shards) /
                                    tensors.size());
      }
      break;
    }
  }
  return shard;
}

std::string ShardName(int index, int num_shards) {
  if (num_shards == 1) return "model.safetensors";
  return absl::StrFormat("model-%05d-of-%05d.safetensors", index + 1,
                         num_shards);
}

void RemoveStaleWeights(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool stale =
        name == "model.safetensors" || name == "model.safetensors.index.json" ||
        (absl::StartsWith(name, "model-") &&
         absl::StrContains(name, "-of-") &&
         absl::EndsWith(name, ".safetensors"));
    if (stale && entry.is_regular_file(ec)) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
}

}  // namespace

std::vector<std::string> TinyLlamaPresetNames() {
  return {"tiny", "demo", "100m"};
}

absl::StatusOr<TinyLlamaOptions> TinyLlamaPreset(std::string_view name) {
  TinyLlamaOptions o;
  if (name == "tiny") return o;  // the defaults
  if (name == "demo") {
    o.vocab_size = 4096;
    o.hidden_size = 256;
    o.intermediate_size = 688;
    o.num_layers = 4;
    o.num_heads = 8;
    o.num_kv_heads = 4;
    o.head_dim = 32;
    o.max_position_embeddings = 4096;
    return o;
  }
  if (name == "100m") {
    o.vocab_size = 32000;
    o.hidden_size = 768;
    o.intermediate_size = 2048;
    o.num_layers = 12;
    o.num_heads = 12;
    o.num_kv_heads = 4;
    o.head_dim = 64;
    o.max_position_embeddings = 8192;
    o.tie_word_embeddings = true;
    return o;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown preset \"", std::string(name),
                   "\" (known: ", absl::StrJoin(TinyLlamaPresetNames(), ", "),
                   ")"));
}

absl::Status ValidateTinyLlamaOptions(const TinyLlamaOptions& o) {
  const std::pair<const char*, int64_t> sizes[] = {
      {"vocab_size", o.vocab_size},
      {"hidden_size", o.hidden_size},
      {"intermediate_size", o.intermediate_size},
      {"num_layers", o.num_layers},
      {"num_heads", o.num_heads},
      {"num_kv_heads", o.num_kv_heads},
      {"head_dim", o.head_dim},
      {"max_position_embeddings", o.max_position_embeddings}};
  for (const auto& [name, value] : sizes) {
    if (value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be positive, got ", value));
    }
  }
  if (o.vocab_size < kTinyLlamaMinVocabSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vocab_size must be at least ", kTinyLlamaMinVocabSize,
        " (256 bytes, 2 special tokens, ", kTinyLlamaNumMerges,
        " merges), got ", o.vocab_size));
  }
  if (o.num_heads % o.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_heads (", o.num_heads,
                     ") must be a multiple of num_kv_heads (", o.num_kv_heads,
                     ")"));
  }
  if (o.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim must be even (rotary pairs), got ", o.head_dim));
  }
  if (!(o.rope_theta > 0.0) || !std::isfinite(o.rope_theta)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope_theta must be positive, got ", o.rope_theta));
  }
  if (!engine::IsFloat(o.dtype)) {
    return absl::InvalidArgumentError("dtype must be f32, bf16 or f16");
  }
  const int64_t num_tensors =
      static_cast<int64_t>(TinyLlamaTensors(o).size());
  if (o.num_shards < 1 || o.num_shards > num_tensors) {
    return absl::InvalidArgumentError(
        absl::StrCat("shards must be between 1 and the number of tensors (",
                     num_tensors, "), got ", o.num_shards));
  }
  return absl::OkStatus();
}

std::vector<TinyLlamaTensor> TinyLlamaTensors(const TinyLlamaOptions& o) {
  const int64_t h = o.hidden_size, q = o.num_heads * o.head_dim,
                kv = o.num_kv_heads * o.head_dim, inter = o.intermediate_size;
  std::vector<TinyLlamaTensor> t;
  t.push_back({"model.embed_tokens.weight", {o.vocab_size, h}, false});
  for (int64_t i = 0; i < o.num_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    t.push_back({p + "input_layernorm.weight", {h}, true});
    t.push_back({p + "self_attn.q_proj.weight", {q, h}, false});
    t.push_back({p + "self_attn.k_proj.weight", {kv, h}, false});
    t.push_back({p + "self_attn.v_proj.weight", {kv, h}, false});
    t.push_back({p + "self_attn.o_proj.weight", {h, q}, false});
    t.push_back({p + "post_attention_layernorm.weight", {h}, true});
    t.push_back({p + "mlp.gate_proj.weight", {inter, h}, false});
    t.push_back({p + "mlp.up_proj.weight", {inter, h}, false});
    t.push_back({p + "mlp.down_proj.weight", {h, inter}, false});
  }
  t.push_back({"model.norm.weight", {h}, true});
  if (!o.tie_word_embeddings) {
    t.push_back({"lm_head.weight", {o.vocab_size, h}, false});
  }
  return t;
}

int64_t TinyLlamaNumParameters(const TinyLlamaOptions& options) {
  int64_t n = 0;
  for (const TinyLlamaTensor& t : TinyLlamaTensors(options)) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    n += numel;
  }
  return n;
}

std::vector<float> TinyLlamaTensorValues(uint64_t seed,
                                         const TinyLlamaTensor& tensor) {
  int64_t numel = 1;
  for (int64_t d : tensor.shape) numel *= d;
  uint64_t mix = seed ^ Fnv1a(tensor.name);
  NormalStream normal(SplitMix64(mix));
  std::vector<float> v(static_cast<size_t>(numel));
  for (float& x : v) {
    const double z = normal.Next();
    x = tensor.is_norm ? static_cast<float>(1.0 + 0.1 * z)
                       : static_cast<float>(0.02 * z);
  }
  return v;
}

absl::Status WriteTinyLlama(const TinyLlamaOptions& options,
                            const std::filesystem::path& out_dir) {
  HS_RETURN_IF_ERROR(ValidateTinyLlamaOptions(options));
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create ", out_dir.string(), ": ", ec.message()));
  }
  RemoveStaleWeights(out_dir);
  auto progress = [&](std::string_view line) {
    if (options.progress) options.progress(line);
  };

  const std::vector<TinyLlamaTensor> tensors = TinyLlamaTensors(options);
  progress(absl::StrFormat("writing %s: %d parameters in %d tensors, %s",
                           out_dir.string(), TinyLlamaNumParameters(options),
                           tensors.size(), TorchDTypeName(options.dtype)));
  const std::vector<int> shard_of = AssignShards(tensors, options.num_shards);
  const size_t elem = engine::DTypeSize(options.dtype);
  std::map<std::string, std::string> weight_map;
  uint64_t total_bytes = 0;
  for (int s = 0; s < options.num_shards; ++s) {
    const std::string file = ShardName(s, options.num_shards);
    std::vector<std::vector<std::byte>> buffers;
    std::vector<engine::SafetensorsWriteEntry> entries;
    uint64_t shard_bytes = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (shard_of[i] != s) continue;
      const std::vector<float> values =
          TinyLlamaTensorValues(options.seed, tensors[i]);
      std::vector<std::byte> bytes(values.size() * elem);
      engine::ConvertFloats(values.data(), DType::kF32, bytes.data(),
                            options.dtype, values.size());
      shard_bytes += bytes.size();
      buffers.push_back(std::move(bytes));
      weight_map[tensors[i].name] = file;
    }
    size_t b = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (shard_of[i] != s) continue;
      entries.push_back({tensors[i].name, options.dtype, tensors[i].shape,
                         absl::MakeConstSpan(buffers[b])});
      ++b;
    }
    HS_RETURN_IF_ERROR(engine::WriteSafetensors(out_dir / file, entries,
                                                {{"format", "pt"}}));
    total_bytes += shard_bytes;
    progress(absl::StrFormat("wrote %s (%d tensors, %.1f MiB)",
                             (out_dir / file).string(), entries.size(),
                             static_cast<double>(shard_bytes) / (1 << 20)));
  }

  if (options.num_shards > 1) {
    rapidjson::StringBuffer buffer;
    JsonWriter w(buffer);
    w.SetIndent(' ', 2);
    w.StartObject();
    Key(w, "metadata");
    w.StartObject();
    Key(w, "total_parameters");
    w.Int64(TinyLlamaNumParameters(options));
    Key(w, "total_size");
    w.Uint64(total_bytes);
    w.EndObject();
    Key(w, "weight_map");
    w.StartObject();
    for (const auto& [name, file] : weight_map) {
      Key(w, name);
      Str(w, file);
    }
    w.EndObject();
    w.EndObject();
    HS_RETURN_IF_ERROR(WriteTextFile(out_dir / "model.safetensors.index.json",
                                     Finish(buffer)));
  }

  const std::pair<const char*, std::string> files[] = {
      {"config.json", ConfigJson(options)},
      {"generation_config.json", GenerationConfigJson()},
      {"tokenizer.json", TokenizerJson()},
      {"tokenizer_config.json", TokenizerConfigJson(options)},
  };
  for (const auto& [name, text] : files) {
    HS_RETURN_IF_ERROR(WriteTextFile(out_dir / name, text));
  }
  progress(absl::StrFormat(
      "wrote %s: LlamaForCausalLM, %d parameters, %s, %d shard(s), "
      "config.json, generation_config.json, tokenizer.json, "
      "tokenizer_config.json",
      out_dir.string(), TinyLlamaNumParameters(options),
      TorchDTypeName(options.dtype), options.num_shards));
  return absl::OkStatus();
}

}  // namespace hybridserve::tools
