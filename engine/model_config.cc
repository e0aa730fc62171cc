#include "engine/model_config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/check.h"
#include "engine/json_util.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

absl::Status Invalid(std::string_view source, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(source), ": ", Sv(message)));
}

// Upper bounds on what a config may declare. No real model has a width, head
// count, state size or layer count near 2^24, nor a context near 2^40; the
// bounds keep every product of two sizes far from int64 overflow and turn an
// absurd config into a clear error instead of a huge allocation.
constexpr int64_t kMaxSize = int64_t{1} << 24;
constexpr int64_t kMaxPositions = int64_t{1} << 40;

// A size read from the config: positive and at most `max`.
absl::Status CheckSize(std::string_view source, std::string_view key, int64_t v,
                       int64_t max = kMaxSize) {
  if (v <= 0) {
    return Invalid(source, absl::StrCat("\"", Sv(key), "\" must be positive, got ", v));
  }
  if (v > max) {
    return Invalid(source,
                   absl::StrCat("\"", Sv(key), "\" is ", v, ", more than the largest supported (",
                                max, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RequiredPositiveInt(const rapidjson::Value& obj,
                                            const char* key,
                                            std::string_view source,
                                            int64_t max = kMaxSize) {
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> v, JsonInt(obj, key, source));
  if (!v.has_value()) {
    return Invalid(source, absl::StrCat("missing required key \"", key, "\""));
  }
  HS_RETURN_IF_ERROR(CheckSize(source, key, *v, max));
  return *v;
}

// The rope dict's keys, read with the same precedence transformers v5 uses when
// it loads a config (RotaryEmbeddingConfigMixin.convert_rope_params_to_dict and
// standardize_rope_params):
//   * the dict is `rope_scaling` (v4) if non-empty, else `rope_parameters` (v5);
//   * rope_type: dict "rope_type", else dict "type", else "default";
//   * rope_theta: dict, else top-level `rope_theta`, else 10000;
//   * partial_rotary_factor: top-level if present, else dict, else 1;
//   * llama3 original_max_position_embeddings: top-level if present, else
//     dict, else max_position_embeddings.
// yarn's keys of the rope dict, as transformers reads them (defaults:
// beta_fast 32, beta_slow 1, truncate true; attention_factor from factor and
// mscale / mscale_all_dim when absent).
absl::Status ParseYarn(const rapidjson::Value& dict, std::string_view where,
                       std::string_view source, int64_t max_position_embeddings,
                       RopeConfig& rope) {
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> original,
                      JsonInt(dict, "original_max_position_embeddings", where));
  rope.original_max_position_embeddings = original.value_or(max_position_embeddings);
  HS_RETURN_IF_ERROR(CheckSize(source, "original_max_position_embeddings",
                               rope.original_max_position_embeddings, kMaxPositions));
  HS_ASSIGN_OR_RETURN(std::optional<double> beta_fast, JsonDouble(dict, "beta_fast", where));
  HS_ASSIGN_OR_RETURN(std::optional<double> beta_slow, JsonDouble(dict, "beta_slow", where));
  // transformers: `get("beta_fast") or 32`, so 0 also means the default.
  rope.beta_fast = beta_fast.value_or(0.0) != 0.0 ? *beta_fast : 32.0;
  rope.beta_slow = beta_slow.value_or(0.0) != 0.0 ? *beta_slow : 1.0;
  if (!(rope.beta_fast > 0.0) || !(rope.beta_slow > 0.0) || !std::isfinite(rope.beta_fast) ||
      !std::isfinite(rope.beta_slow)) {
    return Invalid(source, absl::StrCat("yarn rope needs positive beta_fast and beta_slow, got ",
                                        rope.beta_fast, " and ", rope.beta_slow));
  }
  HS_ASSIGN_OR_RETURN(std::optional<bool> truncate, JsonBool(dict, "truncate", where));
  rope.truncate = truncate.value_or(true);
  HS_ASSIGN_OR_RETURN(std::optional<double> attention_factor,
                      JsonDouble(dict, "attention_factor", where));
  HS_ASSIGN_OR_RETURN(std::optional<double> mscale, JsonDouble(dict, "mscale", where));
  HS_ASSIGN_OR_RETURN(std::optional<double> mscale_all_dim,
                      JsonDouble(dict, "mscale_all_dim", where));
  auto get_mscale = [](double scale, double m) {
    return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
  };
  if (attention_factor.has_value()) {
    rope.attention_factor = *attention_factor;
  } else if (mscale.value_or(0.0) != 0.0 && mscale_all_dim.value_or(0.0) != 0.0) {
    rope.attention_factor =
        get_mscale(rope.factor, *mscale) / get_mscale(rope.factor, *mscale_all_dim);
  } else {
    rope.attention_factor = get_mscale(rope.factor, 1.0);
  }
  if (!(rope.attention_factor > 0.0) || !std::isfinite(rope.attention_factor)) {
    return Invalid(source, absl::StrCat("yarn attention_factor must be positive, got ",
                                        rope.attention_factor));
  }
  return absl::OkStatus();
}

absl::StatusOr<RopeConfig> ParseRope(const rapidjson::Value& root,
                                     int64_t max_position_embeddings,
                                     std::string_view source) {
  RopeConfig rope;
  const rapidjson::Value* dict = nullptr;
  const char* dict_key = nullptr;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto it = root.FindMember(key);
    if (it == root.MemberEnd() || it->value.IsNull()) continue;
    if (!it->value.IsObject()) {
      return Invalid(source, absl::StrCat("\"", key, "\" must be an object"));
    }
    if (it->value.MemberCount() == 0) continue;
    dict = &it->value;
    dict_key = key;
    break;
  }
  rapidjson::Value empty(rapidjson::kObjectType);
  if (dict == nullptr) {
    dict = &empty;
    dict_key = "rope_parameters";
  }
  const std::string where = absl::StrCat(Sv(source), " \"", dict_key, "\"");

  HS_ASSIGN_OR_RETURN(std::optional<std::string> type,
                      JsonString(*dict, "rope_type", where));
  if (!type.has_value()) {
    HS_ASSIGN_OR_RETURN(type, JsonString(*dict, "type", where));
  }
  const std::string type_name = type.value_or("default");
  if (type_name == "default") {
    rope.type = RopeType::kDefault;
  } else if (type_name == "linear") {
    rope.type = RopeType::kLinear;
  } else if (type_name == "llama3") {
    rope.type = RopeType::kLlama3;
  } else if (type_name == "yarn") {
    rope.type = RopeType::kYarn;
  } else {
    return Invalid(source,
                   absl::StrCat("unsupported rope type \"", type_name,
                                "\" in \"", dict_key,
                                "\" (supported: default, linear, llama3, yarn)"));
  }

  HS_ASSIGN_OR_RETURN(std::optional<double> theta,
                      JsonDouble(*dict, "rope_theta", where));
  if (!theta.has_value()) {
    HS_ASSIGN_OR_RETURN(theta, JsonDouble(root, "rope_theta", source));
  }
  rope.theta = theta.value_or(10000.0);
  if (!(rope.theta > 0.0) || !std::isfinite(rope.theta)) {
    return Invalid(source, absl::StrCat("rope_theta must be positive and "
                                        "finite, got ",
                                        rope.theta));
  }

  HS_ASSIGN_OR_RETURN(std::optional<double> partial,
                      JsonDouble(root, "partial_rotary_factor", source));
  if (!partial.has_value()) {
    HS_ASSIGN_OR_RETURN(partial,
                        JsonDouble(*dict, "partial_rotary_factor", where));
  }
  rope.partial_rotary_factor = partial.value_or(1.0);
  if (!(rope.partial_rotary_factor > 0.0 && rope.partial_rotary_factor <= 1.0)) {
    return Invalid(source,
                   absl::StrCat("partial_rotary_factor must be in (0, 1], got ",
                                rope.partial_rotary_factor));
  }

  if (rope.type == RopeType::kDefault) return rope;

  HS_ASSIGN_OR_RETURN(std::optional<double> factor,
                      JsonDouble(*dict, "factor", where));
  if (!factor.has_value()) {
    return Invalid(source, absl::StrCat("rope type \"", type_name,
                                        "\" requires \"factor\" in \"",
                                        dict_key, "\""));
  }
  if (!(*factor > 0.0) || !std::isfinite(*factor)) {
    return Invalid(source, absl::StrCat("rope \"factor\" must be positive, got ",
                                        *factor));
  }
  rope.factor = *factor;
  if (rope.type == RopeType::kLinear) return rope;
  if (rope.type == RopeType::kYarn) {
    HS_RETURN_IF_ERROR(ParseYarn(*dict, where, source, max_position_embeddings, rope));
    return rope;
  }

  // llama3.
  const std::pair<const char*, double*> llama3_keys[] = {
      {"low_freq_factor", &rope.low_freq_factor},
      {"high_freq_factor", &rope.high_freq_factor}};
  for (const auto& [key, out] : llama3_keys) {
    HS_ASSIGN_OR_RETURN(std::optional<double> v, JsonDouble(*dict, key, where));
    if (!v.has_value()) {
      return Invalid(source, absl::StrCat("rope type \"llama3\" requires \"",
                                          key, "\" in \"", dict_key, "\""));
    }
    *out = *v;
  }
  if (!(rope.low_freq_factor > 0.0) ||
      !(rope.high_freq_factor > rope.low_freq_factor)) {
    return Invalid(source,
                   absl::StrCat("llama3 rope needs 0 < low_freq_factor < "
                                "high_freq_factor, got ",
                                rope.low_freq_factor, " and ",
                                rope.high_freq_factor));
  }
  HS_ASSIGN_OR_RETURN(
      std::optional<int64_t> original,
      JsonInt(root, "original_max_position_embeddings", source));
  if (!original.has_value()) {
    HS_ASSIGN_OR_RETURN(
        original, JsonInt(*dict, "original_max_position_embeddings", where));
  }
  rope.original_max_position_embeddings =
      original.value_or(max_position_embeddings);
  HS_RETURN_IF_ERROR(CheckSize(source, "original_max_position_embeddings",
                               rope.original_max_position_embeddings, kMaxPositions));
  return rope;
}

// The `architectures` entry: exactly one string (looked up in the registry by
// the caller).
absl::StatusOr<std::string> ParseArchitecture(const rapidjson::Value& root,
                                              std::string_view source) {
  auto it = root.FindMember("architectures");
  if (it == root.MemberEnd() || it->value.IsNull()) {
    return Invalid(source, "missing \"architectures\"");
  }
  const rapidjson::Value& list = it->value;
  if (!list.IsArray() || list.Size() != 1 || !list[0].IsString()) {
    return Invalid(source,
                   "\"architectures\" must be a list of exactly one string");
  }
  return std::string(list[0].GetString(), list[0].GetStringLength());
}

}  // namespace

