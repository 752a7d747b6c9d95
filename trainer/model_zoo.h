// Torch side of the model zoo (see trainer/models.h for the list and references).
// Internal to trainer/ and its tests: includes torch.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>

#include "trainer/models.h"

namespace gradzip::trainer {

/// Base of every zoo model: a module with a forward from images to logits.
///
/// Parameter gate (the overlapped pipeline, trainer/pipeline.h): while the previous
/// step's parameters still arrive bucket by bucket, forward() calls
/// await_parameters(layer) before each layer reads its parameters, and the gate blocks
/// until that layer's buckets are in. A model whose forward does not gate every layer
/// returns false from gates_parameters(); its forward then waits for all of them.
class Net : public torch::nn::Module {
 public:
  using Gate = std::function<void(const torch::nn::Module& layer)>;
  ~Net() override = default;
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  /// True when forward() calls await_parameters() before every layer with parameters.
  virtual bool gates_parameters() const { return true; }
  /// Sets (or, with an empty function, removes) the gate.
  void set_parameter_gate(Gate gate) { gate_ = std::move(gate); }

 protected:
  void await_parameters(const torch::nn::Module& layer) const {
    if (gate_) gate_(layer);
  }
  /// Runs the modules of `seq` in order, each after its gate.
  torch::Tensor gated(torch::nn::Sequential& seq, torch::Tensor x) const {
    for (auto& m : *seq) {
      await_parameters(*m.ptr());
      x = m.forward(x);
    }
    return x;
  }

 private:
  Gate gate_;
};

/// Builds the model named in `spec` (float32, CPU, freshly initialised from the torch
/// global RNG; call torch::manual_seed first for a repeatable init). Throws ConfigError.
std::shared_ptr<Net> make_model(const ModelSpec& spec);

}  // namespace gradzip::trainer
