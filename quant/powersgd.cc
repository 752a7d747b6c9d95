// PowerSGD per-tensor state (quant/powersgd.h). Plain loops: the products are rows x cols
// by r with r small (4), so each is a pass over M with r dot products or r axpys per row,
// bound by reading M; no BLAS dependency.
#include "quant/powersgd.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "quant/codec.h"
#include "quant/philox.h"
#include "quant/wire.h"

namespace gradzip::quant {
namespace {

constexpr std::uint32_t kStateMagic = 0x44475350u;  // "PSGD" little-endian
constexpr std::uint32_t kStateVersion = 1;
constexpr std::size_t kStateHeaderBytes = 4 + 4 + 8 + 8 + 4 + 8;

/// sum_j a[j] * b[j] in fp32 with 8 interleaved partial sums (a fixed order the compiler
/// can vectorize without reassociating).
float dot(const float* __restrict a, const float* __restrict b, std::size_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (std::size_t l = 0; l < 8; ++l) acc[l] += a[j + l] * b[j + l];
  }
  for (std::size_t l = 0; j < n; ++j, ++l) acc[l] += a[j] * b[j];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/// y[j] += a * x[j].
void axpy(float a, const float* __restrict x, float* __restrict y, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) y[j] += a * x[j];
}

/// y_k[j] += a[k] * x[j] for k < 4, y_k = y + k * stride: four axpys in one pass over x.
void axpy4(const float* a, const float* __restrict x, float* y, std::size_t stride, std::size_t n) {
  float* __restrict y0 = y;
  float* __restrict y1 = y + stride;
  float* __restrict y2 = y + 2 * stride;
  float* __restrict y3 = y + 3 * stride;
  for (std::size_t j = 0; j < n; ++j) {
    y0[j] += a[0] * x[j];
    y1[j] += a[1] * x[j];
    y2[j] += a[2] * x[j];
    y3[j] += a[3] * x[j];
  }
}

/// y[j] += sum_k a[k] * x_k[j] (x_k = x + k * stride), added in k order: the same values
/// as four axpys in turn, in one pass over y.
void gather4(const float* a, const float* x, std::size_t stride, float* __restrict y, std::size_t n) {
  const float* __restrict x0 = x;
  const float* __restrict x1 = x + stride;
  const float* __restrict x2 = x + 2 * stride;
  const float* __restrict x3 = x + 3 * stride;
  for (std::size_t j = 0; j < n; ++j) y[j] = (((y[j] + a[0] * x0[j]) + a[1] * x1[j]) + a[2] * x2[j]) + a[3] * x3[j];
}

bool finite(const float* x, std::size_t n) { return all_finite(x, n); }

}  // namespace

// Modified Gram-Schmidt applied twice ("twice is enough": Giraud et al. 2005), in double.
void powersgd_orthonormalise(float* cols, std::size_t n, std::uint32_t r) {
  std::vector<double> v(n);
  std::vector<double> basis(static_cast<std::size_t>(r) * n, 0.0);
  for (std::uint32_t k = 0; k < r; ++k) {
    const float* src = cols + static_cast<std::size_t>(k) * n;
    double norm0 = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = src[i];
      norm0 += v[i] * v[i];
    }
    for (int pass = 0; pass < 2; ++pass) {
      for (std::uint32_t j = 0; j < k; ++j) {
        const double* b = basis.data() + static_cast<std::size_t>(j) * n;
        double d = 0.0;
        for (std::size_t i = 0; i < n; ++i) d += b[i] * v[i];
        for (std::size_t i = 0; i < n; ++i) v[i] -= d * b[i];
      }
    }
    double norm = 0.0;
    for (std::size_t i = 0; i < n; ++i) norm += v[i] * v[i];
    norm = std::sqrt(norm);
    double* out = basis.data() + static_cast<std::size_t>(k) * n;
    // Below 1e-12 of the column's own norm only rounding is left: keep the column zero.
    if (norm > 1e-12 * std::sqrt(norm0) && norm > 0.0) {
      for (std::size_t i = 0; i < n; ++i) out[i] = v[i] / norm;
    }
  }
  for (std::size_t i = 0; i < basis.size(); ++i) cols[i] = static_cast<float>(basis[i]);
}

void powersgd_product(const float* p, const float* q, std::size_t rows, std::size_t cols, std::uint32_t rank,
                      float* approx) {
  for (std::size_t i = 0; i < rows; ++i) {
    float* out = approx + i * cols;
    std::fill(out, out + cols, 0.0f);
    std::uint32_t k = 0;
    for (; k + 4 <= rank; k += 4) {
      const float a[4] = {p[k * rows + i], p[(k + 1) * rows + i], p[(k + 2) * rows + i], p[(k + 3) * rows + i]};
      gather4(a, q + k * cols, cols, out, cols);
    }
    for (; k < rank; ++k) axpy(p[k * rows + i], q + k * cols, out, cols);
  }
}

std::size_t PowerSgdPlan::floats_per_step() const {
  return compressed ? static_cast<std::size_t>(rank) * (rows + cols) : rows * cols;
}

