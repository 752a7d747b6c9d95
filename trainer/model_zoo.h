// Torch side of the model zoo (see trainer/models.h for the list and references).
// Internal to trainer/ and its tests: includes torch.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "trainer/models.h"

namespace gradzip::trainer {

/// Base of every zoo model: a module with a forward from images to logits.
class Net : public torch::nn::Module {
 public:
  ~Net() override = default;
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

/// Builds the model named in `spec` (float32, CPU, freshly initialised from the torch
/// global RNG; call torch::manual_seed first for a repeatable init). Throws ConfigError.
std::shared_ptr<Net> make_model(const ModelSpec& spec);

}  // namespace gradzip::trainer
