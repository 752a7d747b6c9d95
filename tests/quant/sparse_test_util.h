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

/// Reference top-k: sort positions by (|x| descending, index ascending), keep k, sort.
inline std::vector<std::uint64_t> reference_topk(const std::vector<float>& x, std::uint64_t k) {
  std::vector<std::uint64_t> order(x.size());
  std::iota(order.begin(), order.end(), std::uint64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint64_t a, std::uint64_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
  order.resize(std::min<std::uint64_t>(k, x.size()));
  std::sort(order.begin(), order.end());
  return order;
}

}  // namespace gradzip::quant::testing
