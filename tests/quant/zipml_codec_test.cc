// zipml (Zhang et al. 2017, ZipML, Sec. 3): the levels are the bucket's min and max and the
// variance-optimal points of the histogram DP in between; the variance is at most uniform
// QSGD's at the same bits on Gaussian and heavy-tailed inputs (measured over seeds); its
// decoder refuses malformed levels and params with typed errors. The registry-wide suites
// (round trip, sizes, unbiasedness, corruption, golden vector) cover it as every codec.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "quant/codecs/zipml.h"
#include "quant/registry.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

using namespace codec_testing;  // NOLINT(google-build-using-namespace): test helpers

/// Standard normals from the Philox sampling stream (Box-Muller), `salt` varies the draw.
std::vector<double> normals(std::size_t n, std::uint32_t salt) {
  std::vector<double> z(n);
  const SeedContext ctx{0xD15Cull + salt, 1, 2, 3};
  for (std::size_t i = 0; i < n; ++i) {
    const double u1 = (static_cast<double>(random_bits(ctx, RandomStream::kSampling, 2 * i) >> 8) + 0.5) / 16777216.0;
    const double u2 = static_cast<double>(random_bits(ctx, RandomStream::kSampling, 2 * i + 1) >> 8) / 16777216.0;
    z[i] = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  return z;
}

std::vector<float> gaussian(std::size_t n, std::uint32_t salt) {
  const auto z = normals(n, salt);
  return std::vector<float>(z.begin(), z.end());
}

/// Student-t with 3 degrees of freedom (heavy tails: finite variance, infinite kurtosis):
/// z / sqrt(chi2_3 / 3).
std::vector<float> student_t3(std::size_t n, std::uint32_t salt) {
  const auto z = normals(4 * n, salt);
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double chi2 = z[4 * i + 1] * z[4 * i + 1] + z[4 * i + 2] * z[4 * i + 2] + z[4 * i + 3] * z[4 * i + 3];
    x[i] = static_cast<float>(z[4 * i] / std::sqrt(chi2 / 3.0));
  }
  return x;
}

/// Mean of ||decode(encode(x)) - x||^2 over `seeds` seeds, and its standard error.
void mean_sq_error(const Codec& codec, const std::vector<float>& x, int seeds, double* mean, double* se) {
  std::vector<float> y(x.size());
  double s1 = 0.0, s2 = 0.0;
  for (int k = 0; k < seeds; ++k) {
    const SeedContext ctx{static_cast<std::uint64_t>(77 + k), 5, 1, 0};
    const auto msg = codec.encode(x.data(), x.size(), ctx);
    ASSERT_TRUE(codec.decode(msg.data(), msg.size(), y.data(), y.size()).ok());
    double e = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) e += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
    s1 += e;
    s2 += e * e;
  }
  *mean = s1 / seeds;
  *se = std::sqrt(std::max(0.0, s2 / seeds - *mean * *mean) / seeds);
}

/// The levels of bucket b of a zipml message.
std::vector<float> levels_of(const MessageParts& parts, unsigned bits, std::size_t b) {
  const unsigned L = 1u << bits;
  std::vector<float> lv(L);
  for (unsigned k = 0; k < L; ++k) lv[k] = load_le<float>(parts.payload.data() + 4 * (b * L + k));
  return lv;
}

TEST(Zipml, LevelsSpanEachBucketSortedAndDecodedValuesAreLevels) {
  const std::size_t n = 1000, bucket = 300;  // buckets 300, 300, 300, 100
  const auto x = test_gradient(n, 4);
  for (unsigned bits : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE(bits);
    const auto codec = make_codec("zipml:bits=" + std::to_string(bits) + ",bucket=300");
    const auto msg = codec->encode(x.data(), n, SeedContext{1, 2, 3, 4});
    std::vector<float> y(n);
    ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), n).ok());
    const MessageParts parts = split_message(msg);
    for (std::size_t b = 0; b * bucket < n; ++b) {
      const auto lv = levels_of(parts, bits, b);
      const auto first = x.begin() + static_cast<std::ptrdiff_t>(b * bucket);
      const auto last = x.begin() + static_cast<std::ptrdiff_t>(std::min(n, (b + 1) * bucket));
      EXPECT_EQ(lv.front(), *std::min_element(first, last));
      EXPECT_EQ(lv.back(), *std::max_element(first, last));
      EXPECT_TRUE(std::is_sorted(lv.begin(), lv.end()));
      for (std::size_t i = b * bucket; i < std::min(n, (b + 1) * bucket); ++i) {
        EXPECT_NE(std::find(lv.begin(), lv.end(), y[i]), lv.end()) << i;
        // Rounded to one of the two levels around x_i.
        const auto up = std::lower_bound(lv.begin(), lv.end(), x[i]);
        ASSERT_NE(up, lv.end());
        EXPECT_TRUE(y[i] == *up || (up != lv.begin() && y[i] == *(up - 1))) << i << " x=" << x[i] << " y=" << y[i];
      }
    }
  }
}

