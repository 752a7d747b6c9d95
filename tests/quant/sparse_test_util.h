// Helpers shared by the sparse codec tests: input generators and a sort-based top-k
// reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "quant/sparse.h"

namespace gradzip::quant::testing {

/// n standard-normal floats from a fixed seed.
inline std::vector<float> gaussian(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = d(rng);
  return x;
}

/// Heavy-tailed (standard Cauchy, clipped to +-1e30 to stay finite) floats.
inline std::vector<float> cauchy(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::cauchy_distribution<double> d(0.0, 1.0);
  std::vector<float> x(n);
  for (auto& v : x) v = static_cast<float>(std::clamp(d(rng), -1e30, 1e30));
  return x;
}

/// Values from a handful of levels (many exact |x| ties, both signs, +0 and -0).
inline std::vector<float> tied(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-4, 4);
  std::vector<float> x(n);
  for (auto& v : x) {
    const int level = d(rng);
    v = level == 0 ? (rng() & 1 ? 0.0f : -0.0f) : 0.5f * static_cast<float>(level);
  }
  return x;
}

/// Positions sorted by (|x| descending, index ascending).
inline std::vector<std::uint64_t> magnitude_order(const std::vector<float>& x) {
  std::vector<std::uint64_t> order(x.size());
  std::iota(order.begin(), order.end(), std::uint64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint64_t a, std::uint64_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
  return order;
}

/// Reference top-k from a magnitude_order: its first k positions, ascending.
inline std::vector<std::uint64_t> reference_topk(const std::vector<std::uint64_t>& order, std::uint64_t k) {
  std::vector<std::uint64_t> top(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(std::min<std::uint64_t>(k, order.size())));
  std::sort(top.begin(), top.end());
  return top;
}

/// Reference top-k: sort positions by (|x| descending, index ascending), keep k, sort.
inline std::vector<std::uint64_t> reference_topk(const std::vector<float>& x, std::uint64_t k) {
  return reference_topk(magnitude_order(x), k);
}

/// Straightforward second implementation of the dgc selection rule documented in
/// quant/codecs/dgc.cc (sorts instead of selecting, float |x| instead of integer keys,
/// 128-bit position arithmetic): the kept indices, ascending.
inline std::vector<std::uint64_t> dgc_reference(const std::vector<float>& x, double ratio, double sample,
                                                std::uint32_t warmup_steps, const SeedContext& ctx) {
  const std::uint64_t n = x.size();
  double density = ratio;
  if (warmup_steps != 0 && ctx.step < warmup_steps) {
    const double stages[] = {0.25, 0.0625, 0.015625, 0.00390625};
    density = std::max(ratio, stages[(4 * ctx.step) / warmup_steps]);
  }
  const std::uint64_t k = count_for_ratio(n, density);
  const auto exact = [&] { return reference_topk(x, k); };
  if (n <= 16384 || k >= n) return exact();
  const std::uint64_t m =
      std::min<std::uint64_t>(n, std::max<std::uint64_t>(16384, static_cast<std::uint64_t>(std::ceil(sample * n))));
  std::vector<float> s(m);
  for (std::uint64_t j = 0; j < m; ++j) {
    __extension__ using u128 = unsigned __int128;
    const u128 r = random_bits(ctx, RandomStream::kSampling, j);
    s[j] = std::fabs(x[static_cast<std::uint64_t>((r * n) >> 32)]);
  }
  std::sort(s.begin(), s.end(), std::greater<>());
  const double e = static_cast<double>(m) * static_cast<double>(k) / static_cast<double>(n);
  const double rank_real = std::ceil(e + 2.0 * std::sqrt(e));
  std::uint64_t rank = std::clamp<std::uint64_t>(static_cast<std::uint64_t>(std::max(rank_real, 1.0)), 1, m);
  for (int lowering = 0; lowering <= 4; ++lowering) {
    const float tau = s[rank - 1];
    std::vector<std::uint64_t> c;
    for (std::uint64_t i = 0; i < n; ++i) {
      if (std::fabs(x[i]) >= tau) c.push_back(i);
    }
    const double ratio_c = static_cast<double>(c.size()) / static_cast<double>(k);
    if (ratio_c > 4.0) return exact();
    if (ratio_c >= 0.8 && ratio_c <= 1.25) return c;
    if (ratio_c > 1.25) return exact();  // the top-k of C is the top-k of x
    if (rank == m) break;
    rank = std::min(m, 2 * rank);
  }
  return exact();
}

}  // namespace gradzip::quant::testing