std::string_view FamilyName(ArchitectureFamily family) {
  switch (family) {
    case ArchitectureFamily::kTransformer:
      return "transformer";
    case ArchitectureFamily::kSsm:
      return "ssm";
    case ArchitectureFamily::kHybrid:
      return "hybrid";
  }
  return "unknown";
}

ArchitectureFamily ModelConfig::family() const {
  const int64_t attention = num_attention_layers();
  if (attention == static_cast<int64_t>(layer_kinds.size())) {
    return ArchitectureFamily::kTransformer;
  }
  if (attention == 0) return ArchitectureFamily::kSsm;
  return ArchitectureFamily::kHybrid;
}

int64_t ModelConfig::num_attention_layers() const {
  int64_t n = 0;
  for (LayerKind k : layer_kinds) n += k == LayerKind::kAttention ? 1 : 0;
  return n;
}

int64_t ModelConfig::num_ssm_layers() const {
  return static_cast<int64_t>(layer_kinds.size()) - num_attention_layers();
}

uint64_t ModelConfig::state_bytes_per_seq() const {
  uint64_t bytes = 0;
  for (LayerKind k : layer_kinds) {
    if (k == LayerKind::kAttention) continue;
    bytes += ssm.conv_state_bytes(k) + ssm.ssm_state_bytes(k);
  }
  return bytes;
}

