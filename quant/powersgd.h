// PowerSGD (Vogels, Karimireddy, Jaggi: "PowerSGD: Practical low-rank gradient
// compression for distributed optimization", NeurIPS 2019, Algorithm 1 with error
// feedback, Algorithm 2): a rank-r approximation P Q^T of each gradient matrix, found by
// one step of subspace iteration warm-started from the previous step's Q. It needs two
// reductions per step (P, then Q), so it is not a per-worker message codec: an allreduce
// engine (or a parameter server doing two round trips) drives one PowerSgdState per tensor
// through explicit phases and reduces the buffers in between.
//
// One step of one tensor, on every rank (M is rows x cols, row-major; the engine owns the
// two reductions and may sum or average them, see set_reduced_q):
//   compute_p(grad, p)     M = grad + e (error feedback); p = M Q           rows x r
//   [engine]               p_reduced = sum (or mean) of p over the ranks
//   set_reduced_p(p_red)   P = orthonormalise(p_reduced) (Gram-Schmidt, twice)
//   compute_q(q)           q = M^T P                                         cols x r
//   [engine]               q_reduced = MEAN of q over the ranks (sum x 1/R)
//   set_reduced_q(q_red)   Q = q_reduced (kept: the warm start of the next step)
//   finish(approx)         approx = P Q^T; e = M - approx                    rows x cols
// With q_reduced the mean, approx is the rank-r approximation of the mean gradient and is
// bitwise equal on every rank (the reduced buffers are; everything after is
// deterministic). The error-feedback invariant e_new + approx == M holds per rank.
//
// Buffer layout for the engine: p holds r columns of `rows` floats (column k at offset
// k * rows), q holds r columns of `cols` floats; the engine only sums them elementwise.
// Conv weights (out, in, kh, kw) are the matrix out x (in * kh * kw): rows = shape[0],
// cols = the product of the rest, which is PyTorch's row-major layout of the tensor.
//
// Initial Q: standard normal entries (Box-Muller on words 0 and 1 of random_block(
// {seed, 0, 0, tensor_index}, kPowerSgdInitStream, k * cols + j)), equal on every rank.
// A Q column that comes back exactly zero (a zero gradient) is redrawn the same way with
// step = completed steps + 1, so the warm start never collapses to zero.
// Thread-safety: one state per tensor; distinct states may run on distinct threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "quant/philox.h"
#include "quant/status.h"

namespace gradzip::quant {

constexpr std::uint32_t kPowerSgdMaxRank = 256;
/// Philox stream id of the initial Q (ids 0..2: the codecs' RandomStream, 3: rotation).
constexpr RandomStream kPowerSgdInitStream = static_cast<RandomStream>(4);

struct PowerSgdConfig {
  std::uint32_t rank = 4;           ///< r, 1..kPowerSgdMaxRank
  std::uint64_t min_numel = 4096;   ///< tensors with fewer elements go uncompressed
};

/// How one tensor travels: as a rank-r matrix product, or dense (1-D tensors such as
/// biases and BN parameters, tensors below min_numel, and matrices where r (rows + cols)
/// >= rows * cols, i.e. PowerSGD would not save bytes).
struct PowerSgdPlan {
  bool compressed = false;
  std::size_t rows = 0;     ///< shape[0] (numel when dense)
  std::size_t cols = 0;     ///< product of shape[1:] (1 when dense)
  std::uint32_t rank = 0;   ///< min(config.rank, rows, cols); 0 when dense
  /// fp32 values this rank contributes to the reductions per step:
  /// rank * (rows + cols) when compressed (p, then q), rows * cols when dense.
  std::size_t floats_per_step() const;
};

/// The plan of a tensor of `shape` (each extent >= 1). kInvalidArgument for an empty
/// shape, a zero or negative extent, or a config rank outside 1..kPowerSgdMaxRank.
Status plan_powersgd(const std::vector<std::int64_t>& shape, const PowerSgdConfig& config, PowerSgdPlan* plan);

/// The two steps of a PowerSGD step that need no per-rank state, shared by PowerSgdState
/// and by a parameter server that rebuilds the approximation from the reduced p and q
/// (comm/shard_reduce.cc), so both compute bitwise the same values from the same bytes.
/// In/out: cols[r * n], r columns of n floats (column k at cols[k * n]), orthonormalised
/// in place; a column nothing is left of (rank-deficient input) becomes zero.
void powersgd_orthonormalise(float* cols, std::size_t n, std::uint32_t r);
/// Out: approx[rows * cols] (row-major) = P Q^T, with p[rank * rows] and q[rank * cols]
/// in the column layout of the header comment. approx must not overlap p or q.
void powersgd_product(const float* p, const float* q, std::size_t rows, std::size_t cols, std::uint32_t rank,
                      float* approx);

/// Per-tensor PowerSGD state: error-feedback residual e (rows x cols), warm-start Q and
/// the orthonormal P of the step in flight. Phases must run in the order of the header
/// comment; a call out of order is kInvalidArgument and changes nothing.
class PowerSgdState {
 public:
  /// `plan` must be compressed (else QuantError kInvalidArgument); `seed` is the run seed
  /// and `tensor_index` tells tensors apart: both must be equal on every rank.
  PowerSgdState(const PowerSgdPlan& plan, std::uint64_t seed, std::uint32_t tensor_index);

