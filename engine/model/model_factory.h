// Builds the model graph a config names (ModelConfig::graph, from the
// architecture's registry entry in model_config.cc). Nothing here knows
// architecture names: a new family that reuses the graphs needs no change.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MODEL_FACTORY_H_
#define HYBRIDSERVE_ENGINE_MODEL_MODEL_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint.h"
#include "engine/model/model.h"
#include "engine/model_config.h"

namespace hybridserve::engine {

// Loads the weights of `config`'s graph from `checkpoint` onto `backend` and
// allocates its workspace. Errors name the missing or misshapen tensor.
// `backend` must outlive the model.
absl::StatusOr<std::unique_ptr<Model>> LoadModel(const ModelConfig& config,
                                                 const Checkpoint& checkpoint, Backend* backend,
                                                 const ModelLoadOptions& options);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_MODEL_FACTORY_H_
