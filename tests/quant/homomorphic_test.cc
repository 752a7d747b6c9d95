// Homomorphic int8 quantization (quant/homomorphic.h): summing the integer codes of R
// ranks and decoding once equals the decode-then-sum reference, rounding is unbiased,
// narrow sum types agree with int32 sums, a rotation before quantizing (quant/rotation.h)
// shrinks max |x| and the sum's error on heavy tails, and bad arguments are typed errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "quant/homomorphic.h"
#include "quant/rotation.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant {
namespace {

using homomorphic::decode_sum;
using homomorphic::encode_local;
using homomorphic::local_max_abs;

/// The agreed scale: the max over ranks of local_max_abs (what the max-allreduce gives).
float agreed_scale(const std::vector<std::vector<float>>& xs) {
  float scale = 0.0f;
  for (const auto& x : xs) {
    float m = -1.0f;
    EXPECT_TRUE(local_max_abs(x.data(), x.size(), &m).ok());
    scale = std::max(scale, m);
  }
  return scale;
}

std::vector<std::vector<float>> rank_inputs(std::size_t ranks, std::size_t n, std::uint32_t seed) {
  std::vector<std::vector<float>> xs;
  for (std::size_t r = 0; r < ranks; ++r) xs.push_back(testing::cauchy(n, seed + static_cast<std::uint32_t>(r)));
  return xs;
}

class HomomorphicSum : public ::testing::TestWithParam<std::size_t> {};

TEST_P(HomomorphicSum, EqualsDecodeThenSumReference) {
  const std::size_t ranks = GetParam();
  const std::size_t n = 10007;
  const std::int32_t levels = 127;
  const auto xs = rank_inputs(ranks, n, 40);
  const float scale = agreed_scale(xs);
  std::vector<std::int32_t> engine_sum(n, 0);                 // what a sum-allreduce of int32 codes gives
  std::vector<std::int32_t> accumulated(n, 0);                // accumulate() over int8 codes
  std::vector<std::vector<std::int8_t>> codes8(ranks, std::vector<std::int8_t>(n));
  for (std::size_t r = 0; r < ranks; ++r) {
    const SeedContext ctx{5, 3, static_cast<std::uint32_t>(r), 9};
    std::vector<std::int32_t> codes32(n);
    ASSERT_TRUE(encode_local(xs[r].data(), n, scale, levels, ctx, codes32.data()).ok());
    ASSERT_TRUE(encode_local(xs[r].data(), n, scale, levels, ctx, codes8[r].data()).ok());
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(codes32[i], codes8[r][i]) << "the code does not depend on the sum type";
      ASSERT_LE(std::abs(codes32[i]), levels);
      engine_sum[i] += codes32[i];
    }
    homomorphic::accumulate(codes8[r].data(), n, accumulated.data());
  }
  EXPECT_EQ(accumulated, engine_sum);
  std::vector<float> decoded(n);
  ASSERT_TRUE(decode_sum(engine_sum.data(), n, scale, levels, 1.0f, decoded.data()).ok());
  const float step = scale / static_cast<float>(levels);
  for (std::size_t i = 0; i < n; ++i) {
    // Reference: decode each rank's int8 value, sum those integers in int32, scale once.
    std::int32_t ints = 0;
    float float_sum = 0.0f;
    for (std::size_t r = 0; r < ranks; ++r) {
      ints += static_cast<std::int32_t>(codes8[r][i]);
      float_sum += static_cast<float>(codes8[r][i]) * step;
    }
    ASSERT_EQ(decoded[i], static_cast<float>(ints) * step) << "element " << i;
    // Summing the per-rank decoded floats differs only by fp32 rounding of the sum.
    ASSERT_NEAR(decoded[i], float_sum, 4e-7f * static_cast<float>(ranks) * scale * static_cast<float>(ranks));
  }
}