  const PowerSgdPlan& plan() const { return plan_; }
  std::size_t p_numel() const { return plan_.rows * plan_.rank; }  ///< floats of p
  std::size_t q_numel() const { return plan_.cols * plan_.rank; }  ///< floats of q
  std::uint64_t steps() const { return steps_; }                   ///< completed steps
  /// The error-feedback residual e (rows x cols, row-major) between steps.
  const std::vector<float>& residual() const { return residual_; }

  /// In: grad[rows * cols]. Out: p[p_numel()]. kNonFiniteInput (state unchanged) when
  /// grad holds NaN or Inf.
  Status compute_p(const float* grad, float* p);
  /// In: p_reduced[p_numel()] (sum or mean over ranks). kNonFiniteInput when not finite.
  Status set_reduced_p(const float* p_reduced);
  /// Out: q[q_numel()].
  Status compute_q(float* q);
  /// In: q_reduced[q_numel()], the mean over ranks (or the sum, to get the sum's
  /// approximation). kNonFiniteInput when not finite.
  Status set_reduced_q(const float* q_reduced);
  /// Out: approx[rows * cols] = P Q^T; the residual becomes M - approx.
  Status finish(float* approx);

  /// Appends the checkpoint image to *out (between steps only, else kInvalidArgument).
  /// Little-endian: u32 magic "PSGD", u32 version 1, u64 rows, u64 cols, u32 rank,
  /// u64 steps, rank * cols fp32 Q (column-major as q), rows * cols fp32 residual.
  Status state(std::vector<std::uint8_t>* out) const;
  /// Reads one image of state() from data[0, size); *consumed = its length. Errors leave
  /// the state unchanged: kTruncated (short input), kBadMagic / kBadVersion, kSizeMismatch
  /// (rows, cols or rank differ from this state's plan), kNonFiniteInput (NaN/Inf values).
  Status restore(const std::uint8_t* data, std::size_t size, std::size_t* consumed);

 private:
  enum class Phase { kIdle, kPComputed, kPReduced, kQComputed, kQReduced };
  Status expect(Phase phase, const char* call) const;
  /// Checks the phase and the values, copies `reduced` into *into, moves to `after`.
  Status take_reduced(const float* reduced, std::vector<float>* into, Phase after, const char* call);
  void draw_q_column(std::uint32_t k, std::uint64_t step);

  PowerSgdPlan plan_;
  std::uint64_t seed_;
  std::uint32_t tensor_index_;
  std::uint64_t steps_ = 0;
  Phase phase_ = Phase::kIdle;
  std::vector<float> residual_;  ///< e between steps; M = grad + e during a step
  std::vector<float> p_;         ///< orthonormal P, column-major (rank x rows)
  std::vector<float> q_;         ///< Q, column-major (rank x cols)
};

}  // namespace gradzip::quant
