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
GZ_HD float butterfly_sum(float partial[kReduceLanes]) {
  for (int offset = kReduceLanes / 2; offset > 0; offset /= 2) {
    float next[kReduceLanes];
    for (int lane = 0; lane < kReduceLanes; ++lane) next[lane] = partial[lane] + partial[lane ^ offset];
    for (int lane = 0; lane < kReduceLanes; ++lane) partial[lane] = next[lane];
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