int64_t SsmConfig::conv_channels(LayerKind kind) const {
  return kind == LayerKind::kMamba2 ? d_inner + 2 * n_groups * d_state : d_inner;
}

uint64_t SsmConfig::conv_state_bytes(LayerKind kind) const {
  return static_cast<uint64_t>(conv_channels(kind)) * (d_conv - 1) * sizeof(float);
}

uint64_t SsmConfig::ssm_state_bytes(LayerKind kind) const {
  // Mamba-2: [num_heads, head_dim, d_state] (num_heads * head_dim == d_inner);
  // Mamba-1: [d_inner, d_state]. Same count either way.
  (void)kind;
  return static_cast<uint64_t>(d_inner) * d_state * sizeof(float);
}

int64_t ModelConfig::rotary_dim() const {
  // transformers: int(head_dim * partial_rotary_factor).
  return static_cast<int64_t>(static_cast<double>(head_dim) *
                              rope.partial_rotary_factor);
}

namespace {

absl::Status ParseTokenIdsAndDtype(const rapidjson::Value& doc,
                                   std::string_view source, ModelConfig& c) {
  HS_ASSIGN_OR_RETURN(c.bos_token_id, JsonInt(doc, "bos_token_id", source));
  HS_ASSIGN_OR_RETURN(c.eos_token_ids,
                      JsonIntOrIntList(doc, "eos_token_id", source));
  HS_ASSIGN_OR_RETURN(c.pad_token_id, JsonInt(doc, "pad_token_id", source));
  auto check_id = [&](const char* key, int64_t id) -> absl::Status {
    if (id < 0 || id >= c.vocab_size) {
      return Invalid(source, absl::StrCat("\"", key, "\" ", id,
                                          " is outside the vocabulary [0, ",
                                          c.vocab_size, ")"));
    }
    return absl::OkStatus();
  };
  if (c.bos_token_id) HS_RETURN_IF_ERROR(check_id("bos_token_id", *c.bos_token_id));
  if (c.pad_token_id) HS_RETURN_IF_ERROR(check_id("pad_token_id", *c.pad_token_id));
  for (int64_t id : c.eos_token_ids) {
    HS_RETURN_IF_ERROR(check_id("eos_token_id", id));
  }

  // transformers v5 writes "dtype"; v4 wrote "torch_dtype".
  HS_ASSIGN_OR_RETURN(std::optional<std::string> dtype,
                      JsonString(doc, "dtype", source));
  if (!dtype.has_value()) {
    HS_ASSIGN_OR_RETURN(dtype, JsonString(doc, "torch_dtype", source));
  }
  c.torch_dtype = dtype.value_or("");
  if (!c.torch_dtype.empty() && c.torch_dtype != "float32" &&
      c.torch_dtype != "bfloat16" && c.torch_dtype != "float16") {
    return Invalid(source, absl::StrCat("unsupported dtype \"", c.torch_dtype,
                                        "\" (supported: float32, bfloat16, "
                                        "float16)"));
  }
  return absl::OkStatus();
}

// config `key` (hidden_act): silu (also "swish"), gelu_pytorch_tanh or relu2;
// absent means silu.
absl::StatusOr<Activation> ParseActivation(const rapidjson::Value& doc, const char* key,
                                           std::string_view source) {
  HS_ASSIGN_OR_RETURN(std::optional<std::string> act, JsonString(doc, key, source));
  if (!act.has_value() || *act == "silu" || *act == "swish") return Activation::kSilu;
  if (*act == "gelu_pytorch_tanh") return Activation::kGeluTanh;
  if (*act == "relu2") return Activation::kRelu2;
  return Invalid(source, absl::StrCat("unsupported \"", key, "\" \"", *act,
                                      "\" (supported: silu, gelu_pytorch_tanh, relu2)"));
}

// Options of mamba_ssm-style configs the graph does not implement: rejected
// when present with a value other than the one we implement.
absl::Status RejectUnsupportedSsmOptions(const rapidjson::Value& doc,
                                         std::string_view source) {
  const std::pair<const char*, bool> bools[] = {
      {"norm_before_gate", false}, {"rmsnorm", true}, {"D_has_hdim", false}};
  for (const auto& [key, supported] : bools) {
    auto it = doc.FindMember(key);
    if (it == doc.MemberEnd() || it->value.IsNull()) continue;
    HS_ASSIGN_OR_RETURN(std::optional<bool> v, JsonBool(doc, key, source));
    if (v.has_value() && *v != supported) {
      return Invalid(source, absl::StrCat("unsupported \"", key, "\": ",
                                          *v ? "true" : "false", " (supported: ",
                                          supported ? "true" : "false", ")"));
    }
  }
  return absl::OkStatus();
}

// A JSON number, or transformers' encoding of a non-finite float:
// {"__float__": "Infinity" | "-Infinity" | "NaN"} (transformers 5 writes
// float("inf") that way; older versions wrote the bare literal Infinity,
// which the parser also accepts).
std::optional<double> JsonFloatValue(const rapidjson::Value& v) {
  if (v.IsNumber()) return v.GetDouble();
  if (!v.IsObject() || v.MemberCount() != 1) return std::nullopt;
  auto it = v.FindMember("__float__");
  if (it == v.MemberEnd() || !it->value.IsString()) return std::nullopt;
  const std::string s(it->value.GetString(), it->value.GetStringLength());
  if (s == "Infinity" || s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-Infinity" || s == "-inf") return -std::numeric_limits<double>::infinity();
  if (s == "NaN" || s == "nan") return std::numeric_limits<double>::quiet_NaN();
  return std::nullopt;
}

// time_step_limit: [min, max], max may be infinite; absent → [0, inf).
absl::Status ParseTimeStepLimit(const rapidjson::Value& doc,
                                std::string_view source, SsmConfig& ssm) {
  ssm.dt_min = 0.0;
  ssm.dt_max = std::numeric_limits<double>::infinity();
  auto it = doc.FindMember("time_step_limit");
  if (it == doc.MemberEnd() || it->value.IsNull()) return absl::OkStatus();
  const rapidjson::Value& v = it->value;
  std::optional<double> lo, hi;
  if (v.IsArray() && v.Size() == 2) {
    lo = JsonFloatValue(v[0]);
    hi = JsonFloatValue(v[1]);
  }
  if (!lo.has_value() || !hi.has_value()) {
    return Invalid(source, "\"time_step_limit\" must be a list of two numbers");
  }
  ssm.dt_min = *lo;
  ssm.dt_max = *hi;
  if (!(ssm.dt_min >= 0.0) || !std::isfinite(ssm.dt_min) ||
      !(ssm.dt_max >= ssm.dt_min)) {
    return Invalid(source, absl::StrCat("\"time_step_limit\" must be [min, max] with "
                                        "0 <= min <= max, got [",
                                        ssm.dt_min, ", ", ssm.dt_max, "]"));
  }
  return absl::OkStatus();
}

// Mamba configs: max_position_embeddings is optional;
// negative means unset (0), above kMaxPositions is refused.
absl::Status ParseOptionalMaxPositions(const rapidjson::Value& doc, std::string_view source,
                                       ModelConfig& c) {
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> max_pos,
                      JsonInt(doc, "max_position_embeddings", source));
  if (max_pos.value_or(0) > kMaxPositions) {
    HS_RETURN_IF_ERROR(CheckSize(source, "max_position_embeddings", *max_pos, kMaxPositions));
  }
  c.max_position_embeddings = std::max<int64_t>(0, max_pos.value_or(0));
  return absl::OkStatus();
}

absl::Status ParseMamba2(const rapidjson::Value& doc, std::string_view source,
                         ModelConfig& c) {
  SsmConfig& m = c.ssm;
  HS_ASSIGN_OR_RETURN(m.num_heads, RequiredPositiveInt(doc, "num_heads", source));
  HS_ASSIGN_OR_RETURN(m.head_dim, RequiredPositiveInt(doc, "head_dim", source));
  HS_ASSIGN_OR_RETURN(m.d_state, RequiredPositiveInt(doc, "state_size", source));
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> expand, JsonInt(doc, "expand", source));
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> d_conv, JsonInt(doc, "conv_kernel", source));
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> groups, JsonInt(doc, "n_groups", source));
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> chunk, JsonInt(doc, "chunk_size", source));
  // Defaults as Mamba2Config's.
  const std::pair<const char*, int64_t> ints[] = {{"expand", expand.value_or(2)},
                                                  {"conv_kernel", d_conv.value_or(4)},
                                                  {"n_groups", groups.value_or(8)},
                                                  {"chunk_size", chunk.value_or(256)}};
  for (const auto& [key, v] : ints) HS_RETURN_IF_ERROR(CheckSize(source, key, v));
  m.d_inner = ints[0].second * c.hidden_size;
  m.d_conv = ints[1].second;
  m.n_groups = ints[2].second;
  m.chunk_size = ints[3].second;
  if (m.d_inner != m.num_heads * m.head_dim) {
    return Invalid(source, absl::StrCat("expand * hidden_size (", m.d_inner,
                                        ") must equal num_heads * head_dim (",
                                        m.num_heads * m.head_dim, ")"));
  }
  if (m.num_heads % m.n_groups != 0) {
    return Invalid(source, absl::StrCat("\"num_heads\" (", m.num_heads,
                                        ") must be a multiple of \"n_groups\" (",
                                        m.n_groups, ")"));
  }
  HS_ASSIGN_OR_RETURN(std::optional<bool> conv_bias, JsonBool(doc, "use_conv_bias", source));
  m.conv_bias = conv_bias.value_or(true);
  HS_ASSIGN_OR_RETURN(std::optional<bool> bias, JsonBool(doc, "use_bias", source));
  m.proj_bias = bias.value_or(false);
  HS_ASSIGN_OR_RETURN(std::optional<double> eps, JsonDouble(doc, "layer_norm_epsilon", source));
  c.rms_norm_eps = eps.value_or(1e-5);
  if (!(c.rms_norm_eps > 0.0) || !std::isfinite(c.rms_norm_eps)) {
    return Invalid(source, absl::StrCat("\"layer_norm_epsilon\" must be positive, got ",
                                        c.rms_norm_eps));
  }
  m.norm_eps = c.rms_norm_eps;
  HS_RETURN_IF_ERROR(ParseTimeStepLimit(doc, source, m));
  HS_RETURN_IF_ERROR(RejectUnsupportedSsmOptions(doc, source));
  HS_RETURN_IF_ERROR(ParseOptionalMaxPositions(doc, source, c));
  c.layer_kinds.assign(static_cast<size_t>(c.num_layers), LayerKind::kMamba2);
  return absl::OkStatus();
}

