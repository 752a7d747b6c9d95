// Host-side pieces of the dgc codec's definition shared by the CPU codec (dgc.cc) and its
// CUDA twin (dgc.cu): its parameters, read once from a spec or from a message's params
// block, the sampling and re-adjustment limits, the warm-up density schedule, the
// acceptance band and the decoder's checks of a message. One definition, so the twins
// cannot drift apart (the algorithm itself is documented at the top of dgc.cc).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "quant/sparse.h"

namespace gradzip::quant::dgc {

/// Params block: u8 values | u8x3 reserved (0) | u32 warmup_steps | f64 ratio | f64 sample.
constexpr std::size_t kParamsBytes = 24;
/// Payload prefix: the u64 step the sender encoded at (selects the warm-up density).
constexpr std::size_t kStepBytes = 8;

struct Settings {
  double ratio = 0.001;                       ///< target density after the warm-up, (0, 1]
  double sample = 0.001;                      ///< sampled fraction for the threshold, (0, 1]
  std::uint32_t warmup_steps = 0;             ///< warm-up length (0: none)
  SparseValues values = SparseValues::kFp32;  ///< value format on the wire
};

/// From a spec's params (already validated by the registry).
inline Settings from_params(const Params& p) {
  return {p.get_float("ratio"), p.get_float("sample"), static_cast<std::uint32_t>(p.get_int("warmup_steps")),
          sparse_values_from_name(p.get_enum("values"))};
}

inline void write_params(const Settings& s, std::uint8_t* dst) {
  std::fill(dst, dst + kParamsBytes, std::uint8_t{0});
  dst[0] = static_cast<std::uint8_t>(s.values);
  store_le<std::uint32_t>(dst + 4, s.warmup_steps);
  store_le<double>(dst + 8, s.ratio);
  store_le<double>(dst + 16, s.sample);
}
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

/// Largest kept count over the schedule: 1.25 x the k of the warm-up's stage 0, at most n.
inline std::uint64_t max_kept(const Settings& s, std::uint64_t n) {
  const std::uint64_t k = count_for_ratio(n, s.warmup_steps ? std::max(s.ratio, 0.25) : s.ratio);
  return std::min<std::uint64_t>(n, (5 * k) / 4);
}

/// Step 3's sample count for n > kMinSamples: clamp(ceil(sample * n), kMinSamples, n).
inline std::uint64_t sample_count(double sample, std::uint64_t n) {
  const double m_real = std::ceil(sample * static_cast<double>(n));
  const std::uint64_t m = m_real >= static_cast<double>(n) ? n : static_cast<std::uint64_t>(m_real);
  return std::min(n, std::max(m, kMinSamples));
}

/// Step 4's initial sample rank for m samples, target k of n: clamp(ceil(e + 2 sqrt(e)),
/// 1, m) with e = m k / n, in IEEE double.
inline std::uint64_t initial_rank(std::uint64_t m, std::uint64_t k, std::uint64_t n) {
  const double expected = static_cast<double>(m) * static_cast<double>(k) / static_cast<double>(n);
  const double rank_real = std::ceil(expected + 2.0 * std::sqrt(expected));
  return rank_real < 1.0 ? 1 : (rank_real >= static_cast<double>(m) ? m : static_cast<std::uint64_t>(rank_real));
}

/// A validated message: its settings, the sender's step, the target count k at that step
/// and the sparse block (after the step field).
struct Parsed {
  Settings s;
  std::uint64_t step = 0;
  std::uint64_t k = 0;
  SparseBlockView view;
};

/// The decoder's checks, run by both twins before anything is written: params block
/// (size, value format, reserved 0, ratio and sample in (0, 1]), the step (< 2^32), the
/// sparse block, and its count within the acceptance band of the step's target k.
inline Status parse_message(const MessageView& m, Parsed* out) {
  Settings& s = out->s;
  if (m.params_bytes != kParamsBytes) return Status(Errc::kBadParams, "dgc params must be 24 bytes");
  GZ_RETURN_IF_ERROR(sparse_values_from_wire(m.params[0], &s.values));
  if (m.params[1] != 0 || m.params[2] != 0 || m.params[3] != 0) {
    return Status(Errc::kBadParams, "dgc reserved param bytes are not zero");
  }
  s.warmup_steps = load_le<std::uint32_t>(m.params + 4);
  s.ratio = load_le<double>(m.params + 8);
  s.sample = load_le<double>(m.params + 16);
  if (!(s.ratio > 0.0 && s.ratio <= 1.0) || !(s.sample > 0.0 && s.sample <= 1.0)) {
    return Status(Errc::kBadParams, "dgc ratio/sample outside (0, 1]");
  }
  if (m.payload_bytes < kStepBytes) return Status(Errc::kTruncated, "dgc payload lacks its step field");
  out->step = load_le<std::uint64_t>(m.payload);
  if (out->step >= (std::uint64_t{1} << 32)) return Status(Errc::kBadParams, "dgc step exceeds 2^32");
  GZ_RETURN_IF_ERROR(parse_sparse_block(m.payload + kStepBytes, m.payload_bytes - kStepBytes, m.numel, m.flags,
                                        s.values, &out->view));
  out->k = count_for_ratio(m.numel, density(s.ratio, s.warmup_steps, out->step));
  if (!count_in_band(out->view.count, out->k)) {
    return Status(Errc::kBadLength, "dgc message holds " + std::to_string(out->view.count) +
                                        " values, outside [0.8, 1.25] x the target " + std::to_string(out->k));
  }
  return Status::Ok();
}

}  // namespace gradzip::quant::dgc
