// Definition of the zipml codec shared by the CPU codec (zipml.cc) and its CUDA twin
// (zipml.cu): parameters, the decoder's checks, and the level selection and rounding
// arithmetic itself (GZ_HD functions compiled for both sides, so the twins pick the same
// levels and the same codes). The format and the algorithm are documented at the top of
// zipml.cc.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "quant/codecs/bucketed.h"
#include "quant/hd.h"

namespace gradzip::quant::zipml {

/// Params block: u8 bits | u8 refine | u16 reserved (0) | u32 LE bucket (0 = one set of
/// levels per message, "scope=tensor").
constexpr std::size_t kParamsBytes = 8;
constexpr unsigned kMaxBits = 4;
constexpr unsigned kMaxLevels = 1u << kMaxBits;
/// Most candidate points of the grid (refine * (levels - 1) + 1 <= kMaxGrid).
constexpr unsigned kMaxGrid = 256;
/// A bucket whose range max - min is below this skips the histogram (its reciprocal
/// would overflow) and takes the uniform levels.
constexpr float kMinRange = 0x1p-100f;

struct Settings {
  unsigned bits = 4;             ///< bits per element: 2^bits levels
  unsigned refine = 4;           ///< candidate grid points per uniform level gap
  std::uint32_t bucket = 8192;   ///< elements per set of levels; 0: per message
};

/// Default bucket for `bits`: 512 * 2^bits, where the levels cost 0.0625 bit per element,
/// as much as qsgd's one fp32 norm per 512 elements (byte parity at the same bits).
constexpr std::uint32_t default_bucket(unsigned bits) { return 512u << bits; }

GZ_HD unsigned levels_of(unsigned bits) { return 1u << bits; }
/// Candidate points M = refine * (L - 1) + 1: contains the L uniform levels.
GZ_HD unsigned grid_of(unsigned bits, unsigned refine) { return refine * (levels_of(bits) - 1u) + 1u; }
/// Largest refine for `bits` (grid <= kMaxGrid).
constexpr unsigned max_refine(unsigned bits) { return (kMaxGrid - 1u) / ((1u << bits) - 1u); }
/// Elements per set of levels of a message of n elements: `bucket`, or for bucket 0 the
/// whole message (capped at bucketed::kMaxBucket; at least 1).
GZ_HD std::uint64_t effective_bucket(std::uint32_t bucket, std::uint64_t n) {
  if (bucket != 0) return bucket;
  const std::uint64_t cap = bucketed::kMaxBucket;
  return n == 0 ? 1 : (n < cap ? n : cap);
}

/// From a spec's params (validated by the registry; the refine/bits limit is checked by
/// the factory in zipml.cc).
inline Settings from_params(const Params& p) {
  Settings s;
  s.bits = static_cast<unsigned>(p.get_int("bits"));
  s.refine = static_cast<unsigned>(p.get_int("refine"));
  const auto bucket = static_cast<std::uint32_t>(p.get_int("bucket"));
  s.bucket = p.get_enum("scope") == "tensor" ? 0u : (bucket == 0 ? default_bucket(s.bits) : bucket);
  return s;
}

inline void write_params(const Settings& s, std::uint8_t* dst) {
  dst[0] = static_cast<std::uint8_t>(s.bits);
  dst[1] = static_cast<std::uint8_t>(s.refine);
  store_le<std::uint16_t>(dst + 2, 0);
  store_le<std::uint32_t>(dst + 4, s.bucket);
}

/// Payload bytes: 4 * 2^bits * buckets + ceil(n * bits / 8).
inline std::size_t payload_bytes(const Settings& s, std::size_t n) {
  return bucketed::payload_bytes(n, static_cast<std::size_t>(effective_bucket(s.bucket, n)), levels_of(s.bits), s.bits);
}

/// The decoder's checks, run by both twins before anything is written: params block (size,
/// bits 1..4, refine 1..max_refine(bits), reserved 0, bucket <= 2^24), flags, payload
/// length, then every level: finite and |level| <= 2^126 (kNonFiniteScale), and the
/// levels of each bucket sorted non-decreasing (kBadParams). Sets *s.
inline Status parse_message(const MessageView& m, Settings* s) {
  if (m.params_bytes != kParamsBytes) return Status(Errc::kBadParams, "zipml params block must be 8 bytes");
  const unsigned bits = m.params[0];
  const unsigned refine = m.params[1];
  const std::uint32_t bucket = load_le<std::uint32_t>(m.params + 4);
  if (bits < 1 || bits > kMaxBits) return Status(Errc::kBadParams, "zipml bits=" + std::to_string(bits) + " outside 1..4");
  if (refine < 1 || refine > max_refine(bits)) {
    return Status(Errc::kBadParams, "zipml refine=" + std::to_string(refine) + " outside 1.." +
                                        std::to_string(max_refine(bits)) + " for bits=" + std::to_string(bits));
  }
  if (load_le<std::uint16_t>(m.params + 2) != 0) return Status(Errc::kBadParams, "zipml reserved params are not 0");
  const auto eff = static_cast<std::uint32_t>(effective_bucket(bucket, m.numel));
  const unsigned levels = levels_of(bits);
  GZ_RETURN_IF_ERROR(bucketed::check_common(m, kParamsBytes, eff, levels, bits));
  const std::size_t nb = bucketed::num_buckets(m.numel, eff);
  for (std::size_t b = 0; b < nb; ++b) {
    float prev = 0.0f;
    for (unsigned k = 0; k < levels; ++k) {
      const float v = load_le<float>(m.payload + 4 * (b * levels + k));
      if (!std::isfinite(v)) return Status(Errc::kNonFiniteScale, "a zipml level in the message is NaN or Inf");
      if (std::fabs(v) > bucketed::kMaxScale) return Status(Errc::kNonFiniteScale, "a zipml level exceeds 2^126");
      if (k > 0 && v < prev) {
        return Status(Errc::kBadParams, "zipml levels of bucket " + std::to_string(b) + " are not sorted (level " +
                                            std::to_string(k) + " < level " + std::to_string(k - 1) + ")");
      }
      prev = v;
    }
  }
  s->bits = bits;
  s->refine = refine;
  s->bucket = bucket;
  return Status::Ok();
}

// ---- level selection (Zhang et al. 2017, ZipML, Sec. 3: optimal points by dynamic
// programming over a discretization of the data) -------------------------------------
//
// The candidate points are the M = refine*(L-1)+1 points lo + g*(hi-lo)/(M-1), g = 0..M-1.
// Each element counts in one of the M-1 cells between neighbouring points, and is taken
// to sit at its cell's centre. In half-cell units a point g is at 2g and the centre of
// cell k at u = 2k+1; an element at u rounded stochastically between points i < j has
// variance (2j - u)(u - 2i) (times (cell/2)^2), so the variance of a set of levels is an
// integer sum, computed exactly and identically on the CPU and the GPU from the prefix
// sums P0[g] = sum_{k<g} c_k, P1[g] = sum c_k u_k, P2[g] = sum c_k u_k^2:
//   cost(i, j) = 2(i+j) (P1[j]-P1[i]) - 4ij (P0[j]-P0[i]) - (P2[j]-P2[i]).
// f_l(j) = min over i < j of f_{l-1}(i) + cost(i, j), f_0(0) = 0 picks L levels from the
// points with the first at g = 0 (lo) and the last at g = M-1 (hi), ties to the smallest
// i. Bounds: c_k <= 2^24, u < 2^9, so every sum stays below 2^63.

constexpr std::int64_t kInfCost = INT64_MAX;

/// Cell (0..grid-2) of element x given lo and inv = (grid-1)/(hi-lo) (both sides compute
/// t with the same two IEEE operations).
GZ_HD unsigned cell_of(float x, float lo, float inv, unsigned grid) {
  const float t = (x - lo) * inv;
  const unsigned last = grid - 2u;
  return t >= static_cast<float>(last) ? last : static_cast<unsigned>(t);
}

/// Prefix sums of the cell counts c[0, grid-1) into p0/p1/p2[0, grid).
GZ_HD void prefix_sums(const std::uint32_t* c, unsigned grid, std::int64_t* p0, std::int64_t* p1, std::int64_t* p2) {
  p0[0] = p1[0] = p2[0] = 0;
  for (unsigned k = 0; k + 1 < grid; ++k) {
    const auto u = static_cast<std::int64_t>(2 * k + 1);
    const auto ck = static_cast<std::int64_t>(c[k]);
    p0[k + 1] = p0[k] + ck;
    p1[k + 1] = p1[k] + ck * u;
    p2[k + 1] = p2[k] + ck * u * u;
  }
}

GZ_HD std::int64_t cost(const std::int64_t* p0, const std::int64_t* p1, const std::int64_t* p2, unsigned i, unsigned j) {
  const auto ii = static_cast<std::int64_t>(i), jj = static_cast<std::int64_t>(j);
  return 2 * (ii + jj) * (p1[j] - p1[i]) - 4 * ii * jj * (p0[j] - p0[i]) - (p2[j] - p2[i]);
}

/// Points j that level l (1..L-1) may take so that the levels before and after it fit:
/// [l, grid-L+l], and only grid-1 for the last level (l = L-1).
GZ_HD unsigned first_point(unsigned l, unsigned levels, unsigned grid) { return l + 1 == levels ? grid - 1 : l; }
GZ_HD unsigned last_point(unsigned l, unsigned levels, unsigned grid) { return grid - levels + l; }

/// One DP cell: f_l(j) and its argmin i (smallest on ties) from f_{l-1}, which is defined
/// on [first_point(l-1), last_point(l-1)] (f_0 only at point 0).
GZ_HD void dp_cell(const std::int64_t* f_prev, const std::int64_t* p0, const std::int64_t* p1, const std::int64_t* p2,
                   unsigned l, unsigned j, std::int64_t* f, std::uint16_t* arg) {
  std::int64_t best = kInfCost;
  unsigned best_i = l - 1;
  const unsigned i_end = l == 1 ? 1u : j;
  for (unsigned i = l - 1; i < i_end; ++i) {
    const std::int64_t v = f_prev[i] + cost(p0, p1, p2, i, j);
    if (v < best) {
      best = v;
      best_i = i;
    }
  }
  *f = best;
  *arg = static_cast<std::uint16_t>(best_i);
}

/// Level value of grid point g (0..grid-1): lo + g * delta, exactly hi for the last
/// point. delta = (hi - lo) / (grid - 1).
GZ_HD float level_at(unsigned g, unsigned grid, float lo, float hi, float delta) {
  return g + 1 == grid ? hi : lo + static_cast<float>(g) * delta;
}

/// Uniform level k of L: grid point k * refine.
GZ_HD unsigned uniform_point(unsigned k, unsigned refine) { return k * refine; }

/// Stochastic rounding of x (lo <= x <= hi of its bucket) between the two adjacent levels
/// around it: k = the largest index <= L-2 with levels[k] <= x (branch-free binary search),
/// p = (x - a) / (b - a) (0 when a == b), code = k + (u < p). E[levels[code]] = x up to
/// the 2^-24 resolution of u and fp32 rounding of p.
template <unsigned kLevels>
GZ_HD std::uint32_t round_code(float x, const float* levels, float u) {
  unsigned k = 0;
  for (unsigned step = kLevels / 2; step >= 1; step /= 2) {
    k = levels[k + step] <= x ? k + step : k;
  }
  k = k > kLevels - 2 ? kLevels - 2 : k;
  const float a = levels[k], b = levels[k + 1];
  const float p = b > a ? (x - a) / (b - a) : 0.0f;
  return k + (u < p ? 1u : 0u);
}

}  // namespace gradzip::quant::zipml