// The attention layers' keys (Llama's, shared by Bamba): sizes, heads, norm
// epsilon, biases, rope. The rotary dimension is checked by the caller.
// MambaForCausalLM (Mamba-1): transformers' MambaConfig keys.
absl::Status ParseMamba1(const rapidjson::Value& doc, std::string_view source,
                         ModelConfig& c) {
  SsmConfig& m = c.ssm;
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> d_state, JsonInt(doc, "state_size", source));
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> expand, JsonInt(doc, "expand", source));
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> d_conv, JsonInt(doc, "conv_kernel", source));
  m.d_state = d_state.value_or(16);
  HS_RETURN_IF_ERROR(CheckSize(source, "expand", expand.value_or(2)));
  m.d_inner = expand.value_or(2) * c.hidden_size;
  m.d_conv = d_conv.value_or(4);
  // time_step_rank: an int or "auto" (ceil(hidden_size / 16)).
  auto rank = doc.FindMember("time_step_rank");
  if (rank == doc.MemberEnd() || rank->value.IsNull() ||
      (rank->value.IsString() && std::string(rank->value.GetString()) == "auto")) {
    m.dt_rank = (c.hidden_size + 15) / 16;
  } else {
    HS_ASSIGN_OR_RETURN(std::optional<int64_t> r, JsonInt(doc, "time_step_rank", source));
    m.dt_rank = r.value_or(0);
  }
  const std::pair<const char*, int64_t> sizes[] = {{"state_size", m.d_state},
                                                   {"expand * hidden_size", m.d_inner},
                                                   {"conv_kernel", m.d_conv},
                                                   {"time_step_rank", m.dt_rank}};
  for (const auto& [key, v] : sizes) HS_RETURN_IF_ERROR(CheckSize(source, key, v));
  HS_ASSIGN_OR_RETURN(std::optional<bool> conv_bias, JsonBool(doc, "use_conv_bias", source));
  m.conv_bias = conv_bias.value_or(true);
  HS_ASSIGN_OR_RETURN(std::optional<bool> bias, JsonBool(doc, "use_bias", source));
  m.proj_bias = bias.value_or(false);
  HS_ASSIGN_OR_RETURN(std::optional<double> eps, JsonDouble(doc, "layer_norm_epsilon", source));
  c.rms_norm_eps = eps.value_or(1e-5);
  if (!(c.rms_norm_eps > 0.0) || !std::isfinite(c.rms_norm_eps)) {
    return Invalid(source, absl::StrCat("\"layer_norm_epsilon\" must be positive, got ",
                                        c.rms_norm_eps));
  }
  m.norm_eps = c.rms_norm_eps;
  m.dt_min = 0.0;
  m.dt_max = std::numeric_limits<double>::infinity();
  HS_RETURN_IF_ERROR(RejectUnsupportedSsmOptions(doc, source));
  HS_RETURN_IF_ERROR(ParseOptionalMaxPositions(doc, source, c));
  c.layer_kinds.assign(static_cast<size_t>(c.num_layers), LayerKind::kMamba1);
  return absl::OkStatus();
}

