// Server-side optimizer on a shard's partition of the flat parameter buffer.
//
// SGD with heavy-ball momentum or Nesterov momentum and L2 weight decay, with the same
// update rule as PyTorch's torch.optim.SGD (dampening 0), so a run can be compared
// with a single-process reference:
//   d_t = g_t + wd * p_t
//   b_t = mu * b_{t-1} + d_t            (b_0 = 0, so b_1 = d_1)        if mu > 0
//   d_t = d_t + mu * b_t  (Nesterov; Sutskever et al. 2013, eq. 4)  or  d_t = b_t
//   p_{t+1} = p_t - lr(t) * d_t
// Learning-rate schedules: constant, step decay (lr * gamma^floor(t/step_size)),
// cosine (Loshchilov & Hutter 2017, SGDR eq. 5 without restarts), each with an optional
// linear warm-up over the first warmup_steps (Goyal et al. 2017, sec. 2.2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace gradzip::comm {

enum class LrSchedule { kConstant, kStep, kCosine };

/// "constant" | "step" | "cosine"; parse throws std::invalid_argument naming the allowed values.
const char* lr_schedule_name(LrSchedule s);
LrSchedule parse_lr_schedule(const std::string& name);

/// Optimizer settings (filled by the CLI). Plain value type.
struct OptimizerOptions {
  double lr = 0.1;            ///< base learning rate
  double momentum = 0.0;      ///< mu in [0, 1)
  bool nesterov = false;
  double weight_decay = 0.0;  ///< L2 coefficient
  LrSchedule schedule = LrSchedule::kConstant;
  std::uint64_t warmup_steps = 0;     ///< linear warm-up from lr/warmup_steps to lr
  std::uint64_t step_size = 1000;     ///< step schedule: decay every step_size steps
  double gamma = 0.1;                 ///< step schedule: decay factor
  std::uint64_t total_steps = 1000;   ///< cosine schedule: steps to reach min_lr
  double min_lr = 0.0;                ///< cosine schedule floor

  /// "sgd:lr=0.1,momentum=0.9,nesterov=1,wd=0.0001,schedule=cosine,..." (for logs).
  std::string canonical() const;
};

/// Learning rate of step t (0-based) under `o`.
double learning_rate(const OptimizerOptions& o, std::uint64_t step);

/// One optimizer step on params[0, n) with gradient grad[0, n) and momentum buffer
/// momentum[0, n) (unused and may be null when o.momentum == 0). In-place; the three
/// arrays must not overlap. Thread-compatible (no shared state).
void sgd_step(const OptimizerOptions& o, std::uint64_t step, float* params, const float* grad, float* momentum,
              std::size_t n);

/// The parameter server's sync update of one bucket, shared by the shards and the
/// collective transport (comm/collective_transport.h) so both apply the same arithmetic:
/// grad_sum[0, n) holds the sum of `contributors` gradients; it is scaled in place by
/// 1/contributors (fp32, skipped for one contributor), then sgd_step.
void mean_sgd_step(const OptimizerOptions& o, std::uint64_t step, float* params, float* grad_sum, float* momentum,
                   std::size_t n, std::uint32_t contributors);

}  // namespace gradzip::comm
