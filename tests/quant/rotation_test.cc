// Randomized Hadamard rotation (quant/rotation.h): rotate then unrotate returns the input
// for every block layout (full blocks and the power-of-two remainder), the rotation keeps
// the l2 norm and is linear (the sum of rotations is the rotation of the sum, which the
// homomorphic allreduce relies on), and a bad block size is a typed error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "quant/rotation.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant {
namespace {

double l2(const std::vector<float>& x) {
  double s = 0.0;
  for (float v : x) s += static_cast<double>(v) * v;
  return std::sqrt(s);
}

TEST(Rotation, RoundTripsAndPreservesNormForEveryLayout) {
  const SeedContext shared{3, 8, 0, 2};
  for (std::size_t n : {1, 3, 127, 1000, 4096, 10007}) {
    for (std::uint32_t block : {2u, 64u, 4096u}) {
      const auto x = testing::gaussian(n, static_cast<std::uint32_t>(n));
      auto y = x;
      ASSERT_TRUE(rotate(y.data(), n, block, shared).ok());
      EXPECT_NEAR(l2(y), l2(x), 1e-5 * l2(x)) << "orthogonal: n " << n << " block " << block;
      ASSERT_TRUE(unrotate(y.data(), n, block, shared).ok());
      for (std::size_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], x[i], 2e-6 * (1.0 + std::fabs(x[i]))) << n << " " << i;
    }
  }
}

TEST(Rotation, SumOfRotationsIsRotationOfSum) {
  const std::size_t n = 5000;
  const SeedContext shared{1, 1, 0, 0};
  const auto a = testing::gaussian(n, 1), b = testing::gaussian(n, 2);
  auto ra = a, rb = b;
  std::vector<float> sum(n);
  for (std::size_t i = 0; i < n; ++i) sum[i] = a[i] + b[i];
  ASSERT_TRUE(rotate(ra.data(), n, 1024, shared).ok());
  ASSERT_TRUE(rotate(rb.data(), n, 1024, shared).ok());
  ASSERT_TRUE(rotate(sum.data(), n, 1024, shared).ok());
  for (std::size_t i = 0; i < n; ++i) ASSERT_NEAR(ra[i] + rb[i], sum[i], 1e-5f) << i;
}

TEST(Rotation, BadBlockIsTypedError) {
  std::vector<float> x(10, 1.0f);
  for (std::uint32_t block : {0u, 1u, 3u, 1000u, (1u << 21)}) {
    EXPECT_EQ(rotate(x.data(), x.size(), block, SeedContext{}).code(), Errc::kInvalidArgument) << block;
    EXPECT_EQ(unrotate(x.data(), x.size(), block, SeedContext{}).code(), Errc::kInvalidArgument) << block;
  }
  EXPECT_EQ(x, std::vector<float>(10, 1.0f));
}

}  // namespace
}  // namespace gradzip::quant