/// Histogram variance (in the integer units of zipml.h) of levels at grid points g.
std::int64_t histogram_cost(const std::vector<std::int64_t>& p0, const std::vector<std::int64_t>& p1,
                            const std::vector<std::int64_t>& p2, const std::vector<unsigned>& g) {
  std::int64_t c = 0;
  for (std::size_t k = 0; k + 1 < g.size(); ++k) c += zipml::cost(p0.data(), p1.data(), p2.data(), g[k], g[k + 1]);
  return c;
}

TEST(Zipml, DpLevelsMinimiseTheHistogramVarianceExhaustively) {
  // bits=2 (4 levels: min, max and two of the M-2 inner points), refine=5 (M = 16):
  // the codec's levels have the least histogram variance of all C(14, 2) = 91 choices.
  const unsigned bits = 2, refine = 5, M = zipml::grid_of(bits, refine);
  for (std::uint32_t salt : {1u, 2u, 3u}) {
    const auto x = salt == 3 ? student_t3(500, salt) : test_gradient(500, salt);
    const auto codec = make_codec("zipml:bits=2,refine=5,bucket=500");
    const MessageParts parts = split_message(codec->encode(x.data(), x.size(), SeedContext{}));
    const auto lv = levels_of(parts, bits, 0);
    const float lo = lv.front() + 0.0f, hi = lv.back() + 0.0f;
    const float delta = (hi - lo) / static_cast<float>(M - 1), inv = static_cast<float>(M - 1) / (hi - lo);
    std::vector<std::uint32_t> counts(M - 1, 0);
    for (float v : x) ++counts[zipml::cell_of(v, lo, inv, M)];
    std::vector<std::int64_t> p0(M), p1(M), p2(M);
    zipml::prefix_sums(counts.data(), M, p0.data(), p1.data(), p2.data());
    // Grid points of the codec's levels.
    std::vector<unsigned> chosen;
    for (float v : lv) {
      unsigned g = 0;
      while (g < M && zipml::level_at(g, M, lo, hi, delta) != v) ++g;
      ASSERT_LT(g, M) << "level " << v << " is not a candidate point";
      chosen.push_back(g);
    }
    std::int64_t best = std::numeric_limits<std::int64_t>::max();
    for (unsigned a = 1; a + 1 < M; ++a) {
      for (unsigned b = a + 1; b + 1 < M; ++b) best = std::min(best, histogram_cost(p0, p1, p2, {0, a, b, M - 1}));
    }
    EXPECT_EQ(histogram_cost(p0, p1, p2, chosen), best) << "salt " << salt;
    EXPECT_LE(best, histogram_cost(p0, p1, p2, {0, refine, 2 * refine, M - 1}));  // uniform levels
  }
}