absl::Status ParseAttention(const rapidjson::Value& doc, std::string_view source,
                            ModelConfig& c) {
  HS_ASSIGN_OR_RETURN(c.intermediate_size,
                      RequiredPositiveInt(doc, "intermediate_size", source));
  HS_ASSIGN_OR_RETURN(c.num_attention_heads,
                      RequiredPositiveInt(doc, "num_attention_heads", source));
  HS_ASSIGN_OR_RETURN(
      c.max_position_embeddings,
      RequiredPositiveInt(doc, "max_position_embeddings", source, kMaxPositions));
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> kv,
                      JsonInt(doc, "num_key_value_heads", source));
  c.num_kv_heads = kv.value_or(c.num_attention_heads);
  HS_RETURN_IF_ERROR(CheckSize(source, "num_key_value_heads", c.num_kv_heads));
  if (c.num_attention_heads % c.num_kv_heads != 0) {
    return Invalid(source,
                   absl::StrCat("\"num_attention_heads\" (",
                                c.num_attention_heads,
                                ") must be a multiple of \"num_key_value_heads\" (",
                                c.num_kv_heads, ")"));
  }
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> head_dim,
                      JsonInt(doc, "head_dim", source));
  if (head_dim.has_value()) {
    HS_RETURN_IF_ERROR(CheckSize(source, "head_dim", *head_dim));
    c.head_dim = *head_dim;
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      return Invalid(source,
                     absl::StrCat("\"hidden_size\" (", c.hidden_size,
                                  ") is not a multiple of \"num_attention_heads\" (",
                                  c.num_attention_heads,
                                  ") and no \"head_dim\" is given"));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }

  HS_ASSIGN_OR_RETURN(std::optional<double> eps,
                      JsonDouble(doc, "rms_norm_eps", source));
  c.rms_norm_eps = eps.value_or(1e-6);
  if (!(c.rms_norm_eps > 0.0) || !std::isfinite(c.rms_norm_eps)) {
    return Invalid(source, absl::StrCat("\"rms_norm_eps\" must be positive, got ",
                                        c.rms_norm_eps));
  }
  HS_ASSIGN_OR_RETURN(std::optional<bool> tie,
                      JsonBool(doc, "tie_word_embeddings", source));
  c.tie_word_embeddings = tie.value_or(false);
  HS_ASSIGN_OR_RETURN(std::optional<bool> attention_bias,
                      JsonBool(doc, "attention_bias", source));
  c.attention_bias = attention_bias.value_or(false);  // q, k, v and o alike
  c.attention_out_bias = c.attention_bias;
  HS_ASSIGN_OR_RETURN(std::optional<bool> mlp_bias,
                      JsonBool(doc, "mlp_bias", source));
  c.mlp_bias = mlp_bias.value_or(false);


  HS_ASSIGN_OR_RETURN(c.rope, ParseRope(doc, c.max_position_embeddings, source));
  return absl::OkStatus();
}

absl::Status CheckRotaryDim(const ModelConfig& c, std::string_view source) {
  const int64_t rotary = c.rotary_dim();
  if (rotary <= 0 || rotary % 2 != 0 || rotary > c.head_dim) {
    return Invalid(source,
                   absl::StrCat("rotary dimension int(head_dim * "
                                "partial_rotary_factor) = ",
                                rotary, " must be even and in [2, head_dim=",
                                c.head_dim, "]"));
  }

  return absl::OkStatus();
}

