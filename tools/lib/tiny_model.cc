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
#include "tools/lib/tiny_model_json.h"

namespace hybridserve::tools {
namespace {

using engine::DType;
using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

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

// Uniform in [0, 1) from one splitmix64 output.
double Uniform(uint64_t& state) {
  return static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-53;
}

// ---- Files -----------------------------------------------------------------

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


// ---- Architectures and tensors ---------------------------------------------

bool IsBamba(const TinyModelOptions& o) {
  return o.architecture == TinyArchitecture::kBamba;
}

bool IsAttentionLayer(const TinyModelOptions& o, int64_t layer) {
  if (IsDenseTransformer(o.architecture)) return true;
  if (!IsBamba(o)) return false;
  return std::find(o.attn_layer_indices.begin(), o.attn_layer_indices.end(),
                   layer) != o.attn_layer_indices.end();
}

// q/k/v/o projections under `p` ("...self_attn.").
void AttentionTensors(const TinyModelOptions& o, const std::string& p,
                      std::vector<TinyTensor>& t) {
  const int64_t h = o.hidden_size, q = o.num_heads * o.head_dim,
                kv = o.num_kv_heads * o.head_dim;
  t.push_back({p + "q_proj.weight", {q, h}});
  t.push_back({p + "k_proj.weight", {kv, h}});
  t.push_back({p + "v_proj.weight", {kv, h}});
  t.push_back({p + "o_proj.weight", {h, q}});
  if (o.architecture == TinyArchitecture::kQwen2) {  // q/k/v biases, none on o_proj
    t.push_back({p + "q_proj.bias", {q}, TensorInit::kNormal});
    t.push_back({p + "k_proj.bias", {kv}, TensorInit::kNormal});
    t.push_back({p + "v_proj.bias", {kv}, TensorInit::kNormal});
  }
  if (o.architecture == TinyArchitecture::kQwen3) {  // per-head RMSNorm of q and k
    t.push_back({p + "q_norm.weight", {o.head_dim}, TensorInit::kNorm});
    t.push_back({p + "k_norm.weight", {o.head_dim}, TensorInit::kNorm});
  }
}

// SwiGLU gate/up/down under `p` ("...mlp." or "...feed_forward.").
void MlpTensors(const TinyModelOptions& o, const std::string& p,
                std::vector<TinyTensor>& t) {
  const int64_t h = o.hidden_size, inter = o.intermediate_size;
  t.push_back({p + "gate_proj.weight", {inter, h}});
  t.push_back({p + "up_proj.weight", {inter, h}});
  t.push_back({p + "down_proj.weight", {h, inter}});
}

// A Mamba-2 mixer under `p` ("backbone.layers.i.mixer." or
// "model.layers.i.mamba."), as Mamba2Mixer / BambaMixer name them.
void Mamba2MixerTensors(const TinyModelOptions& o, const std::string& p,
                        std::vector<TinyTensor>& t) {
  const int64_t h = o.hidden_size, d_inner = o.ssm_expand * o.hidden_size,
                heads = o.ssm_num_heads,
                conv = d_inner + 2 * o.ssm_n_groups * o.ssm_state_size;
  t.push_back({p + "A_log", {heads}, TensorInit::kALog});
  t.push_back({p + "D", {heads}, TensorInit::kOnes});
  t.push_back({p + "conv1d.weight", {conv, 1, o.ssm_conv_kernel}, TensorInit::kConv});
  t.push_back({p + "conv1d.bias", {conv}});
  t.push_back({p + "dt_bias", {heads}, TensorInit::kDtBias});
  // in_proj rows: [z (d_inner), xBC (conv), dt (heads)].
  t.push_back({p + "in_proj.weight", {d_inner + conv + heads, h}});
  t.push_back({p + "norm.weight", {d_inner}, TensorInit::kNorm});
  t.push_back({p + "out_proj.weight", {h, d_inner}});
}

// A Mamba-1 mixer under `p` ("backbone.layers.i.mixer.").
void Mamba1MixerTensors(const TinyModelOptions& o, const std::string& p,
                        std::vector<TinyTensor>& t) {
  const int64_t h = o.hidden_size, d_inner = o.ssm_expand * o.hidden_size,
                n = o.ssm_state_size, rank = (o.hidden_size + 15) / 16;
  t.push_back({p + "A_log", {d_inner, n}, TensorInit::kALog});
  t.push_back({p + "D", {d_inner}, TensorInit::kOnes});
  t.push_back({p + "conv1d.weight", {d_inner, 1, o.ssm_conv_kernel}, TensorInit::kConv});
  t.push_back({p + "conv1d.bias", {d_inner}});
  t.push_back({p + "dt_proj.weight", {d_inner, rank}, TensorInit::kDtProj});
  t.push_back({p + "dt_proj.bias", {d_inner}, TensorInit::kDtBias});
  // in_proj rows: [x (d_inner), z (d_inner)].
  t.push_back({p + "in_proj.weight", {2 * d_inner, h}});
  t.push_back({p + "out_proj.weight", {h, d_inner}});
  // x_proj rows: [dt (rank), B (N), C (N)].
  t.push_back({p + "x_proj.weight", {rank + 2 * n, d_inner}});
}

// ---- Weights ---------------------------------------------------------------

// Shard index of each tensor: contiguous runs of about equal bytes; every
// shard non-empty. REQUIRES: 1 <= num_shards <= tensors.size().
std::vector<int> AssignShards(const std::vector<TinyTensor>& tensors,
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

bool IsDenseTransformer(TinyArchitecture a) {
  return a == TinyArchitecture::kLlama || a == TinyArchitecture::kQwen3 ||
         a == TinyArchitecture::kQwen2 || a == TinyArchitecture::kMistral;
}

std::string_view TinyArchitectureName(TinyArchitecture a) {
  switch (a) {
    case TinyArchitecture::kQwen3:
      return "qwen3";
    case TinyArchitecture::kQwen2:
      return "qwen2";
    case TinyArchitecture::kMistral:
      return "mistral";
    case TinyArchitecture::kLlama:
      return "llama";
    case TinyArchitecture::kMamba2:
      return "mamba2";
    case TinyArchitecture::kBamba:
      return "bamba";
    case TinyArchitecture::kMamba:
      return "mamba";
  }
  return "?";
}

std::string_view TinyArchitectureClass(TinyArchitecture a) {
  switch (a) {
    case TinyArchitecture::kQwen3:
      return "Qwen3ForCausalLM";
    case TinyArchitecture::kQwen2:
      return "Qwen2ForCausalLM";
    case TinyArchitecture::kMistral:
      return "MistralForCausalLM";
    case TinyArchitecture::kLlama:
      return "LlamaForCausalLM";
    case TinyArchitecture::kMamba2:
      return "Mamba2ForCausalLM";
    case TinyArchitecture::kBamba:
      return "BambaForCausalLM";
    case TinyArchitecture::kMamba:
      return "MambaForCausalLM";
  }
  return "?";
}

std::vector<TinyArchitecture> AllTinyArchitectures() {
  return {TinyArchitecture::kLlama, TinyArchitecture::kMamba2, TinyArchitecture::kBamba,
          TinyArchitecture::kMamba,  TinyArchitecture::kQwen3,  TinyArchitecture::kQwen2,
          TinyArchitecture::kMistral};
}

absl::StatusOr<TinyArchitecture> ParseTinyArchitecture(std::string_view name) {
  std::vector<std::string> known;
  for (TinyArchitecture a : AllTinyArchitectures()) {
    if (name == TinyArchitectureName(a)) return a;
    known.emplace_back(TinyArchitectureName(a));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown architecture \"", std::string(name),
                   "\" (known: ", absl::StrJoin(known, ", "), ")"));
}

std::vector<std::string> TinyModelPresetNames(TinyArchitecture a) {
  if (IsDenseTransformer(a)) return {"tiny", "demo", "100m"};
  return {"tiny", "demo"};
}

absl::StatusOr<TinyModelOptions> TinyModelPreset(TinyArchitecture a,
                                                 std::string_view name) {
  TinyModelOptions o;  // the Llama "tiny" sizes
  o.architecture = a;
  const bool tiny = name == "tiny", demo = name == "demo";
  if (IsDenseTransformer(a)) {
    if (tiny) return o;
    if (demo) {
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
  } else if (tiny || demo) {
    // tiny: hidden 64, Mamba-2 mixers of 8 heads x 16 (d_inner 128), state 16.
    if (a == TinyArchitecture::kBamba) {
      o.num_layers = 4;
      o.attn_layer_indices = {1};
    }
    if (demo) {
      o.vocab_size = kTinyLlamaMinVocabSize;  // every id is a token
      o.hidden_size = 256;
      o.num_layers = 8;
      o.ssm_num_heads = 8;
      o.ssm_head_dim = 64;  // d_inner 512
      o.ssm_state_size = a == TinyArchitecture::kMamba ? 16 : 64;
      // Bamba: attention at 3 and 7 (one layer in four, as Bamba-9B's
      // 3 of 32), 8 heads x 32 with 4 kv heads, SwiGLU 512 wide.
      o.attn_layer_indices = {3, 7};
      o.num_heads = 8;
      o.num_kv_heads = 4;
      o.head_dim = 32;
      o.intermediate_size = 512;
      o.max_position_embeddings = 4096;
    }
    if (a != TinyArchitecture::kBamba) o.attn_layer_indices.clear();
    return o;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown preset \"", std::string(name), "\" for ", std::string(TinyArchitectureName(a)),
      " (known: ", absl::StrJoin(TinyModelPresetNames(a), ", "), ")"));
}

absl::Status ValidateTinyModelOptions(const TinyModelOptions& o) {
  const TinyArchitecture a = o.architecture;
  const bool attention = IsDenseTransformer(a) || IsBamba(o);
  const bool mamba2 = a == TinyArchitecture::kMamba2 || a == TinyArchitecture::kBamba;
  const bool ssm = !IsDenseTransformer(a);
  std::vector<std::pair<const char*, int64_t>> sizes = {
      {"vocab_size", o.vocab_size},
      {"hidden_size", o.hidden_size},
      {"num_layers", o.num_layers}};
  if (attention) {
    sizes.insert(sizes.end(), {{"intermediate_size", o.intermediate_size},
                               {"num_heads", o.num_heads},
                               {"num_kv_heads", o.num_kv_heads},
                               {"head_dim", o.head_dim},
                               {"max_position_embeddings", o.max_position_embeddings}});
  }
  if (ssm) {
    sizes.insert(sizes.end(), {{"ssm_state_size", o.ssm_state_size},
                               {"ssm_conv_kernel", o.ssm_conv_kernel},
                               {"ssm_expand", o.ssm_expand}});
  }
  if (mamba2) {
    sizes.insert(sizes.end(), {{"ssm_num_heads", o.ssm_num_heads},
                               {"ssm_head_dim", o.ssm_head_dim},
                               {"ssm_n_groups", o.ssm_n_groups},
                               {"ssm_chunk_size", o.ssm_chunk_size}});
  }
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
  if (attention) {
    if (o.num_heads % o.num_kv_heads != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("num_heads (", o.num_heads,
                       ") must be a multiple of num_kv_heads (", o.num_kv_heads,
                       ")"));
    }
    if (o.head_dim % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "head_dim must be even (rotary pairs), got ", o.head_dim));
    }
    if (!(o.rope_theta > 0.0) || !std::isfinite(o.rope_theta)) {
      return absl::InvalidArgumentError(
          absl::StrCat("rope_theta must be positive, got ", o.rope_theta));
    }
  }
  if (o.architecture == TinyArchitecture::kQwen2 && o.head_dim * o.num_heads != o.hidden_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "qwen2: head_dim (", o.head_dim, ") must be hidden_size / num_heads (", o.hidden_size,
        " / ", o.num_heads, "): Qwen2Config has no head_dim of its own"));
  }
  if (IsBamba(o)) {
    if (o.head_dim * o.num_heads != o.hidden_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bamba: head_dim (", o.head_dim, ") must be hidden_size / num_heads (",
          o.hidden_size, " / ", o.num_heads,
          "): BambaConfig has no head_dim of its own"));
    }
    // Bamba rotates half of head_dim (BambaConfig's partial_rotary_factor).
    if (o.head_dim % 4 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bamba: head_dim must be a multiple of 4 (half of it is rotated, in "
          "pairs), got ", o.head_dim));
    }
    for (size_t i = 0; i < o.attn_layer_indices.size(); ++i) {
      const int64_t layer = o.attn_layer_indices[i];
      if (layer < 0 || layer >= o.num_layers ||
          (i > 0 && layer <= o.attn_layer_indices[i - 1])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "attn_layer_indices must be increasing layer indices in [0, ",
            o.num_layers, "), got ", absl::StrJoin(o.attn_layer_indices, ",")));
      }
    }
  }
  if (mamba2) {
    if (o.ssm_num_heads * o.ssm_head_dim != o.ssm_expand * o.hidden_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ssm_num_heads * ssm_head_dim (", o.ssm_num_heads, " * ",
          o.ssm_head_dim, ") must equal ssm_expand * hidden_size (",
          o.ssm_expand, " * ", o.hidden_size, ")"));
    }
    if (o.ssm_num_heads % o.ssm_n_groups != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("ssm_n_groups (", o.ssm_n_groups,
                       ") must divide ssm_num_heads (", o.ssm_num_heads, ")"));
    }
  }
  if (ssm && o.ssm_conv_kernel < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ssm_conv_kernel must be at least 2, got ", o.ssm_conv_kernel));
  }
  if (!engine::IsFloat(o.dtype)) {
    return absl::InvalidArgumentError("dtype must be f32, bf16 or f16");
  }
  const int64_t num_tensors = static_cast<int64_t>(TinyModelTensors(o).size());
  if (o.num_shards < 1 || o.num_shards > num_tensors) {
    return absl::InvalidArgumentError(
        absl::StrCat("shards must be between 1 and the number of tensors (",
                     num_tensors, "), got ", o.num_shards));
  }
  return absl::OkStatus();
}

