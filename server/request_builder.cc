#include "server/request_builder.h"

#include <algorithm>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/status_macros.h"

namespace hybridserve::server {
namespace {

absl::Status Invalid(auto&&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

uint64_t RandomSeed() {
  static thread_local std::mt19937_64 gen(std::random_device{}());
  return gen();
}

absl::Status FillSampling(const v1::SamplingParams& p, const ModelContext& m,
                          engine::SamplingParams* out) {
  const engine::GenerationConfig& g = m.generation;
  // Request value, else generation_config.json's (only when it samples), else
  // the neutral default.
  const bool gen_samples = g.do_sample.value_or(true);
  out->temperature = p.has_temperature() ? p.temperature()
                     : (gen_samples && g.temperature) ? static_cast<float>(*g.temperature)
                                                      : 1.0f;
  out->top_k = p.has_top_k() ? p.top_k()
               : (gen_samples && g.top_k) ? static_cast<int32_t>(*g.top_k)
                                          : 0;
  out->top_p = p.has_top_p() ? p.top_p()
               : (gen_samples && g.top_p) ? static_cast<float>(*g.top_p)
                                          : 1.0f;
  out->min_p = p.has_min_p() ? p.min_p() : (gen_samples && g.min_p) ? static_cast<float>(*g.min_p) : 0.0f;
  out->repetition_penalty = p.has_repetition_penalty() ? p.repetition_penalty()
                            : g.repetition_penalty ? static_cast<float>(*g.repetition_penalty)
                                                   : 1.0f;
  out->presence_penalty = p.presence_penalty();
  out->frequency_penalty = p.frequency_penalty();
  out->seed = p.has_seed() ? p.seed() : RandomSeed();
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckModelName(const ModelContext& model, const std::string& name) {
  if (name.empty() || name == model.served_name) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("model '", name, "' is not served here; this server serves '",
                                          model.served_name, "'"));
}

absl::StatusOr<std::unique_ptr<scheduler::Request>> BuildRequest(
    const v1::GenerateRequest& proto, const ModelContext& m, absl::Time now,
    absl::Time deadline) {
  const ServerConfig& c = m.config;
  HS_RETURN_IF_ERROR(CheckModelName(m, proto.model()));
  auto r = std::make_unique<scheduler::Request>();
  r->request_id = proto.request_id();
  r->arrival = now;
  r->deadline = deadline;
  r->priority = proto.priority();

  // ---- prompt
  switch (proto.input_case()) {
    case v1::GenerateRequest::kText: {
      if (proto.text().empty()) return Invalid("text: the prompt is empty");
      if (static_cast<int64_t>(proto.text().size()) > c.max_input_bytes) {
        return Invalid("text: ", proto.text().size(), " bytes exceed the limit of ",
                       c.max_input_bytes, " (--max-input-bytes)");
      }
      auto ids = m.tokenizer->Encode(proto.text(), proto.add_special_tokens() || !proto.has_add_special_tokens());
      if (!ids.ok()) return Invalid("text: ", ids.status().message());
      r->prompt_ids = *std::move(ids);
      break;
    }
    case v1::GenerateRequest::kTokenIds: {
      const auto& ids = proto.token_ids().ids();
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= m.model.vocab_size) {
          return Invalid("token_ids.ids[", i, "]: token id ", ids[i], " is outside the vocabulary [0, ",
                         m.model.vocab_size, ")");
        }
      }
      r->prompt_ids.assign(ids.begin(), ids.end());
      break;
    }
    default:
      return Invalid("input: set text or token_ids");
  }
  const int64_t prompt_len = static_cast<int64_t>(r->prompt_ids.size());
  if (prompt_len == 0) return Invalid("input: the prompt is empty");
  if (c.max_prompt_tokens > 0 && prompt_len > c.max_prompt_tokens) {
    return Invalid("input: the prompt has ", prompt_len, " tokens, more than the limit of ",
                   c.max_prompt_tokens, " (--max-prompt-tokens)");
  }
  if (prompt_len >= m.max_model_len) {
    return Invalid("input: the prompt has ", prompt_len, " tokens; the model's limit is ",
                   m.max_model_len, " tokens (--max-model-len) including at least one generated token");
  }