absl::Status ParseLlama(const rapidjson::Value& doc, std::string_view source,
                        ModelConfig& c) {
  HS_RETURN_IF_ERROR(ParseAttention(doc, source, c));
  HS_RETURN_IF_ERROR(CheckRotaryDim(c, source));
  c.layer_kinds.assign(static_cast<size_t>(c.num_layers), LayerKind::kAttention);
  return absl::OkStatus();
}

// BambaForCausalLM: attention layers at attn_layer_indices (Llama keys, partial
// rotary), Mamba-2 layers elsewhere (mamba_* keys), a SwiGLU MLP after every
// mixer.
absl::Status ParseBamba(const rapidjson::Value& doc, std::string_view source,
                        ModelConfig& c) {
  HS_RETURN_IF_ERROR(ParseAttention(doc, source, c));
  // transformers' BambaConfig hard-codes partial_rotary_factor 0.5 whatever
  // the file says and ignores attn_rotary_emb; we follow it (Bamba-9B's
  // attn_rotary_emb is 64 of 128, the same; docs/reference_deviations.md).
  c.rope.partial_rotary_factor = 0.5;
  HS_RETURN_IF_ERROR(CheckRotaryDim(c, source));

  SsmConfig& m = c.ssm;
  HS_ASSIGN_OR_RETURN(m.num_heads, RequiredPositiveInt(doc, "mamba_n_heads", source));
  HS_ASSIGN_OR_RETURN(m.d_state, RequiredPositiveInt(doc, "mamba_d_state", source));
  struct IntKey {
    const char* key;
    int64_t fallback;  // BambaConfig's default
    int64_t* out;
  };
  int64_t expand = 0;
  const IntKey ints[] = {{"mamba_expand", 2, &expand},
                         {"mamba_d_conv", 4, &m.d_conv},
                         {"mamba_n_groups", 1, &m.n_groups},
                         {"mamba_chunk_size", 256, &m.chunk_size}};
  for (const IntKey& k : ints) {
    HS_ASSIGN_OR_RETURN(std::optional<int64_t> v, JsonInt(doc, k.key, source));
    *k.out = v.value_or(k.fallback);
    HS_RETURN_IF_ERROR(CheckSize(source, k.key, *k.out));
  }
  m.d_inner = expand * c.hidden_size;
  // mamba_d_head: an int or "auto" (d_inner / mamba_n_heads).
  auto head = doc.FindMember("mamba_d_head");
  if (head == doc.MemberEnd() || head->value.IsNull() ||
      (head->value.IsString() && std::string(head->value.GetString()) == "auto")) {
    m.head_dim = m.d_inner / m.num_heads;
  } else {
    HS_ASSIGN_OR_RETURN(std::optional<int64_t> d, JsonInt(doc, "mamba_d_head", source));
    m.head_dim = d.value_or(0);
  }
  if (m.head_dim <= 0 || m.head_dim > kMaxSize || m.head_dim * m.num_heads != m.d_inner) {
    return Invalid(source, absl::StrCat("mamba_d_head * mamba_n_heads (", m.head_dim, " * ",
                                        m.num_heads, ") must equal mamba_expand * "
                                        "hidden_size (", m.d_inner, ")"));
  }
  if (m.num_heads % m.n_groups != 0) {
    return Invalid(source, absl::StrCat("\"mamba_n_heads\" (", m.num_heads,
                                        ") must be a multiple of \"mamba_n_groups\" (",
                                        m.n_groups, ")"));
  }
  HS_ASSIGN_OR_RETURN(std::optional<bool> conv_bias, JsonBool(doc, "mamba_conv_bias", source));
  m.conv_bias = conv_bias.value_or(true);
  HS_ASSIGN_OR_RETURN(std::optional<bool> proj_bias, JsonBool(doc, "mamba_proj_bias", source));
  m.proj_bias = proj_bias.value_or(false);
  m.norm_eps = c.rms_norm_eps;
  HS_RETURN_IF_ERROR(ParseTimeStepLimit(doc, source, m));
  HS_RETURN_IF_ERROR(RejectUnsupportedSsmOptions(doc, source));

  c.layer_kinds.assign(static_cast<size_t>(c.num_layers), LayerKind::kMamba2);
  auto idx = doc.FindMember("attn_layer_indices");
  if (idx != doc.MemberEnd() && !idx->value.IsNull()) {
    if (!idx->value.IsArray()) {
      return Invalid(source, "\"attn_layer_indices\" must be a list of layer indices");
    }
    for (const auto& v : idx->value.GetArray()) {
      if (!v.IsInt64() || v.GetInt64() < 0 || v.GetInt64() >= c.num_layers) {
        return Invalid(source, absl::StrCat("\"attn_layer_indices\" entries must be "
                                            "layer indices in [0, ",
                                            c.num_layers, ")"));
      }
      c.layer_kinds[static_cast<size_t>(v.GetInt64())] = LayerKind::kAttention;
    }
  }
  return absl::OkStatus();
}

// sliding_window: an int, or null / absent for none. `gated`: Qwen2 and
// Qwen3 apply it only when use_sliding_window is true (to the layers from
// max_window_layers on; taken here as all of them, which only makes the
// engine's --max-model-len check stricter).
absl::Status ParseSlidingWindow(const rapidjson::Value& doc, std::string_view source,
                                bool gated, ModelConfig& c) {
  if (gated) {
    HS_ASSIGN_OR_RETURN(std::optional<bool> use, JsonBool(doc, "use_sliding_window", source));
    if (!use.value_or(false)) return absl::OkStatus();
  }
  HS_ASSIGN_OR_RETURN(std::optional<int64_t> window, JsonInt(doc, "sliding_window", source));
  if (!window.has_value()) return absl::OkStatus();
  HS_RETURN_IF_ERROR(CheckSize(source, "sliding_window", *window, kMaxPositions));
  c.sliding_window = *window;
  return absl::OkStatus();
}