Status plan_powersgd(const std::vector<std::int64_t>& shape, const PowerSgdConfig& config, PowerSgdPlan* plan) {
  if (config.rank < 1 || config.rank > kPowerSgdMaxRank) {
    return Status(Errc::kInvalidArgument, "powersgd rank " + std::to_string(config.rank) + " outside 1.." +
                                              std::to_string(kPowerSgdMaxRank));
  }
  if (shape.empty()) return Status(Errc::kInvalidArgument, "powersgd: a tensor with an empty shape");
  std::size_t cols = 1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 1) {
      return Status(Errc::kInvalidArgument, "powersgd: extent " + std::to_string(shape[d]) + " of dimension " +
                                                std::to_string(d) + " is not >= 1");
    }
    if (d > 0) cols *= static_cast<std::size_t>(shape[d]);
  }
  const auto rows = static_cast<std::size_t>(shape[0]);
  const std::size_t numel = rows * cols;
  const auto r = static_cast<std::uint32_t>(std::min<std::size_t>({config.rank, rows, cols}));
  PowerSgdPlan p;
  if (shape.size() >= 2 && numel >= config.min_numel && static_cast<std::size_t>(r) * (rows + cols) < numel) {
    p.compressed = true;
    p.rows = rows;
    p.cols = cols;
    p.rank = r;
  } else {
    p.rows = numel;
    p.cols = 1;
  }
  *plan = p;
  return Status::Ok();
}

PowerSgdState::PowerSgdState(const PowerSgdPlan& plan, std::uint64_t seed, std::uint32_t tensor_index)
    : plan_(plan), seed_(seed), tensor_index_(tensor_index) {
  if (!plan.compressed || plan.rank < 1 || plan.rank > std::min(plan.rows, plan.cols)) {
    throw QuantError(Status(Errc::kInvalidArgument, "PowerSgdState needs a compressed plan (plan_powersgd)"));
  }
  residual_.assign(plan_.rows * plan_.cols, 0.0f);
  p_.assign(p_numel(), 0.0f);
  q_.assign(q_numel(), 0.0f);
  for (std::uint32_t k = 0; k < plan_.rank; ++k) draw_q_column(k, 0);
}

