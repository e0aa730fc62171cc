// ModelContext: what the gRPC services know of the one served model. Immutable
// after start-up except through EngineLoop (thread-safe) — the services never
// touch the Engine's mutable state.
#ifndef HYBRIDSERVE_SERVER_MODEL_CONTEXT_H_
#define HYBRIDSERVE_SERVER_MODEL_CONTEXT_H_

#include <string>
#include <vector>

#include "engine/generation_config.h"
#include "engine/model_config.h"
#include "engine/runtime/engine.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/engine_loop.h"
#include "server/config.h"

namespace hybridserve::server {

struct ModelContext {
  ServerConfig config;
  std::string served_name;
  engine::ModelConfig model;            // copy: read from any thread
  engine::GenerationConfig generation;  // copy
  engine::MemoryPlan memory;            // copy
  int64_t max_model_len = 0;
  std::string device;
  std::vector<int32_t> eos_token_ids;   // config and generation_config, merged
  const engine::tokenizer::Tokenizer* tokenizer = nullptr;  // thread-safe
  scheduler::EngineLoop* loop = nullptr;                    // thread-safe
};

}  // namespace hybridserve::server

#endif  // HYBRIDSERVE_SERVER_MODEL_CONTEXT_H_