TEST(Zipml, VarianceAtMostUniformQsgdAtTheSameBitsGaussianAndHeavyTailed) {
  // E||C(x) - x||^2 over 24 seeds of a 65536-element vector, zipml (defaults: levels per
  // 512*2^bits elements, the same 0.0625 bit/element overhead as qsgd's norm per 512)
  // against qsgd with both norms at its default bucket. Ratios are printed for the record.
  constexpr int kSeeds = 24;
  const std::size_t n = 65536;
  for (int dist = 0; dist < 2; ++dist) {
    const auto x = dist == 0 ? gaussian(n, 9) : student_t3(n, 10);
    for (int bits : {2, 3, 4}) {
      const std::string b = std::to_string(bits);
      double z_mean = 0, z_se = 0;
      mean_sq_error(*make_codec("zipml:bits=" + b), x, kSeeds, &z_mean, &z_se);
      for (const char* norm : {"l2", "max"}) {
        double q_mean = 0, q_se = 0;
        mean_sq_error(*make_codec("qsgd:bits=" + b + ",norm=" + norm), x, kSeeds, &q_mean, &q_se);
        std::printf("[ zipml/qsgd ] %s bits=%d norm=%s: variance ratio %.3f (zipml %.4g, qsgd %.4g)\n",
                    dist == 0 ? "gaussian" : "student-t3", bits, norm, z_mean / q_mean, z_mean, q_mean);
        EXPECT_LE(z_mean + 4 * z_se, q_mean - 4 * q_se)
            << (dist == 0 ? "gaussian" : "student-t3") << " bits=" << bits << " qsgd norm=" << norm;
      }
    }
  }
}

TEST(Zipml, UnbiasedOnHeavyTailedInput) {
  // Mean of decode(encode(x)) over 3000 seeds equals x within 4 standard errors.
  constexpr int kSeeds = 3000;
  const auto x = student_t3(61, 12);
  for (const char* spec : {"zipml", "zipml:bits=2,bucket=20", "zipml:bits=1,scope=tensor"}) {
    SCOPED_TRACE(spec);
    const auto codec = make_codec(spec);
    EXPECT_TRUE(codec->unbiased());
    std::vector<double> s1(x.size(), 0.0), s2(x.size(), 0.0);
    std::vector<float> y(x.size());
    for (int k = 0; k < kSeeds; ++k) {
      const auto msg = codec->encode(x.data(), x.size(), SeedContext{static_cast<std::uint64_t>(k), 1, 0, 2});
      ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
      for (std::size_t i = 0; i < x.size(); ++i) {
        s1[i] += y[i];
        s2[i] += static_cast<double>(y[i]) * y[i];
      }
    }
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double mean = s1[i] / kSeeds;
      const double se = std::sqrt(std::max(0.0, s2[i] / kSeeds - mean * mean) / kSeeds);
      EXPECT_LE(std::fabs(mean - x[i]), 4.0 * se + 1e-6 * std::fabs(x[i])) << i;
    }
  }
}

TEST(Zipml, ConstantTinyRangeAndTensorScope) {
  const auto codec = make_codec("zipml:bits=3,bucket=64");
  std::vector<float> y(100);
  // A constant bucket decodes exactly; a range below 2^-100 takes the uniform levels.
  for (float v : {0.0f, -0.0f, 3.5f, -1e-30f}) {
    const std::vector<float> x(100, v);
    const auto msg = codec->encode(x.data(), x.size(), SeedContext{});
    ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
    for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], v) << v;
  }
  std::vector<float> tiny(100, 0x1p-110f);
  tiny[7] = 0x1p-109f;
  const auto msg = codec->encode(tiny.data(), tiny.size(), SeedContext{});
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  for (float v : y) EXPECT_TRUE(v >= 0x1p-110f && v <= 0x1p-109f) << v;
  // scope=tensor: one set of levels per message whatever its size.
  const auto tensor = make_codec("zipml:bits=2,scope=tensor");
  for (std::size_t n : {1u, 1000u, 20000u}) {
    const auto x = test_gradient(n, 5);
    EXPECT_EQ(tensor->encode(x.data(), n, SeedContext{}).size(), kHeaderBytes + 8 + 4 * 4 + (2 * n + 7) / 8) << n;
  }
  EXPECT_EQ(tensor->spec(), make_codec(tensor->spec())->spec());
}

TEST(Zipml, SpecLimits) {
  EXPECT_NO_THROW(make_codec("zipml:bits=4,refine=17"));
  EXPECT_THROW(make_codec("zipml:bits=4,refine=18"), SpecError);  // 18*15+1 > 256 points
  EXPECT_NO_THROW(make_codec("zipml:bits=1,refine=255"));
  EXPECT_THROW(make_codec("zipml:bits=5"), SpecError);
  EXPECT_THROW(make_codec("zipml:scope=layer"), SpecError);
}