TEST_P(HomomorphicSum, NarrowSumTypesDecodeLikeInt32) {
  const std::size_t ranks = GetParam();
  const std::size_t n = 3001;
  const auto xs = rank_inputs(ranks, n, 70);
  const float scale = agreed_scale(xs);
  for (std::size_t bytes : {std::size_t{1}, std::size_t{2}}) {
    const std::int32_t levels = homomorphic::max_levels(ranks, bytes);
    if (levels == 0) continue;
    ASSERT_EQ(homomorphic::sum_bytes_per_element(levels, ranks) <= bytes, true);
    std::vector<std::int8_t> s8(n, 0);
    std::vector<std::int16_t> s16(n, 0);
    std::vector<std::int32_t> s32(n, 0);
    for (std::size_t r = 0; r < ranks; ++r) {
      std::vector<std::int8_t> c(n);
      ASSERT_TRUE(encode_local(xs[r].data(), n, scale, levels, SeedContext{1, 2, static_cast<std::uint32_t>(r), 0},
                               c.data())
                      .ok());
      homomorphic::accumulate(c.data(), n, s8.data());
      homomorphic::accumulate(c.data(), n, s16.data());
      homomorphic::accumulate(c.data(), n, s32.data());
    }
    std::vector<float> narrow(n), wide(n);
    ASSERT_TRUE(decode_sum(s32.data(), n, scale, levels, 0.25f, wide.data()).ok());
    if (bytes == 1) {
      ASSERT_TRUE(decode_sum(s8.data(), n, scale, levels, 0.25f, narrow.data()).ok());
    } else {
      ASSERT_TRUE(decode_sum(s16.data(), n, scale, levels, 0.25f, narrow.data()).ok());
    }
    EXPECT_EQ(narrow, wide) << bytes << "-byte sums of " << ranks << " ranks at " << levels << " levels";
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, HomomorphicSum, ::testing::Values(1, 2, 4, 7));

TEST(Homomorphic, SumTypeSizesNeverOverflow) {
  for (std::size_t ranks = 1; ranks <= 300; ++ranks) {
    for (std::size_t bytes : {1, 2, 4}) {
      const std::int32_t levels = homomorphic::max_levels(ranks, bytes);
      const std::uint64_t limit = bytes == 1 ? 127 : (bytes == 2 ? 32767 : 2147483647ull);
      if (levels == 0) {
        EXPECT_GT(ranks, limit) << "no levels only when even 1 level overflows";
        continue;
      }
      EXPECT_LE(static_cast<std::uint64_t>(levels) * ranks, limit);
      EXPECT_TRUE(levels == homomorphic::kMaxLevels || static_cast<std::uint64_t>(levels + 1) * ranks > limit);
      EXPECT_LE(homomorphic::sum_bytes_per_element(levels, ranks), bytes);
    }
  }
  EXPECT_EQ(homomorphic::sum_bytes_per_element(127, 1), 1u);
  EXPECT_EQ(homomorphic::sum_bytes_per_element(127, 2), 2u);
  EXPECT_EQ(homomorphic::sum_bytes_per_element(127, 300), 4u);
}

TEST(Homomorphic, RoundingIsUnbiasedAndWithinOneLevel) {
  const std::size_t n = 257, seeds = 4000;
  const std::int32_t levels = 15;
  const auto x = testing::gaussian(n, 11);
  float scale = 0.0f;
  ASSERT_TRUE(local_max_abs(x.data(), n, &scale).ok());
  const float step = scale / static_cast<float>(levels);
  std::vector<double> mean(n, 0.0);
  std::vector<std::int16_t> c(n);
  std::vector<float> d(n);
  for (std::size_t s = 0; s < seeds; ++s) {
    ASSERT_TRUE(encode_local(x.data(), n, scale, levels, SeedContext{s, 0, 0, 0}, c.data()).ok());
    ASSERT_TRUE(decode_sum(c.data(), n, scale, levels, 1.0f, d.data()).ok());
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_LE(std::fabs(d[i] - x[i]), step * 1.0001f) << "stochastic rounding moves at most one level";
      mean[i] += d[i] / static_cast<double>(seeds);
    }
  }
  // A rounding between two levels has standard deviation <= step / 2.
  const double se = step / 2.0 / std::sqrt(static_cast<double>(seeds));
  for (std::size_t i = 0; i < n; ++i) EXPECT_NEAR(mean[i], x[i], 5.0 * se) << "element " << i;
}

