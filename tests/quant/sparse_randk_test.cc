// randk: the selection rule (k smallest Philox keys, ties by index) is pinned, the
// receiver regenerates the same indices, and with scale=true the estimator is unbiased.
// threshold: keeps exactly the elements with |x| >= tau.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "quant/registry.h"
#include "quant/sparse.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant {
namespace {

std::vector<std::uint64_t> nonzero_positions(const std::vector<float>& y) {
  std::vector<std::uint64_t> p;
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (y[i] != 0.0f) p.push_back(i);
  }
  return p;
}

TEST(RandK, SelectionRuleIsSmallestPhiloxKeys) {
  // Small n (full key array path) and large n with small and large k (cutoff path).
  const std::pair<std::size_t, std::uint64_t> cases[] = {{7, 1}, {37, 4}, {5003, 501}, {200003, 3}, {200003, 20001}};
  for (const auto& [n, k] : cases) {
    const SeedContext ctx{0x1234567890ull, 17, 3, 5};
    std::vector<std::uint64_t> order(n);
    std::iota(order.begin(), order.end(), std::uint64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::uint64_t a, std::uint64_t b) {
      return random_bits(ctx, RandomStream::kSelection, a) < random_bits(ctx, RandomStream::kSelection, b);
    });
    order.resize(k);
    std::sort(order.begin(), order.end());
    std::vector<float> x(n, 1.0f);  // all nonzero: decoded nonzeros are the kept set
    const auto codec = make_codec("randk:k=" + std::to_string(k));
    const auto msg = codec->encode(x.data(), n, ctx);
    EXPECT_EQ(msg.size(), kHeaderBytes + 24 + 24 + 4 * k);
    std::vector<float> y(n);
    ASSERT_TRUE(decode_any(msg.data(), msg.size(), y.data(), n).ok());
    EXPECT_EQ(nonzero_positions(y), order) << "n=" << n;
  }
}

TEST(RandK, ReceiverRegeneratesIndicesAndValues) {
  const auto x = testing::gaussian(1000003, 21);
  const auto codec = make_codec("randk:k=777");
  const SeedContext ctx{99, 5, 1, 2};
  const auto msg = codec->encode(x.data(), x.size(), ctx);
  std::vector<float> y(x.size());
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  const auto kept = nonzero_positions(y);
  ASSERT_EQ(kept.size(), 777u);
  for (auto i : kept) EXPECT_EQ(y[i], x[i]);
  // Another step draws another subset; the same context the same bytes.
  EXPECT_EQ(codec->encode(x.data(), x.size(), ctx), msg);
  SeedContext other = ctx;
  other.step = 6;
  std::vector<float> z(x.size());
  const auto msg2 = codec->encode(x.data(), x.size(), other);
  ASSERT_TRUE(codec->decode(msg2.data(), msg2.size(), z.data(), z.size()).ok());
  EXPECT_NE(nonzero_positions(z), kept);
}

TEST(RandK, ScaledIsUnbiased) {
  // n = 13, k = 4: decoded_i = x_i * 13/4 with probability 4/13, else 0.
  const std::vector<float> x = {0.5f, -1.25f, 2.0f, 0.1f, -0.7f, 3.0f, -2.5f, 0.9f, 1.1f, -0.3f, 0.05f, 4.0f, -1.0f};
  const std::size_t n = x.size();
  const auto codec = make_codec("randk:k=4,scale=true");
  EXPECT_TRUE(codec->unbiased());
  const int seeds = 4000;
  std::vector<double> sum(n, 0.0), sum_sq(n, 0.0), hits(n, 0.0);
  std::vector<float> y(n);
  for (int s = 0; s < seeds; ++s) {
    const SeedContext ctx{static_cast<std::uint64_t>(s) * 7919 + 1, 3, 0, 0};
    const auto msg = codec->encode(x.data(), n, ctx);
    ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), n).ok());
    for (std::size_t i = 0; i < n; ++i) {
      sum[i] += y[i];
      sum_sq[i] += static_cast<double>(y[i]) * y[i];
      hits[i] += y[i] != 0.0f;
    }
  }
  const double p = 4.0 / 13.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double mean = sum[i] / seeds;
    // Analytic standard error: Var = x^2 (n/k - 1).
    const double se = std::fabs(x[i]) * std::sqrt((13.0 / 4.0 - 1.0) / seeds);
    EXPECT_NEAR(mean, x[i], 4.0 * se) << "element " << i;
    EXPECT_NEAR(hits[i] / seeds, p, 4.0 * std::sqrt(p * (1 - p) / seeds)) << "element " << i;
  }
}

TEST(RandK, UnscaledKeepsValuesAndIsBiased) {
  EXPECT_FALSE(make_codec("randk:k=4")->unbiased());
  EXPECT_FALSE(make_codec("randk:k=4,scale=true,values=fp16")->unbiased());
}

TEST(RandK, MalformedContextAndLength) {
  const auto codec = make_codec("randk:k=3");
  std::vector<float> x(10, 1.0f);
  auto msg = codec->encode(x.data(), x.size(), SeedContext{1, 2, 3, 4});
  std::vector<float> y(10, 5.0f);
  auto rewrite = [&](std::vector<std::uint8_t> m) {
    write_header(m.data(), CodecId::kRandK, m[7], 10, 24, m.size() - kHeaderBytes - 24);
    return codec->decode(m.data(), m.size(), y.data(), y.size()).code();
  };
  auto m = msg;
  store_le<std::uint32_t>(m.data() + kHeaderBytes + 24 + 20, 1u << 24);  // bucket beyond 2^24
  EXPECT_EQ(rewrite(m), Errc::kBadParams);
  m = msg;
  m.pop_back();
  EXPECT_EQ(rewrite(m), Errc::kTruncated);
  m = msg;
  m.push_back(0);
  EXPECT_EQ(rewrite(m), Errc::kBadLength);
  m = msg;
  m[7] = 1;
  EXPECT_EQ(rewrite(m), Errc::kBadParams);
  EXPECT_EQ(y, std::vector<float>(10, 5.0f));
  std::vector<std::uint8_t> out(codec->max_encoded_bytes(10));
  std::size_t bytes = 0;
  EXPECT_EQ(codec->encode(x.data(), 10, SeedContext{1, 2, 3, 1u << 24}, out.data(), out.size(), &bytes).code(),
            Errc::kInvalidArgument);
}

TEST(Threshold, KeepsExactlyAtOrAboveTau) {
  const auto x = testing::cauchy(65537, 8);
  const auto codec = make_codec("threshold:tau=3.5");
  const auto msg = codec->encode(x.data(), x.size(), {});
  std::vector<float> y(x.size());
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  std::size_t kept = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const bool keep = std::fabs(x[i]) >= 3.5f;
    kept += keep;
    EXPECT_EQ(y[i], keep ? x[i] : 0.0f) << i;
  }
  EXPECT_GT(kept, 0u);
  EXPECT_EQ(load_le<std::uint64_t>(msg.data() + kHeaderBytes + 8), kept);
  // tau exactly equal to an element keeps it.
  std::vector<float> z = {0.25f, -0.5f, 0.75f};
  const auto msg2 = make_codec("threshold:tau=0.5")->encode(z.data(), z.size(), {});
  std::vector<float> w(3);
  ASSERT_TRUE(decode_any(msg2.data(), msg2.size(), w.data(), 3).ok());
  EXPECT_EQ(w, (std::vector<float>{0.0f, -0.5f, 0.75f}));
}

}  // namespace
}  // namespace gradzip::quant