std::vector<TinyTensor> TinyModelTensors(const TinyModelOptions& o) {
  const int64_t h = o.hidden_size;
  std::vector<TinyTensor> t;
  switch (o.architecture) {
    case TinyArchitecture::kLlama:
    case TinyArchitecture::kQwen3:
    case TinyArchitecture::kQwen2:
    case TinyArchitecture::kMistral:
    case TinyArchitecture::kBamba: {
      const bool bamba = IsBamba(o);
      t.push_back({"model.embed_tokens.weight", {o.vocab_size, h}});
      for (int64_t i = 0; i < o.num_layers; ++i) {
        const std::string p = absl::StrCat("model.layers.", i, ".");
        t.push_back({p + "input_layernorm.weight", {h}, TensorInit::kNorm});
        if (IsAttentionLayer(o, i)) {
          AttentionTensors(o, p + "self_attn.", t);
        } else {
          Mamba2MixerTensors(o, p + "mamba.", t);
        }
        t.push_back({p + (bamba ? "pre_ff_layernorm.weight"
                                : "post_attention_layernorm.weight"),
                     {h}, TensorInit::kNorm});
        MlpTensors(o, p + (bamba ? "feed_forward." : "mlp."), t);
      }
      t.push_back({bamba ? "model.final_layernorm.weight" : "model.norm.weight",
                   {h}, TensorInit::kNorm});
      break;
    }
    case TinyArchitecture::kMamba2:
    case TinyArchitecture::kMamba:
      t.push_back({"backbone.embeddings.weight", {o.vocab_size, h}});
      for (int64_t i = 0; i < o.num_layers; ++i) {
        const std::string p = absl::StrCat("backbone.layers.", i, ".");
        t.push_back({p + "norm.weight", {h}, TensorInit::kNorm});
        if (o.architecture == TinyArchitecture::kMamba2) {
          Mamba2MixerTensors(o, p + "mixer.", t);
        } else {
          Mamba1MixerTensors(o, p + "mixer.", t);
        }
      }
      t.push_back({"backbone.norm_f.weight", {h}, TensorInit::kNorm});
      break;
  }
  if (!o.tie_word_embeddings) {
    t.push_back({"lm_head.weight", {o.vocab_size, h}});
  }
  return t;
}