constexpr float kSentinel = -4242.0f;

Errc decode_code(const Codec& codec, const std::vector<std::uint8_t>& msg, std::size_t n) {
  std::vector<float> out(n, kSentinel);
  const Errc c1 = codec.decode(msg.data(), msg.size(), out.data(), n).code();
  const Errc c2 = codec.decode_add(msg.data(), msg.size(), out.data(), n, 0.5f).code();
  EXPECT_EQ(c1, c2);
  if (c1 != Errc::kOk) {
    for (float v : out) EXPECT_EQ(v, kSentinel) << "output written although decode failed";
  }
  return c1;
}

TEST(Zipml, MalformedMessagesGetTypedErrors) {
  const auto codec = make_codec("zipml:bits=3,bucket=40");
  const std::size_t n = 100;  // buckets of 40, 40, 20: 8 levels each
  const auto x = test_gradient(n, 6);
  const MessageParts ok = split_message(codec->encode(x.data(), n, SeedContext{3, 1, 4, 1}));
  ASSERT_EQ(decode_code(*codec, ok.build(), n), Errc::kOk);
  const std::size_t last_bucket = 4 * 8 * 2;
  // Levels: NaN, Inf, beyond 2^126 -> kNonFiniteScale; not sorted -> kBadParams.
  for (float v : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity(), 0x1p127f}) {
    MessageParts bad = ok;
    store_le<float>(bad.payload.data() + last_bucket + 4 * 3, v);
    EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kNonFiniteScale) << v;
  }
  MessageParts bad = ok;
  const float l2 = load_le<float>(ok.payload.data() + last_bucket + 4 * 2);
  const float l3 = load_le<float>(ok.payload.data() + last_bucket + 4 * 3);
  store_le<float>(bad.payload.data() + last_bucket + 4 * 2, l3);
  store_le<float>(bad.payload.data() + last_bucket + 4 * 3, l2);
  EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadParams);
  // Equal neighbouring levels are sorted (a constant bucket sends them).
  bad = ok;
  store_le<float>(bad.payload.data() + last_bucket + 4 * 3, l2);
  EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kOk);
  // Params: bits 0 / 5, refine 0 / above the limit, reserved, bucket > 2^24, size.
  auto with_param = [&](std::size_t off, std::uint8_t v) {
    MessageParts b = ok;
    b.params[off] = v;
    return decode_code(*codec, b.build(), n);
  };
  EXPECT_EQ(with_param(0, 0), Errc::kBadParams);
  EXPECT_EQ(with_param(0, 5), Errc::kBadParams);
  EXPECT_EQ(with_param(1, 0), Errc::kBadParams);
  EXPECT_EQ(with_param(1, 37), Errc::kBadParams);  // bits=3: refine <= 36
  EXPECT_EQ(with_param(2, 1), Errc::kBadParams);
  EXPECT_EQ(with_param(0, 2), Errc::kBadLength);   // valid bits, 3-bit sized payload
  EXPECT_EQ(with_param(1, 36), Errc::kOk);         // refine is informative only
  bad = ok;
  store_le<std::uint32_t>(bad.params.data() + 4, (1u << 24) + 1u);
  EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadParams);
  bad = ok;
  store_le<std::uint32_t>(bad.params.data() + 4, 50);  // 2 buckets: fewer levels than sent
  EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadLength);
  bad = ok;
  store_le<std::uint32_t>(bad.params.data() + 4, 0);  // tensor scope: 1 set of levels
  EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadLength);
  bad = ok;
  bad.params.push_back(0);
  EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadParams);
  bad = ok;
  bad.payload.pop_back();
  EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadLength);
  // Encode: NaN/Inf and |x| > 2^126 are refused.
  std::vector<float> big(30, 1.0f);
  big[17] = -0x1p127f;
  std::vector<std::uint8_t> out(codec->max_encoded_bytes(big.size()));
  std::size_t bytes = 0;
  EXPECT_EQ(codec->encode(big.data(), big.size(), {}, out.data(), out.size(), &bytes).code(), Errc::kNonFiniteInput);
}

}  // namespace
}  // namespace gradzip::quant
