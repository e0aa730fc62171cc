// Mamba2ForCausalLM over the Backend op set (transformers' modeling_mamba2.py,
// torch_forward): the Mamba backbone (mamba_model.h) with Mamba-2 mixers
// (mamba2_mixer.h).
// Thread-compatible; owned by the engine loop.
#ifndef HYBRIDSERVE_ENGINE_MODEL_MAMBA2_H_
#define HYBRIDSERVE_ENGINE_MODEL_MAMBA2_H_

#include "engine/model/mamba2_mixer.h"
#include "engine/model/mamba_model.h"

namespace hybridserve::engine {

// Instantiated in mamba_model.cc.
extern template class MambaModel<Mamba2Mixer>;
using Mamba2Model = MambaModel<Mamba2Mixer>;

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_MODEL_MAMBA2_H_