int64_t TinyModelNumParameters(const TinyModelOptions& options) {
  int64_t n = 0;
  for (const TinyTensor& t : TinyModelTensors(options)) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    n += numel;
  }
  return n;
}

std::vector<float> TinyTensorValues(uint64_t seed, const TinyTensor& tensor) {
  int64_t numel = 1;
  for (int64_t d : tensor.shape) numel *= d;
  const int64_t last = tensor.shape.empty() ? 1 : tensor.shape.back();
  uint64_t mix = seed ^ Fnv1a(tensor.name);
  const uint64_t stream_seed = SplitMix64(mix);
  NormalStream normal(stream_seed);
  uint64_t uniform_state = stream_seed;
  std::vector<float> v(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) {
    double x = 0.0;
    switch (tensor.init) {
      case TensorInit::kNormal:
        x = 0.02 * normal.Next();
        break;
      case TensorInit::kNorm:
        x = 1.0 + 0.1 * normal.Next();
        break;
      case TensorInit::kConv:
        // [channels, 1, d_conv]
        x = normal.Next() / std::sqrt(3.0 * static_cast<double>(last));
        break;
      case TensorInit::kALog:
        x = std::log(1.0 + static_cast<double>(i % last));
        break;
      case TensorInit::kOnes:
        x = 1.0;
        break;
      case TensorInit::kDtBias: {
        const double lo = std::log(1e-3), hi = std::log(0.1);
        const double dt =
            std::max(std::exp(lo + Uniform(uniform_state) * (hi - lo)), 1e-4);
        x = dt + std::log(-std::expm1(-dt));  // softplus⁻¹(dt)
        break;
      }
      case TensorInit::kDtProj:
        x = (2.0 * Uniform(uniform_state) - 1.0) /
            std::sqrt(static_cast<double>(last));
        break;
    }
    v[static_cast<size_t>(i)] = static_cast<float>(x);
  }
  return v;
}

