#include "engine/tokenizer/incremental_detokenizer.h"

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/tokenizer/string_util.h"

namespace hybridserve::engine::tokenizer {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer,
                                               bool skip_special_tokens)
    : tokenizer_(tokenizer),
      skip_special_tokens_(skip_special_tokens),
      stream_(tokenizer.decoder().NewStream()) {}

absl::Status IncrementalDetokenizer::Step(int32_t id, std::string* out) {
  if (finished_) {
    return absl::FailedPreconditionError("IncrementalDetokenizer: Step after Finish");
  }
  const std::string* token = tokenizer_.IdToToken(id);
  if (token == nullptr) {
    return absl::InvalidArgumentError(Cat(
        "token id ", id, " has no token; ids are in [0, ", tokenizer_.vocab_size(), ")"));
  }
  ++num_ids_;
  if (skip_special_tokens_ && tokenizer_.IsSpecialId(id)) return absl::OkStatus();
  stream_->Push(*token, out);
  return absl::OkStatus();
}

absl::StatusOr<std::string> IncrementalDetokenizer::Step(int32_t id) {
  std::string out;
  HS_RETURN_IF_ERROR(Step(id, &out));
  return out;
}

void IncrementalDetokenizer::Finish(std::string* out) {
  if (finished_) return;
  finished_ = true;
  stream_->Finish(out);
}

}  // namespace hybridserve::engine::tokenizer
