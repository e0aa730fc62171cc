// The activations a gated MLP applies to its gate (config `hidden_act`).
// Plain enum, shared by the config, the backends and the CUDA kernels.
#ifndef HYBRIDSERVE_ENGINE_ACTIVATION_H_
#define HYBRIDSERVE_ENGINE_ACTIVATION_H_

#include <cstdint>

namespace hybridserve::engine {

enum class Activation : uint8_t {
  kSilu = 0,      // x · sigmoid(x) ("silu", "swish")
  kGeluTanh = 1,  // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))) ("gelu_pytorch_tanh")
  kRelu2 = 2,     // relu(x)² ("relu2")
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_ACTIVATION_H_
