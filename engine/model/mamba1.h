// MambaForCausalLM (Mamba-1) over the Backend op set (transformers'
// modeling_mamba.py, slow_forward): the Mamba backbone (mamba_model.h) with
// Mamba-1 mixers (mamba1_mixer.h).
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MAMBA1_H_
#define HYBRIDSERVE_ENGINE_MODEL_MAMBA1_H_

#include "engine/model/mamba1_mixer.h"
#include "engine/model/mamba_model.h"

namespace hybridserve::engine {

// Instantiated in mamba_model.cc.
extern template class MambaModel<Mamba1Mixer>;
using Mamba1Model = MambaModel<Mamba1Mixer>;

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_MAMBA1_H_
