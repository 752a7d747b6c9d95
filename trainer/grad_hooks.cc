#include "trainer/grad_hooks.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <atomic>
#include <string>

#include "trainer/errors.h"

namespace gradzip::trainer {

struct GradHooks::State {
  std::function<void(std::size_t)> on_grad;
  std::function<void(std::exception_ptr)> on_error;
  std::atomic<bool> enabled{true};
};

namespace {

class AccumulatedHook final : public torch::autograd::FunctionPostHook {
 public:
  AccumulatedHook(std::shared_ptr<GradHooks::State> state, std::size_t index)
      : state_(std::move(state)), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    if (!state_->enabled.load()) return outputs;
    try {
      state_->on_grad(index_);
    } catch (...) {
      state_->on_error(std::current_exception());
    }
    return outputs;
  }

 private:
  std::shared_ptr<GradHooks::State> state_;
  std::size_t index_;
};

}  // namespace

GradHooks::GradHooks(const std::vector<torch::Tensor>& params, std::function<void(std::size_t)> on_grad,
                     std::function<void(std::exception_ptr)> on_error)
    : state_(std::make_shared<State>()) {
  state_->on_grad = std::move(on_grad);
  state_->on_error = std::move(on_error);
  for (std::size_t i = 0; i < params.size(); ++i) {
    std::shared_ptr<torch::autograd::Node> acc = torch::autograd::impl::grad_accumulator(params[i]);
    if (!acc) {
      throw PipelineError(PipelineError::Stage::kHook,
                          "parameter " + std::to_string(i) +
                              " has no gradient accumulator (not a leaf requiring grad)");
    }
    acc->add_post_hook(std::make_unique<AccumulatedHook>(state_, i));
    accumulators_.push_back(std::move(acc));
  }
}

void GradHooks::set_enabled(bool enabled) { state_->enabled.store(enabled); }

}  // namespace gradzip::trainer