// MistralForCausalLM: Llama's keys and an optional sliding window.
absl::Status ParseMistral(const rapidjson::Value& doc, std::string_view source,
                          ModelConfig& c) {
  HS_RETURN_IF_ERROR(ParseLlama(doc, source, c));
  return ParseSlidingWindow(doc, source, /*gated=*/false, c);
}

// Qwen2ForCausalLM: Llama's keys; q/k/v always carry biases, o_proj never.
absl::Status ParseQwen2(const rapidjson::Value& doc, std::string_view source,
                        ModelConfig& c) {
  HS_RETURN_IF_ERROR(ParseLlama(doc, source, c));
  c.attention_bias = true;
  c.attention_out_bias = false;
  return ParseSlidingWindow(doc, source, /*gated=*/true, c);
}

// Qwen3ForCausalLM: Llama's keys (attention_bias for q/k/v/o) and per-head
// RMSNorm of q and k before the rotary embedding.
absl::Status ParseQwen3(const rapidjson::Value& doc, std::string_view source,
                        ModelConfig& c) {
  HS_RETURN_IF_ERROR(ParseLlama(doc, source, c));
  c.qk_norm = true;
  return ParseSlidingWindow(doc, source, /*gated=*/true, c);
}

// ---- The architecture registry: one entry per config `architectures[0]`.
// Adding a family is adding an entry here (its parser above, reusing the
// shared ones) — and, when it needs a block the graphs do not have yet, that
// block in engine/model/.

using ParseFn = absl::Status (*)(const rapidjson::Value& doc, std::string_view source,
                                 ModelConfig& c);
struct RegistryEntry {
  ArchitectureInfo info;
  ParseFn parse;
};

constexpr DecoderTensorNames kLlamaNames = {.embed = "model.embed_tokens.weight",
                                            .final_norm = "model.norm.weight",
                                            .post_mixer_norm = "post_attention_layernorm.weight",
                                            .mlp = "mlp."};

const RegistryEntry kRegistry[] = {
    {{"LlamaForCausalLM", "llama", ModelGraph::kDecoder, kLlamaNames}, ParseLlama},
    {{"MistralForCausalLM", "mistral", ModelGraph::kDecoder, kLlamaNames}, ParseMistral},
    {{"Qwen2ForCausalLM", "qwen2", ModelGraph::kDecoder, kLlamaNames}, ParseQwen2},
    {{"Qwen3ForCausalLM", "qwen3", ModelGraph::kDecoder, kLlamaNames}, ParseQwen3},
    {{"BambaForCausalLM", "bamba", ModelGraph::kDecoder,
      {.embed = "model.embed_tokens.weight",
       .final_norm = "model.final_layernorm.weight",
       .post_mixer_norm = "pre_ff_layernorm.weight",
       .mlp = "feed_forward."}},
     ParseBamba},
    {{"Mamba2ForCausalLM", "mamba2", ModelGraph::kMambaBackbone, {}}, ParseMamba2},
    {{"MambaForCausalLM", "mamba", ModelGraph::kMambaBackbone, {}}, ParseMamba1},
};

const RegistryEntry* FindRegistryEntry(std::string_view name) {
  for (const RegistryEntry& e : kRegistry) {
    if (e.info.name == name) return &e;
  }
  return nullptr;
}

std::string SupportedArchitectureList() {
  std::vector<std::string> names;
  for (const RegistryEntry& e : kRegistry) names.emplace_back(e.info.name);
  return absl::StrJoin(names, ", ");
}

// Checkpoint options no graph implements, refused by name.
absl::Status RejectUnsupportedCheckpointKeys(const rapidjson::Value& doc,
                                             std::string_view source) {
  auto it = doc.FindMember("quantization_config");
  if (it != doc.MemberEnd() && !it->value.IsNull()) {
    return Invalid(source, "quantized checkpoints (\"quantization_config\") are not "
                           "supported; use an unquantized f32, bf16 or f16 checkpoint");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text,
                                             std::string_view source) {
  HS_ASSIGN_OR_RETURN(rapidjson::Document doc,
                      ParseJsonObject(json_text, source));
  ModelConfig c;
  HS_ASSIGN_OR_RETURN(c.architecture, ParseArchitecture(doc, source));
  const RegistryEntry* entry = FindRegistryEntry(c.architecture);
  if (entry == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat(Sv(source), ": unsupported architecture \"", c.architecture,
                     "\" (supported: ", SupportedArchitectureList(), ")"));
  }
  c.graph = entry->info.graph;
  c.tensor_names = entry->info.names;
  HS_ASSIGN_OR_RETURN(std::optional<std::string> model_type,
                      JsonString(doc, "model_type", source));
  c.model_type = model_type.value_or("");
  const std::string_view expected_type = entry->info.model_type;
  if (!c.model_type.empty() && c.model_type != expected_type) {
    return Invalid(source, absl::StrCat("model_type \"", c.model_type,
                                        "\" does not match architecture ",
                                        c.architecture, " (expected \"",
                                        Sv(expected_type), "\")"));
  }

  HS_ASSIGN_OR_RETURN(c.vocab_size,
                      RequiredPositiveInt(doc, "vocab_size", source));
  HS_ASSIGN_OR_RETURN(c.hidden_size,
                      RequiredPositiveInt(doc, "hidden_size", source));
  HS_ASSIGN_OR_RETURN(c.num_layers,
                      RequiredPositiveInt(doc, "num_hidden_layers", source));
  HS_ASSIGN_OR_RETURN(std::optional<bool> tie,
                      JsonBool(doc, "tie_word_embeddings", source));
  c.tie_word_embeddings = tie.value_or(false);
  HS_ASSIGN_OR_RETURN(c.hidden_act, ParseActivation(doc, "hidden_act", source));
  HS_RETURN_IF_ERROR(RejectUnsupportedCheckpointKeys(doc, source));
  HS_RETURN_IF_ERROR(entry->parse(doc, source, c));
  // Mamba mixers apply hidden_act to their conv output (transformers'
  // MambaMixer / Mamba2Mixer / BambaMixer); they implement silu only.
  if (c.num_ssm_layers() > 0 && c.hidden_act != Activation::kSilu) {
    return Invalid(source, "unsupported \"hidden_act\" for Mamba layers (supported: silu)");
  }
  HS_RETURN_IF_ERROR(ParseTokenIdsAndDtype(doc, source, c));
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(
    const std::filesystem::path& model_dir) {
  const std::filesystem::path path = model_dir / "config.json";
  HS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path.string());
}