TEST(Homomorphic, BadArgumentsAreTypedErrors) {
  std::vector<float> x = {0.5f, -1.0f, 2.0f};
  std::vector<std::int8_t> c(3);
  std::vector<float> out(3);
  const SeedContext ctx{};
  EXPECT_EQ(encode_local(x.data(), 3, 1.0f, 127, ctx, c.data()).code(), Errc::kInvalidArgument)
      << "an element above the agreed scale";
  EXPECT_EQ(encode_local(x.data(), 3, 2.0f, 0, ctx, c.data()).code(), Errc::kInvalidArgument);
  EXPECT_EQ(encode_local(x.data(), 3, 2.0f, 128, ctx, c.data()).code(), Errc::kInvalidArgument);
  EXPECT_EQ(encode_local(x.data(), 3, -2.0f, 127, ctx, c.data()).code(), Errc::kInvalidArgument);
  EXPECT_EQ(encode_local(x.data(), 3, NAN, 127, ctx, c.data()).code(), Errc::kInvalidArgument);
  EXPECT_EQ(encode_local(x.data(), 3, 2.0f, 127, SeedContext{0, 0, 0, 1u << 24}, c.data()).code(),
            Errc::kInvalidArgument);
  const std::int32_t sum[3] = {1, 2, 3};
  EXPECT_EQ(decode_sum(sum, 3, INFINITY, 127, 1.0f, out.data()).code(), Errc::kInvalidArgument);
  EXPECT_EQ(decode_sum(sum, 3, 1.0f, 127, -1.0f, out.data()).code(), Errc::kInvalidArgument);
  x[1] = NAN;
  float m = 0.0f;
  EXPECT_EQ(local_max_abs(x.data(), 3, &m).code(), Errc::kNonFiniteInput);
  EXPECT_EQ(encode_local(x.data(), 3, 2.0f, 127, ctx, c.data()).code(), Errc::kInvalidArgument);
  EXPECT_EQ(homomorphic::check_config({127, true, 48}).code(), Errc::kInvalidArgument);
  EXPECT_TRUE(homomorphic::check_config({127, false, 48}).ok()) << "block is ignored without rotation";
}

TEST(Homomorphic, ZeroScaleEncodesZeros) {
  const std::vector<float> x(5, 0.0f);
  std::vector<std::int32_t> c(5, 7);
  ASSERT_TRUE(encode_local(x.data(), 5, 0.0f, 127, SeedContext{}, c.data()).ok());
  EXPECT_EQ(c, std::vector<std::int32_t>(5, 0));
}

TEST(HomomorphicRotation, ShrinksMaxAbsAndSumErrorOfHeavyTails) {
  const std::size_t n = 8192, ranks = 4;
  const SeedContext shared{9, 4, 0, 1};
  auto xs = rank_inputs(ranks, n, 300);  // Cauchy: a few huge coordinates
  std::vector<double> truth(n, 0.0);
  for (const auto& x : xs) {
    for (std::size_t i = 0; i < n; ++i) truth[i] += x[i];
  }
  auto rotated = xs;
  for (auto& x : rotated) ASSERT_TRUE(rotate(x.data(), n, 4096, shared).ok());
  const float plain_scale = agreed_scale(xs), rotated_scale = agreed_scale(rotated);
  EXPECT_LT(rotated_scale, 0.5f * plain_scale) << "rotation spreads the outliers";
  // Error of the homomorphic sum with and without rotation, at the same levels.
  auto sum_error = [&](const std::vector<std::vector<float>>& in, float scale, bool unrot) {
    std::vector<std::int32_t> s(n, 0);
    for (std::size_t r = 0; r < ranks; ++r) {
      std::vector<std::int8_t> c(n);
      EXPECT_TRUE(encode_local(in[r].data(), n, scale, 31, SeedContext{9, 4, static_cast<std::uint32_t>(r), 1},
                               c.data())
                      .ok());
      homomorphic::accumulate(c.data(), n, s.data());
    }
    std::vector<float> out(n);
    EXPECT_TRUE(decode_sum(s.data(), n, scale, 31, 1.0f, out.data()).ok());
    if (unrot) {
      EXPECT_TRUE(unrotate(out.data(), n, 4096, shared).ok());
    }
    double e = 0.0;
    for (std::size_t i = 0; i < n; ++i) e += (out[i] - truth[i]) * (out[i] - truth[i]);
    return e;
  };
  EXPECT_LT(sum_error(rotated, rotated_scale, true), sum_error(xs, plain_scale, false));
}

}  // namespace
}  // namespace gradzip::quant
