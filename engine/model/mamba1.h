// Mamba1Model: MambaForCausalLM (Mamba-1) over the Backend op set, the Mamba
// backbone of mamba_model.h with the mixer of mamba1_mixer.h.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MAMBA1_H_
#define HYBRIDSERVE_ENGINE_MODEL_MAMBA1_H_

#include "engine/model/mamba_model.h"

#endif  // HYBRIDSERVE_ENGINE_MODEL_MAMBA1_H_
