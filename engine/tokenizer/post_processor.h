// The "post_processor" of tokenizer.json, for single sequences: which ids
// encode(add_special_tokens = true) puts around the text's ids.
// TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel (ids
// unchanged) and Sequence. Immutable; thread-safe.
#ifndef HYBRIDSERVE_ENGINE_TOKENIZER_POST_PROCESSOR_H_
#define HYBRIDSERVE_ENGINE_TOKENIZER_POST_PROCESSOR_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rapidjson/document.h"

namespace hybridserve::engine::tokenizer {

class PostProcessor {
 public:
  // Parses a post_processor object; unsupported types fail with UNIMPLEMENTED.
  static absl::StatusOr<PostProcessor> FromJson(const rapidjson::Value& json);

  // Wraps *ids with the special ids of the template (add_special_tokens).
  void Apply(std::vector<int32_t>* ids) const;

 private:
  // A template item: the sequence itself (empty `ids`) or special ids.
  struct Item {
    bool is_sequence = false;
    std::vector<int32_t> ids;
  };
  static absl::Status AddSteps(const rapidjson::Value& json, std::string_view where,
                               std::vector<std::vector<Item>>* steps);

  // Applied in order; each is a template for a single sequence.
  std::vector<std::vector<Item>> steps_;
};

}  // namespace hybridserve::engine::tokenizer

#endif  // HYBRIDSERVE_ENGINE_TOKENIZER_POST_PROCESSOR_H_