absl::Status WriteTinyModel(const TinyModelOptions& options,
                            const std::filesystem::path& out_dir) {
  HS_RETURN_IF_ERROR(ValidateTinyModelOptions(options));
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

  const std::vector<TinyTensor> tensors = TinyModelTensors(options);
  progress(absl::StrFormat("writing %s: %d parameters in %d tensors, %s",
                           out_dir.string(), TinyModelNumParameters(options),
                           tensors.size(), internal::TorchDTypeName(options.dtype)));
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
          TinyTensorValues(options.seed, tensors[i]);
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
    w.Int64(TinyModelNumParameters(options));
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
      {"config.json", internal::ConfigJson(options)},
      {"generation_config.json", internal::GenerationConfigJson()},
      {"tokenizer.json", internal::TokenizerJson()},
      {"tokenizer_config.json", internal::TokenizerConfigJson(options)},
  };
  for (const auto& [name, text] : files) {
    HS_RETURN_IF_ERROR(WriteTextFile(out_dir / name, text));
  }
  progress(absl::StrFormat(
      "wrote %s: %s, %d parameters, %s, %d shard(s), "
      "config.json, generation_config.json, tokenizer.json, "
      "tokenizer_config.json",
      out_dir.string(), std::string(TinyArchitectureClass(options.architecture)),
      TinyModelNumParameters(options),
      internal::TorchDTypeName(options.dtype), options.num_shards));
  return absl::OkStatus();
}

}  // namespace hybridserve::tools
