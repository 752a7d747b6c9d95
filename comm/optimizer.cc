#include "comm/optimizer.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace gradzip::comm {

const char* lr_schedule_name(LrSchedule s) {
  switch (s) {
    case LrSchedule::kConstant: return "constant";
    case LrSchedule::kStep: return "step";
    case LrSchedule::kCosine: return "cosine";
  }
  return "unknown";
}

LrSchedule parse_lr_schedule(const std::string& name) {
  for (auto s : {LrSchedule::kConstant, LrSchedule::kStep, LrSchedule::kCosine}) {
    if (name == lr_schedule_name(s)) return s;
  }
  throw std::invalid_argument("lr schedule '" + name + "' unknown; allowed: constant|step|cosine");
}

std::string OptimizerOptions::canonical() const {
  return fmt::format("sgd:lr={},momentum={},nesterov={},wd={},schedule={},warmup={},step_size={},gamma={},"
                     "total_steps={},min_lr={}",
                     lr, momentum, nesterov ? 1 : 0, weight_decay, lr_schedule_name(schedule), warmup_steps,
                     step_size, gamma, total_steps, min_lr);
}

double learning_rate(const OptimizerOptions& o, std::uint64_t step) {
  double lr = o.lr;
  switch (o.schedule) {
    case LrSchedule::kConstant: break;
    case LrSchedule::kStep:
      lr = o.lr * std::pow(o.gamma, static_cast<double>(step / std::max<std::uint64_t>(1, o.step_size)));
      break;
    case LrSchedule::kCosine: {
      const double t = std::min(1.0, static_cast<double>(step) / static_cast<double>(std::max<std::uint64_t>(1, o.total_steps)));
      lr = o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(M_PI * t));
      break;
    }
  }
  if (o.warmup_steps > 0 && step < o.warmup_steps) {
    lr *= static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  return lr;
}

void sgd_step(const OptimizerOptions& o, std::uint64_t step, float* params, const float* grad, float* momentum,
              std::size_t n) {
  const float lr = static_cast<float>(learning_rate(o, step));
  const float wd = static_cast<float>(o.weight_decay);
  const float mu = static_cast<float>(o.momentum);
  const bool use_momentum = o.momentum != 0.0 && momentum != nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    float d = grad[i];
    if (wd != 0.0f) d += wd * params[i];
    if (use_momentum) {
      const float b = mu * momentum[i] + d;
      momentum[i] = b;
      d = o.nesterov ? d + mu * b : b;
    }
    params[i] -= lr * d;
  }
}

void mean_sgd_step(const OptimizerOptions& o, std::uint64_t step, float* params, float* grad_sum, float* momentum,
                   std::size_t n, std::uint32_t contributors) {
  if (contributors > 1) {
    const float inv = 1.0f / static_cast<float>(contributors);
    for (std::size_t k = 0; k < n; ++k) grad_sum[k] *= inv;
  }
  sgd_step(o, step, params, grad_sum, momentum, n);
}

}  // namespace gradzip::comm