  // ---- stopping
  const v1::StoppingCriteria& s = proto.stopping();
  const int64_t room = m.max_model_len - prompt_len;
  if (s.has_max_new_tokens()) {
    if (s.max_new_tokens() <= 0) {
      return Invalid("stopping.max_new_tokens must be >= 1, got ", s.max_new_tokens());
    }
    if (s.max_new_tokens() > c.max_new_tokens) {
      return Invalid("stopping.max_new_tokens: ", s.max_new_tokens(), " exceeds the limit of ",
                     c.max_new_tokens, " (--max-new-tokens)");
    }
    if (m.memory.num_blocks > 0 && s.max_new_tokens() > room) {
      return Invalid("stopping.max_new_tokens: prompt (", prompt_len, " tokens) + max_new_tokens (",
                     s.max_new_tokens(), ") exceeds the model's limit of ", m.max_model_len,
                     " tokens (--max-model-len)");
    }
    r->stop.max_new_tokens = s.max_new_tokens();
  } else {
    r->stop.max_new_tokens = static_cast<int32_t>(
        std::min<int64_t>({c.default_max_new_tokens, c.max_new_tokens, room}));
  }
  if (s.min_new_tokens() < 0 || s.min_new_tokens() > r->stop.max_new_tokens) {
    return Invalid("stopping.min_new_tokens must be in [0, max_new_tokens = ", r->stop.max_new_tokens,
                   "], got ", s.min_new_tokens());
  }
  r->stop.min_new_tokens = s.min_new_tokens();
  if (s.stop_size() > c.max_stop_strings) {
    return Invalid("stopping.stop: ", s.stop_size(), " stop strings exceed the limit of ",
                   c.max_stop_strings, " (--max-stop-strings)");
  }
  for (int i = 0; i < s.stop_size(); ++i) {
    if (s.stop(i).empty()) return Invalid("stopping.stop[", i, "] is empty");
    if (static_cast<int64_t>(s.stop(i).size()) > c.max_stop_string_bytes) {
      return Invalid("stopping.stop[", i, "]: ", s.stop(i).size(), " bytes exceed the limit of ",
                     c.max_stop_string_bytes, " (--max-stop-string-bytes)");
    }
    r->stop.stop_strings.push_back(s.stop(i));
  }
  for (int i = 0; i < s.stop_token_ids_size(); ++i) {
    const int32_t id = s.stop_token_ids(i);
    if (id < 0 || id >= m.model.vocab_size) {
      return Invalid("stopping.stop_token_ids[", i, "]: token id ", id,
                     " is outside the vocabulary [0, ", m.model.vocab_size, ")");
    }
    r->stop.stop_token_ids.push_back(id);
  }
  if (r->stop.stop_token_ids.size() > 1024) return Invalid("stopping.stop_token_ids: more than 1024 ids");
  r->stop.ignore_eos = s.ignore_eos();
  r->stop.eos_token_ids = m.eos_token_ids;
  r->stop.include_stop_str_in_output = s.include_stop_str_in_output();

  // ---- sampling and logprobs
  HS_RETURN_IF_ERROR(FillSampling(proto.sampling(), m, &r->sampling));
  if (proto.has_logprobs()) {
    if (proto.logprobs() < 0 || proto.logprobs() > c.max_logprobs) {
      return Invalid("logprobs must be in [0, ", c.max_logprobs, "] (--max-logprobs), got ", proto.logprobs());
    }
    r->logprobs = proto.logprobs();
    r->sampling.logprobs = proto.logprobs();
  }
  if (proto.has_prompt_logprobs()) {
    if (proto.prompt_logprobs() < 0 || proto.prompt_logprobs() > c.max_logprobs) {
      return Invalid("prompt_logprobs must be in [0, ", c.max_logprobs, "] (--max-logprobs), got ",
                     proto.prompt_logprobs());
    }
    r->prompt_logprobs = proto.prompt_logprobs();
    r->sampling.prompt_logprobs = proto.prompt_logprobs();
  }
  if (absl::Status st = engine::Validate(r->sampling, c.max_logprobs); !st.ok()) {
    return Invalid("sampling.", st.message());
  }
  r->skip_special_tokens = proto.skip_special_tokens() || !proto.has_skip_special_tokens();
  return r;
}

}  // namespace hybridserve::server
