// Host-side pieces of the dgc codec's definition shared by the CPU codec (dgc.cc) and its
// CUDA twin (dgc.cu): the params layout size, the sampling and re-adjustment limits, the
// warm-up density schedule and the acceptance band. One definition, so the twins cannot
// drift apart (the algorithm itself is documented at the top of dgc.cc).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace gradzip::quant::dgc {

constexpr std::size_t kParamsBytes = 24;
/// Buckets with n <= kMinSamples skip sampling and take the exact top-k.
constexpr std::uint64_t kMinSamples = 16384;
/// At most this many threshold lowerings before the exact fallback.
constexpr int kMaxLowerings = 4;

/// Target density at `step`: Lin et al. 2018 §3 warm-up, 25% then x1/4 per quarter of
/// `warmup_steps` (25%, 6.25%, 1.5625%, 0.39%), never below `ratio`; `ratio` afterwards.
inline double density(double ratio, std::uint32_t warmup_steps, std::uint64_t step) {
  if (warmup_steps == 0 || step >= warmup_steps) return ratio;
  const std::uint64_t stage = (4 * step) / warmup_steps;  // 0..3
  double d = 0.25;
  for (std::uint64_t s = 0; s < stage; ++s) d *= 0.25;
  return std::max(ratio, d);
}

/// True when a kept count c lies in [0.8 k, 1.25 k] (integer form: 4k <= 5c and 4c <= 5k).
inline bool count_in_band(std::uint64_t c, std::uint64_t k) { return 4 * k <= 5 * c && 4 * c <= 5 * k; }

}  // namespace gradzip::quant::dgc
