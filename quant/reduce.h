// Canonical float reductions shared by the CPU codecs and their CUDA twins.
//
// Floating-point addition is not associative, so "the L2 norm of a bucket" is only
// byte-reproducible across implementations if the order of additions is part of the
// definition. gradzip defines it as what one CUDA warp computes:
//   1. lane l (0..31) accumulates elements l, l+32, l+64, ... in increasing order, in fp32;
//   2. the 32 lane partials are combined by an xor butterfly with offsets 16, 8, 4, 2, 1
//      (partial[l] = partial[l] + partial[l ^ offset]); IEEE addition is commutative, so
//      every lane ends with the same value, and lane 0's is the result.
// The CPU reference below performs exactly these operations; a CUDA kernel with one warp
// per bucket and __shfl_xor_sync performs them too, so both produce the same bits.
// Max-reductions are exact in any order; they use the same structure for symmetry.
#pragma once

#include <cmath>
#include <cstddef>

#include "quant/hd.h"

namespace gradzip::quant {

constexpr int kReduceLanes = 32;

namespace detail {
/// The xor butterfly over kLanes partials (a power of two): offsets kLanes/2, ..., 1,
/// partial[l] = partial[l] + partial[l ^ offset]; returns lane 0's value.
template <int kLanes = kReduceLanes>
GZ_HD float butterfly_sum(float partial[kLanes]) {
  for (int offset = kLanes / 2; offset > 0; offset /= 2) {
    float next[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) next[lane] = partial[lane] + partial[lane ^ offset];
    for (int lane = 0; lane < kLanes; ++lane) partial[lane] = next[lane];
  }
  return partial[0];
}
}  // namespace detail

/// Canonical sum of f(x[i]) over i in [0, n), in the lane-strided + butterfly order.
template <typename F>
inline float canonical_sum(const float* x, std::size_t n, F f) {
  float partial[kReduceLanes] = {};
  std::size_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes) {
    for (int lane = 0; lane < kReduceLanes; ++lane) partial[lane] += f(x[i + lane]);
  }
  for (int lane = 0; i + lane < n; ++lane) partial[lane] += f(x[i + lane]);
  return detail::butterfly_sum(partial);
}

/// Two canonical sums in one pass: *sum_f = canonical_sum(x, n, f) and
/// *sum_g = canonical_sum(x, n, g), bit for bit (each keeps its own 32 lane partials and
/// butterfly); reads x once.
template <typename F, typename G>
inline void canonical_sum2(const float* x, std::size_t n, F f, G g, float* sum_f, float* sum_g) {
  float pf[kReduceLanes] = {};
  float pg[kReduceLanes] = {};
  std::size_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes) {
    for (int lane = 0; lane < kReduceLanes; ++lane) {
      pf[lane] += f(x[i + lane]);
      pg[lane] += g(x[i + lane]);
    }
  }
  for (int lane = 0; i + lane < n; ++lane) {
    pf[lane] += f(x[i + lane]);
    pg[lane] += g(x[i + lane]);
  }
  *sum_f = detail::butterfly_sum(pf);
  *sum_g = detail::butterfly_sum(pg);
}

/// Canonical sum of squares (use sqrtf of it for the L2 norm).
inline float canonical_sum_sq(const float* x, std::size_t n) {
  return canonical_sum(x, n, [](float v) { return v * v; });
}
// ---- Blocked order: whole buckets on many GPU blocks ------------------------------
// One warp streams a long vector too slowly (the DGC memory's clip norm runs over a whole
// bucket, up to 2^34 elements), so sums over whole buckets use a second fixed order that
// many thread blocks compute in parallel and the CPU reproduces bit for bit:
//   1. the vector is cut into m = ceil(n / L) contiguous parts of L = blocked_part_length(n)
//      elements (the last may be shorter): L is ceil(n / kBlockedMaxParts) rounded up to a
//      multiple of kBlockedLanes, and at least kBlockedMinPart, so m <= kBlockedMaxParts
//      and the order depends on n only (never on the GPU's size);
//   2. part p's sum: lane l (0..255) accumulates the part's elements l, l+256, ... in
//      increasing order in fp32, and the 256 lane partials are combined by the xor
//      butterfly with offsets 128, 64, ..., 1 (one 256-thread block per part);
//   3. the part sums s_0 .. s_{m-1} are combined by a pairwise tree: for w = 1, 2, 4, ...
//      while w < m: s_i = s_i + s_{i+w} for every i that is a multiple of 2w with i + w < m;
//      the result is s_0 (0 for n == 0).
constexpr int kBlockedLanes = 256;
constexpr std::size_t kBlockedMaxParts = 1024;
constexpr std::size_t kBlockedMinPart = 32768;

/// L of step 1 (a multiple of kBlockedLanes, >= kBlockedMinPart).
GZ_HD std::size_t blocked_part_length(std::size_t n) {
  std::size_t len = (n + kBlockedMaxParts - 1) / kBlockedMaxParts;
  len = (len + kBlockedLanes - 1) / kBlockedLanes * kBlockedLanes;
  return len < kBlockedMinPart ? kBlockedMinPart : len;
}
/// m of step 1 (<= kBlockedMaxParts).
GZ_HD std::size_t blocked_parts(std::size_t n) {
  const std::size_t len = blocked_part_length(n);
  return (n + len - 1) / len;
}
/// Step 3 on s[0, m), in place; returns the result.
GZ_HD float blocked_tree_sum(float* s, std::size_t m) {
  if (m == 0) return 0.0f;
  for (std::size_t w = 1; w < m; w *= 2) {
    for (std::size_t i = 0; i + w < m; i += 2 * w) s[i] = s[i] + s[i + w];
  }
  return s[0];
}

/// Sum of f(x[i]) over [0, n) in the blocked order above.
template <typename F>
inline float blocked_sum(const float* x, std::size_t n, F f) {
  const std::size_t len = blocked_part_length(n);
  const std::size_t m = blocked_parts(n);
  float parts[kBlockedMaxParts];
  for (std::size_t p = 0; p < m; ++p) {
    const float* xp = x + p * len;
    const std::size_t cnt = n - p * len < len ? n - p * len : len;
    float lane[kBlockedLanes] = {};
    std::size_t i = 0;
    for (; i + kBlockedLanes <= cnt; i += kBlockedLanes) {
      for (int l = 0; l < kBlockedLanes; ++l) lane[l] += f(xp[i + static_cast<std::size_t>(l)]);
    }
    for (int l = 0; i + static_cast<std::size_t>(l) < cnt; ++l) lane[l] += f(xp[i + static_cast<std::size_t>(l)]);
    parts[p] = detail::butterfly_sum<kBlockedLanes>(lane);
  }
  return blocked_tree_sum(parts, m);
}

/// Sum of squares in the blocked order (the DGC memory's clip norm is its sqrtf).
inline float blocked_sum_sq(const float* x, std::size_t n) {
  return blocked_sum(x, n, [](float v) { return v * v; });
}

/// Canonical sum of absolute values (L1 norm).
inline float canonical_sum_abs(const float* x, std::size_t n) {
  return canonical_sum(x, n, [](float v) { return std::fabs(v); });
}
/// Max |x[i]| (exact; NaN-propagating: returns NaN if any element is NaN).
inline float max_abs(const float* x, std::size_t n) {
  float m = 0.0f;
  bool nan = false;
  for (std::size_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    nan |= (a != a);
    m = a > m ? a : m;
  }
  return nan ? NAN : m;
}

}  // namespace gradzip::quant
