// The JSON files of a tiny-model folder (tools/lib/tiny_model.h): config.json
// as transformers 5.24.0 writes it for each class, generation_config.json,
// and the byte-level BPE tokenizer.json / tokenizer_config.json.
// Internal to tools/lib.
#ifndef HYBRIDSERVE_TOOLS_LIB_TINY_MODEL_JSON_H_
#define HYBRIDSERVE_TOOLS_LIB_TINY_MODEL_JSON_H_

#include <string>

#include "engine/dtype.h"
#include "tools/lib/tiny_model.h"

namespace hybridserve::tools::internal {

// "float32", "bfloat16" or "float16".
std::string TorchDTypeName(engine::DType dtype);
// Text of config.json: every key transformers' save_pretrained writes for the
// architecture's config class, sorted, with the options' values and the
// class defaults for the rest. REQUIRES: options valid.
std::string ConfigJson(const TinyModelOptions& options);
std::string GenerationConfigJson();
std::string TokenizerJson();
std::string TokenizerConfigJson(const TinyModelOptions& options);

}  // namespace hybridserve::tools::internal

#endif  // HYBRIDSERVE_TOOLS_LIB_TINY_MODEL_JSON_H_
