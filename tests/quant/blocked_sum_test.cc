// The blocked summation order of quant/reduce.h (the DGC memory's clip norm, which the
// CUDA twin computes on many blocks): its plan covers every element with at most
// kBlockedMaxParts parts, blocked_sum equals a second, element-by-element implementation
// of the definition bit for bit, and stays close to the exact sum.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "quant/reduce.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

TEST(BlockedSum, PlanCoversEveryElementWithBoundedParts) {
  EXPECT_EQ(blocked_parts(0), 0u);
  for (std::size_t n : {std::size_t{1}, std::size_t{255}, std::size_t{256}, std::size_t{32767}, std::size_t{32768},
                        std::size_t{32769}, std::size_t{1000003}, std::size_t{33554432}, std::size_t{33554433},
                        std::size_t{40000001}, std::size_t{1} << 34}) {
    const std::size_t len = blocked_part_length(n);
    const std::size_t m = blocked_parts(n);
    EXPECT_EQ(len % kBlockedLanes, 0u) << n;
    EXPECT_GE(len, kBlockedMinPart) << n;
    EXPECT_GE(m, 1u) << n;
    EXPECT_LE(m, kBlockedMaxParts) << n;
    EXPECT_LT((m - 1) * len, n) << n;  // the last part is not empty
    EXPECT_GE(m * len, n) << n;        // every element is in a part
  }
}

/// The definition written the other way round: every element goes to the accumulator of
/// its (part, lane) in index order; butterfly and tree as stated in reduce.h.
float blocked_by_definition(const std::vector<float>& x) {
  const std::size_t n = x.size();
  const std::size_t len = blocked_part_length(n);
  const std::size_t m = blocked_parts(n);
  std::vector<std::vector<float>> acc(m, std::vector<float>(kBlockedLanes, 0.0f));
  for (std::size_t i = 0; i < n; ++i) acc[i / len][(i % len) % kBlockedLanes] += x[i] * x[i];
  std::vector<float> s(m);
  for (std::size_t p = 0; p < m; ++p) {
    std::vector<float> v = acc[p];
    for (int offset = kBlockedLanes / 2; offset > 0; offset /= 2) {
      std::vector<float> next(kBlockedLanes);
      for (int l = 0; l < kBlockedLanes; ++l) next[l] = v[l] + v[l ^ offset];
      v = next;
    }
    s[p] = v[0];
  }
  if (m == 0) return 0.0f;
  for (std::size_t w = 1; w < m; w *= 2) {
    for (std::size_t i = 0; i + w < m; i += 2 * w) s[i] = s[i] + s[i + w];
  }
  return s[0];
}

TEST(BlockedSum, EqualsTheDefinitionBitForBit) {
  for (std::size_t n : {0, 1, 7, 256, 257, 32768, 32769, 98304, 1000003}) {
    const std::vector<float> x = codec_testing::test_gradient(n, 3);
    const float got = blocked_sum_sq(x.data(), n);
    const float want = blocked_by_definition(x);
    EXPECT_EQ(std::memcmp(&got, &want, 4), 0) << "n=" << n << ": " << got << " vs " << want;
    double exact = 0;
    for (float v : x) exact += static_cast<double>(v) * v;
    EXPECT_NEAR(got, exact, 1e-5 * exact + 1e-30) << "n=" << n;
  }
}

TEST(BlockedSum, AgreesWithTheWarpOrderUpTo32Elements) {
  // Below 33 elements both orders add the same values in the same pairs.
  for (std::size_t n : {1, 2, 3, 17, 32}) {
    const std::vector<float> x = codec_testing::test_gradient(n, 4);
    const float a = blocked_sum_sq(x.data(), n);
    const float b = canonical_sum_sq(x.data(), n);
    EXPECT_EQ(std::memcmp(&a, &b, 4), 0) << n;
  }
}

}  // namespace
}  // namespace gradzip::quant