void PowerSgdState::draw_q_column(std::uint32_t k, std::uint64_t step) {
  const SeedContext ctx{seed_, step, 0, tensor_index_ & 0x00FFFFFFu};
  float* col = q_.data() + static_cast<std::size_t>(k) * plan_.cols;
  for (std::size_t j = 0; j < plan_.cols; ++j) {
    const Philox4x32 b = random_block(ctx, kPowerSgdInitStream, static_cast<std::uint64_t>(k) * plan_.cols + j);
    // Box-Muller: u1 in (0, 1] so the logarithm is finite.
    const double u1 = (static_cast<double>(b.v[0] >> 8) + 1.0) * 0x1p-24;
    const double u2 = static_cast<double>(b.v[1] >> 8) * 0x1p-24;
    col[j] = static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
}

Status PowerSgdState::expect(Phase phase, const char* call) const {
  if (phase_ == phase) return Status::Ok();
  static const char* const kNext[] = {"compute_p", "set_reduced_p", "compute_q", "set_reduced_q", "finish"};
  return Status(Errc::kInvalidArgument, std::string("powersgd: ") + call + " called out of order; next is " +
                                            kNext[static_cast<int>(phase_)]);
}

Status PowerSgdState::compute_p(const float* grad, float* p) {
  GZ_RETURN_IF_ERROR(expect(Phase::kIdle, "compute_p"));
  const std::size_t rows = plan_.rows, cols = plan_.cols;
  if (!finite(grad, rows * cols)) return Status(Errc::kNonFiniteInput, "powersgd: gradient holds NaN or Inf");
  for (std::size_t i = 0; i < rows * cols; ++i) residual_[i] += grad[i];  // M = grad + e
  for (std::size_t i = 0; i < rows; ++i) {
    const float* m = residual_.data() + i * cols;
    for (std::uint32_t k = 0; k < plan_.rank; ++k) p[k * rows + i] = dot(m, q_.data() + k * cols, cols);
  }
  phase_ = Phase::kPComputed;
  return Status::Ok();
}

Status PowerSgdState::take_reduced(const float* reduced, std::vector<float>* into, Phase after, const char* call) {
  GZ_RETURN_IF_ERROR(expect(after == Phase::kPReduced ? Phase::kPComputed : Phase::kQComputed, call));
  if (!finite(reduced, into->size())) {
    return Status(Errc::kNonFiniteInput, std::string("powersgd: ") + call + " got NaN or Inf");
  }
  std::copy(reduced, reduced + into->size(), into->begin());
  phase_ = after;
  return Status::Ok();
}

Status PowerSgdState::set_reduced_p(const float* p_reduced) {
  GZ_RETURN_IF_ERROR(take_reduced(p_reduced, &p_, Phase::kPReduced, "set_reduced_p"));
  powersgd_orthonormalise(p_.data(), plan_.rows, plan_.rank);
  return Status::Ok();
}

Status PowerSgdState::compute_q(float* q) {
  GZ_RETURN_IF_ERROR(expect(Phase::kPReduced, "compute_q"));
  const std::size_t rows = plan_.rows, cols = plan_.cols;
  std::fill(q, q + q_numel(), 0.0f);
  for (std::size_t i = 0; i < rows; ++i) {
    const float* m = residual_.data() + i * cols;
    std::uint32_t k = 0;
    for (; k + 4 <= plan_.rank; k += 4) {
      const float a[4] = {p_[k * rows + i], p_[(k + 1) * rows + i], p_[(k + 2) * rows + i], p_[(k + 3) * rows + i]};
      axpy4(a, m, q + k * cols, cols, cols);
    }
    for (; k < plan_.rank; ++k) axpy(p_[k * rows + i], m, q + k * cols, cols);
  }
  phase_ = Phase::kQComputed;
  return Status::Ok();
}

Status PowerSgdState::set_reduced_q(const float* q_reduced) {
  return take_reduced(q_reduced, &q_, Phase::kQReduced, "set_reduced_q");
}

Status PowerSgdState::finish(float* approx) {
  GZ_RETURN_IF_ERROR(expect(Phase::kQReduced, "finish"));
  powersgd_product(p_.data(), q_.data(), plan_.rows, plan_.cols, plan_.rank, approx);
  const std::size_t n = plan_.rows * plan_.cols;
  for (std::size_t i = 0; i < n; ++i) residual_[i] -= approx[i];  // e = M - approx
  ++steps_;
  for (std::uint32_t k = 0; k < plan_.rank; ++k) {
    const float* col = q_.data() + static_cast<std::size_t>(k) * plan_.cols;
    if (std::all_of(col, col + plan_.cols, [](float v) { return v == 0.0f; })) draw_q_column(k, steps_);
  }
  phase_ = Phase::kIdle;
  return Status::Ok();
}

Status PowerSgdState::state(std::vector<std::uint8_t>* out) const {
  if (phase_ != Phase::kIdle) return Status(Errc::kInvalidArgument, "powersgd: state() in the middle of a step");
  const std::size_t at = out->size();
  out->resize(at + kStateHeaderBytes + 4 * (q_.size() + residual_.size()));
  std::uint8_t* d = out->data() + at;
  store_le<std::uint32_t>(d, kStateMagic);
  store_le<std::uint32_t>(d + 4, kStateVersion);
  store_le<std::uint64_t>(d + 8, plan_.rows);
  store_le<std::uint64_t>(d + 16, plan_.cols);
  store_le<std::uint32_t>(d + 24, plan_.rank);
  store_le<std::uint64_t>(d + 28, steps_);
  d += kStateHeaderBytes;
  for (float v : q_) store_le<float>(d, v), d += 4;
  for (float v : residual_) store_le<float>(d, v), d += 4;
  return Status::Ok();
}

Status PowerSgdState::restore(const std::uint8_t* data, std::size_t size, std::size_t* consumed) {
  if (size < kStateHeaderBytes) return Status(Errc::kTruncated, "powersgd state: shorter than its header");
  if (load_le<std::uint32_t>(data) != kStateMagic) return Status(Errc::kBadMagic, "powersgd state: bad magic");
  const auto version = load_le<std::uint32_t>(data + 4);
  if (version != kStateVersion) {
    return Status(Errc::kBadVersion, "powersgd state: version " + std::to_string(version) + ", this build reads 1");
  }
  const auto rows = load_le<std::uint64_t>(data + 8);
  const auto cols = load_le<std::uint64_t>(data + 16);
  const auto rank = load_le<std::uint32_t>(data + 24);
  if (rows != plan_.rows || cols != plan_.cols || rank != plan_.rank) {
    return Status(Errc::kSizeMismatch, "powersgd state: saved " + std::to_string(rows) + "x" + std::to_string(cols) +
                                           " rank " + std::to_string(rank) + ", this tensor is " +
                                           std::to_string(plan_.rows) + "x" + std::to_string(plan_.cols) + " rank " +
                                           std::to_string(plan_.rank));
  }
  const std::size_t values = q_.size() + residual_.size();
  if ((size - kStateHeaderBytes) / 4 < values) return Status(Errc::kTruncated, "powersgd state: values cut short");
  std::vector<float> q(q_.size()), e(residual_.size());
  const std::uint8_t* d = data + kStateHeaderBytes;
  for (float& v : q) v = load_le<float>(d), d += 4;
  for (float& v : e) v = load_le<float>(d), d += 4;
  if (!finite(q.data(), q.size()) || !finite(e.data(), e.size())) {
    return Status(Errc::kNonFiniteInput, "powersgd state: Q or residual holds NaN or Inf");
  }
  q_ = std::move(q);
  residual_ = std::move(e);
  steps_ = load_le<std::uint64_t>(data + 28);
  phase_ = Phase::kIdle;
  *consumed = kStateHeaderBytes + 4 * values;
  return Status::Ok();
}

}  // namespace gradzip::quant
