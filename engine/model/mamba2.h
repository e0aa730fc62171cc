// Mamba2Model: Mamba2ForCausalLM over the Backend op set, the Mamba backbone
// of mamba_model.h with the mixer of mamba2_mixer.h.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MAMBA2_H_
#define HYBRIDSERVE_ENGINE_MODEL_MAMBA2_H_

#include "engine/model/mamba_model.h"

#endif  // HYBRIDSERVE_ENGINE_MODEL_MAMBA2_H_
