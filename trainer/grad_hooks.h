// Autograd hooks that report each parameter's final gradient (torch; internal to
// trainer/). Each parameter gets a post-hook on its gradient accumulator (the
// AccumulateGrad node autograd runs once the gradient of that leaf is complete and
// added into .grad, which is a view into the flat gradient buffer). PyTorch DDP's
// reducer hooks the same place; the node and FunctionPostHook exist in libtorch 1.13
// and 2.x. The accumulators are kept alive here: autograd holds them weakly, and a new
// one (without the hook) would be made if they expired.
//
// The callback runs on the thread autograd uses for the parameter's device (the calling
// thread for CPU). It must not throw: GradHooks catches what it throws, reports it to
// `on_error` and keeps backward going; the worker stops after backward.
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

namespace gradzip::trainer {

class GradHooks {
 public:
  /// Installs hooks on `params` (flat order); `on_grad(i)` is called when params[i]'s
  /// gradient is final in a backward pass.
  GradHooks(const std::vector<torch::Tensor>& params, std::function<void(std::size_t)> on_grad,
            std::function<void(std::exception_ptr)> on_error);
  /// While false, hooks do nothing (e.g. a backward outside training).
  void set_enabled(bool enabled);

  struct State;  // shared with the hooks autograd owns (they may outlive this object)

 private:
  std::shared_ptr<State> state_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
};

}  // namespace gradzip::trainer