RopeTables ComputeRopeTables(const RopeConfig& rope, int64_t rotary_dim) {
  HS_CHECK(rotary_dim > 0 && rotary_dim % 2 == 0);
  // Each step below is one f32 tensor op in transformers (torch on CPU), so
  // each is rounded to f32 here too. torch computes `scalar / tensor` as
  // reciprocal(tensor) * scalar, and scalars enter f32 ops as (float)scalar.
  RopeTables t;
  const int64_t n = rotary_dim / 2;
  t.inv_freq.resize(static_cast<size_t>(n));
  const float base = static_cast<float>(rope.theta);
  const float dim = static_cast<float>(rotary_dim);
  for (int64_t i = 0; i < n; ++i) {
    // arange(0, dim, 2).float() / dim
    const float exponent = static_cast<float>(2 * i) / dim;
    // base ** exponent: torch's f32 pow is faithful (<= 1 ulp); the correctly
    // rounded value, computed in double and rounded once, is what it returns
    // for the exponents that occur here.
    const float pow_f = static_cast<float>(
        std::pow(static_cast<double>(base), static_cast<double>(exponent)));
    t.inv_freq[static_cast<size_t>(i)] = 1.0f / pow_f;
  }
  if (rope.type == RopeType::kLinear) {
    const float factor = static_cast<float>(rope.factor);
    for (float& f : t.inv_freq) f = f / factor;
  } else if (rope.type == RopeType::kLlama3) {
    const float factor = static_cast<float>(rope.factor);
    const float low = static_cast<float>(rope.low_freq_factor);
    const double old_len =
        static_cast<double>(rope.original_max_position_embeddings);
    // Python floats: old_context_len / low_freq_factor etc., in double, then
    // compared against f32 tensors as (float).
    const float low_freq_wavelen =
        static_cast<float>(old_len / rope.low_freq_factor);
    const float high_freq_wavelen =
        static_cast<float>(old_len / rope.high_freq_factor);
    const float two_pi = static_cast<float>(2.0 * std::numbers::pi);
    const float old_len_f = static_cast<float>(old_len);
    // (high_freq_factor - low_freq_factor) is a Python float.
    const float smooth_denominator =
        static_cast<float>(rope.high_freq_factor - rope.low_freq_factor);
    for (float& f : t.inv_freq) {
      const float inv_freq = f;
      const float wavelen = (1.0f / inv_freq) * two_pi;
      float llama = wavelen > low_freq_wavelen ? inv_freq / factor : inv_freq;
      const float smooth =
          ((1.0f / wavelen) * old_len_f - low) / smooth_denominator;
      const float a = (1.0f - smooth) * llama;
      const float b = a / factor;
      const float c = smooth * llama;
      const float smoothed = b + c;
      const bool medium =
          !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      if (medium) llama = smoothed;
      f = llama;
    }
  }
  if (rope.type == RopeType::kYarn) {
    // transformers' _compute_yarn_parameters, op by op in f32 where torch
    // computes in f32, in double where it computes in Python floats.
    const double d = static_cast<double>(rotary_dim);
    const double two_pi = 2.0 * std::numbers::pi;
    const double log_base = std::log(rope.theta);
    const double original = static_cast<double>(rope.original_max_position_embeddings);
    auto correction_dim = [&](double rotations) {
      return (d * std::log(original / (rotations * two_pi))) / (2.0 * log_base);
    };
    double low = correction_dim(rope.beta_fast), high = correction_dim(rope.beta_slow);
    if (rope.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, d - 1.0);
    if (low == high) high += 0.001;  // as transformers, against a zero range
    const float factor = static_cast<float>(rope.factor);
    const float low_f = static_cast<float>(low), span_f = static_cast<float>(high - low);
    for (int64_t i = 0; i < n; ++i) {
      // t.inv_freq holds 1 / pos_freqs (the extrapolation frequencies).
      const float extrapolation = t.inv_freq[static_cast<size_t>(i)];
      const float pos_freq = static_cast<float>(std::pow(
          static_cast<double>(base), static_cast<double>(static_cast<float>(2 * i) / dim)));
      const float interpolation = 1.0f / (factor * pos_freq);
      float ramp = (static_cast<float>(i) - low_f) / span_f;
      ramp = std::min(std::max(ramp, 0.0f), 1.0f);
      const float extrapolation_factor = 1.0f - ramp;
      const float a = interpolation * (1.0f - extrapolation_factor);
      const float b = extrapolation * extrapolation_factor;
      t.inv_freq[static_cast<size_t>(i)] = a + b;
    }
    t.attention_scaling = static_cast<float>(rope.attention_factor);
    return t;
  }
  t.attention_scaling = 1.0f;
  return t;
}

std::vector<ArchitectureInfo> RegisteredArchitectures() {
  std::vector<ArchitectureInfo> out;
  for (const RegistryEntry& e : kRegistry) out.push_back(e.info);
  return out;
}

}  // namespace hybridserve::engine
