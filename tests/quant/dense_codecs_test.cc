// Tests of the dense codecs' definitions: lossless where promised, hand-checked bit
// layouts, the statistics each paper claims (unbiasedness, QSGD's variance bound, onebit's
// preserved sums, terngrad's ternary values), majority vote, and spec round trips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "quant/bitpack.h"
#include "quant/codecs/bucketed.h"
#include "quant/codecs/sign.h"
#include "quant/half.h"
#include "quant/philox.h"
#include "quant/registry.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

using namespace codec_testing;  // NOLINT(google-build-using-namespace): test helpers

std::vector<float> roundtrip(const Codec& codec, const std::vector<float>& x, const SeedContext& ctx = {}) {
  const auto msg = codec.encode(x.data(), x.size(), ctx);
  std::vector<float> y(x.size(), 777.0f);
  const Status st = codec.decode(msg.data(), msg.size(), y.data(), y.size());
  EXPECT_TRUE(st.ok()) << st.to_string();
  return y;
}

TEST(DenseCodecs, Fp16LosslessOnEveryFiniteHalf) {
  std::vector<float> x;
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    if ((h & 0x7C00u) != 0x7C00u) x.push_back(fp16_to_float(static_cast<std::uint16_t>(h)));
  }
  const auto y = roundtrip(*make_codec("fp16"), x);
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), 4 * x.size()));
}

TEST(DenseCodecs, Bf16LosslessOnEveryFiniteBfloat16) {
  std::vector<float> x;
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    if ((h & 0x7F80u) != 0x7F80u) x.push_back(bf16_to_float(static_cast<std::uint16_t>(h)));
  }
  const auto y = roundtrip(*make_codec("bf16"), x);
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), 4 * x.size()));
}

TEST(DenseCodecs, HalfFormatsMatchTheReferenceConversions) {
  // The codecs' branch-free conversions equal quant/half.h (+ saturation) bit for bit,
  // on ~2M finite bit patterns spread over the whole range (the CUDA twins use half.h).
  std::vector<float> x;
  for (std::uint64_t u = 0; u < 0x7F800000ull; u += 1999) {
    x.push_back(bits_float(static_cast<std::uint32_t>(u)));
    x.push_back(-bits_float(static_cast<std::uint32_t>(u)));
  }
  const MessageParts h = split_message(make_codec("fp16")->encode(x.data(), x.size(), {}));
  const MessageParts b = split_message(make_codec("bf16")->encode(x.data(), x.size(), {}));
  std::size_t bad16 = 0, bad_bf = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::uint16_t r = float_to_fp16(x[i]);
    if ((r & 0x7FFFu) == 0x7C00u) r = static_cast<std::uint16_t>((r & 0x8000u) | 0x7BFFu);
    bad16 += load_le<std::uint16_t>(h.payload.data() + 2 * i) != r;
    std::uint16_t rb = float_to_bf16(x[i]);
    if ((rb & 0x7FFFu) == 0x7F80u) rb = static_cast<std::uint16_t>((rb & 0x8000u) | 0x7F7Fu);
    bad_bf += load_le<std::uint16_t>(b.payload.data() + 2 * i) != rb;
  }
  EXPECT_EQ(bad16, 0u);
  EXPECT_EQ(bad_bf, 0u);
}

TEST(DenseCodecs, HalfFormatsRoundToNearestEvenAndSaturate) {
  const std::vector<float> x = {1e5f, -7e4f, 65519.0f, 65520.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f,
                                std::numeric_limits<float>::max(), 1e-8f};
  const auto h = roundtrip(*make_codec("fp16"), x);
  EXPECT_EQ(h[0], 65504.0f);
  EXPECT_EQ(h[1], -65504.0f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], 65504.0f);
  EXPECT_EQ(h[4], 1.0f);                  // tie -> even
  EXPECT_EQ(h[5], 1.0f + 2 * 0x1p-10f);  // tie -> even (up)
  EXPECT_EQ(h[7], fp16_to_float(float_to_fp16(1e-8f)));  // subnormal half kept
  const auto b = roundtrip(*make_codec("bf16"), x);
  EXPECT_EQ(b[6], bf16_to_float(0x7F7F));  // FLT_MAX rounds to Inf in bf16: saturated
  EXPECT_EQ(b[0], bf16_to_float(float_to_bf16(1e5f)));
}

TEST(DenseCodecs, Int8HandExample) {
  const auto codec = make_codec("int8:bucket=4");
  const std::vector<float> x = {1.0f, -0.5f, 0.25f, 0.0f, 0.0f, 0.0f};  // buckets {4}, {2} (all zero)
  const auto msg = codec->encode(x.data(), x.size(), {});
  const MessageParts p = split_message(msg);
  ASSERT_EQ(p.payload.size(), 4u * 2 + 6);
  EXPECT_EQ(load_le<float>(p.payload.data()), 1.0f);      // max |x| of bucket 0
  EXPECT_EQ(load_le<float>(p.payload.data() + 4), 0.0f);  // zero bucket: no division by zero
  const std::vector<std::int8_t> q = {127, -64 /* -63.5: tie to even */, 32 /* 31.75 */, 0, 0, 0};
  for (std::size_t i = 0; i < q.size(); ++i) EXPECT_EQ(static_cast<std::int8_t>(p.payload[8 + i]), q[i]) << i;
  const auto y = roundtrip(*codec, x);
  EXPECT_EQ(y[0], 127.0f * (1.0f / 127.0f));
  EXPECT_EQ(y[1], -64.0f * (1.0f / 127.0f));
  EXPECT_EQ(y[4], 0.0f);
  // Error bound of round-to-nearest: |y - x| <= step / 2 (+ rounding of the step).
  const auto g = test_gradient(5000);
  const auto codec2 = make_codec("int8:bucket=129");
  const auto z = roundtrip(*codec2, g);
  for (std::size_t b = 0; b < g.size(); b += 129) {
    float m = 0.0f;
    for (std::size_t i = b; i < std::min(g.size(), b + 129); ++i) m = std::max(m, std::fabs(g[i]));
    for (std::size_t i = b; i < std::min(g.size(), b + 129); ++i) {
      ASSERT_LE(std::fabs(z[i] - g[i]), m / 127.0f * 0.5f * (1.0f + 1e-5f) + 1e-30f) << i;
    }
  }
}

TEST(DenseCodecs, QsgdBitLayoutHandExample) {
  // bits=4: s = 7 levels; field = level | sign << 3, two fields per byte, LSB-first.
  const auto codec = make_codec("qsgd:bits=4,bucket=3,norm=max");
  const std::vector<float> x = {1.0f, -1.0f, 0.5f};
  const SeedContext ctx{42, 1, 2, 3};
  const MessageParts p = split_message(codec->encode(x.data(), x.size(), ctx));
  ASSERT_EQ(p.params.size(), 8u);
  EXPECT_EQ(p.params[0], 4);
  EXPECT_EQ(p.params[1], 1);  // max norm
  EXPECT_EQ(load_le<std::uint32_t>(p.params.data() + 4), 3u);
  ASSERT_EQ(p.payload.size(), 4u + 2u);
  EXPECT_EQ(load_le<float>(p.payload.data()), 1.0f);
  EXPECT_EQ(p.payload[4], 0xF7);  // element 0: level 7, +; element 1: level 7, - (0b1111)
  // Element 2: r = 3.5, level 4 iff uniform01(R_2) < 0.5.
  const bool up = uniform01(random_bits(ctx, RandomStream::kRounding, 2)) < 0.5f;
  EXPECT_EQ(p.payload[5], up ? 4 : 3);
  const auto y = roundtrip(*codec, x, ctx);
  EXPECT_EQ(y[0], 7.0f * (1.0f / 7.0f));
  EXPECT_EQ(y[1], -(7.0f * (1.0f / 7.0f)));
  EXPECT_EQ(y[2], (up ? 4.0f : 3.0f) * (1.0f / 7.0f));
}

TEST(DenseCodecs, MajorityVoteCountsNanAsNoVote) {
  std::vector<float> acc = {std::nanf(""), -std::nanf(""), 3.0f, -2.0f, 0.0f, -0.0f};
  majority_vote(acc.data(), acc.size());
  const std::vector<float> want = {0.0f, 0.0f, 1.0f, -1.0f, 0.0f, 0.0f};
  for (std::size_t i = 0; i < acc.size(); ++i) EXPECT_EQ(acc[i], want[i]) << i;
}

TEST(DenseCodecs, SignBitLayoutAndMajorityVote) {
  const auto codec = make_codec("sign");
  const std::vector<float> x = {-1.0f, 2.0f, -3.0f, 0.0f, -0.0f, 5.0f, 6.0f, -7.0f, 8.0f};
  const MessageParts p = split_message(codec->encode(x.data(), x.size(), {}));
  ASSERT_EQ(p.payload.size(), 2u);
  EXPECT_EQ(p.payload[0], 0x85);  // bits 0, 2, 7 (LSB-first); 0 and -0.0 are +
  EXPECT_EQ(p.payload[1], 0x00);
  const auto y = roundtrip(*codec, x);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i] < 0.0f ? -1.0f : 1.0f);

  // Three workers, majority vote per coordinate; two workers can tie (-> 0).
  const std::size_t n = 1001;
  std::vector<std::vector<float>> g = {test_gradient(n, 1), test_gradient(n, 2), test_gradient(n, 3)};
  std::vector<float> acc(n, 0.0f), tie(n, 0.0f);
  for (std::size_t w = 0; w < g.size(); ++w) {
    const auto msg = codec->encode(g[w].data(), n, {});
    ASSERT_TRUE(codec->decode_add(msg.data(), msg.size(), acc.data(), n, 1.0f).ok());
    if (w < 2) {
      ASSERT_TRUE(codec->decode_add(msg.data(), msg.size(), tie.data(), n, 0.5f).ok());
    }
  }
  majority_vote(acc.data(), n);
  majority_vote(tie.data(), n);
  for (std::size_t i = 0; i < n; ++i) {
    int votes = 0, votes2 = 0;
    for (std::size_t w = 0; w < g.size(); ++w) votes += g[w][i] < 0.0f ? -1 : 1;
    for (std::size_t w = 0; w < 2; ++w) votes2 += g[w][i] < 0.0f ? -1 : 1;
    ASSERT_EQ(acc[i], votes > 0 ? 1.0f : -1.0f) << i;
    ASSERT_EQ(tie[i], votes2 > 0 ? 1.0f : (votes2 < 0 ? -1.0f : 0.0f)) << i;
  }
}

TEST(DenseCodecs, BucketStatisticsOfBiasedCodecs) {
  const std::size_t n = 1000, bucket = 77;
  const auto x = test_gradient(n, 5);
  const auto ss = roundtrip(*make_codec("scaled-sign:bucket=77"), x);
  const auto ob = roundtrip(*make_codec("onebit:bucket=77"), x);
  const auto tg = roundtrip(*make_codec("terngrad:bucket=77"), x, SeedContext{9, 9, 9, 9});
  for (std::size_t b = 0; b < n; b += bucket) {
    const std::size_t e = std::min(n, b + bucket);
    double l1 = 0, pos = 0, neg = 0, sum_ob = 0, mx = 0;
    for (std::size_t i = b; i < e; ++i) {
      l1 += std::fabs(x[i]);
      (x[i] < 0.0f ? neg : pos) += x[i];
      sum_ob += ob[i];
      mx = std::max(mx, static_cast<double>(std::fabs(x[i])));
    }
    const double mean_abs = l1 / static_cast<double>(e - b);
    for (std::size_t i = b; i < e; ++i) {
      // scaled-sign: sign(x) * ||x||_1 / m.
      ASSERT_NEAR(ss[i], (x[i] < 0.0f ? -1 : 1) * mean_abs, 1e-5 * mean_abs) << i;
      // onebit: each element decodes to its group's mean.
      ASSERT_TRUE(x[i] < 0.0f ? ob[i] <= 0.0f : ob[i] >= 0.0f) << i;
      // terngrad: y in {-s, 0, +s}, s = max|x|, sign of x.
      ASSERT_TRUE(tg[i] == 0.0f || std::fabs(tg[i]) == static_cast<float>(mx)) << i;
      if (tg[i] != 0.0f) {
        ASSERT_EQ(std::signbit(tg[i]), std::signbit(x[i])) << i;
      }
    }
    // onebit preserves the bucket sum (Seide et al. 2014: means of the two groups).
    EXPECT_NEAR(sum_ob, pos + neg, 1e-4 * l1) << "bucket " << b;
  }
}

TEST(DenseCodecs, NaturalRoundsToNeighbouringPowersOfTwo) {
  const auto codec = make_codec("natural");
  auto x = test_gradient(4001, 8);
  x.push_back(0.25f);     // exact power of two: always itself
  x.push_back(-0x1p-140f);  // subnormal: 0 or -2^-126
  x.push_back(std::numeric_limits<float>::max());  // clamps to 2^127
  const auto y = roundtrip(*codec, x, SeedContext{3, 3, 3, 3});
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (x[i] == 0.0f) {
      ASSERT_EQ(y[i], 0.0f);
      continue;
    }
    const float lo = std::ldexp(1.0f, std::ilogb(x[i]));
    const float a = std::fabs(y[i]);
    ASSERT_TRUE(a == lo || a == 2.0f * lo || (std::fpclassify(x[i]) == FP_SUBNORMAL && (a == 0.0f || a == 0x1p-126f)) ||
                (a == 0x1p127f))
        << i << " x=" << x[i] << " y=" << y[i];
    if (a != 0.0f) {
      ASSERT_EQ(std::signbit(y[i]), std::signbit(x[i]));
    }
  }
  EXPECT_EQ(y[4001], 0.25f);
  EXPECT_EQ(y[4003], 0x1p127f);
}

TEST(DenseCodecs, ZeroAndTinyBucketsNeverDivideByZero) {
  // An all-zero gradient decodes to zeros; buckets below the 2^-120 scale floor decode to
  // finite values (zeros for the codecs that use a reciprocal of the scale).
  for (const auto& spec : all_specs()) {
    const std::string name = spec_name(spec);
    if (!is_dense(name) || name == "sign") continue;  // sign sends +-1 by definition
    SCOPED_TRACE(spec);
    const auto codec = make_codec(spec);
    const std::vector<float> zeros(100, 0.0f);
    for (float v : roundtrip(*codec, zeros)) ASSERT_EQ(v, 0.0f);
    std::vector<float> tiny(100);
    for (std::size_t i = 0; i < tiny.size(); ++i) tiny[i] = (i % 2 ? -1.0f : 1.0f) * 0x1p-125f * static_cast<float>(i % 7);
    for (float v : roundtrip(*codec, tiny, SeedContext{1, 1, 1, 1})) ASSERT_TRUE(std::isfinite(v));
  }
  for (const char* spec : {"int8", "qsgd", "qsgd:norm=max", "terngrad"}) {
    std::vector<float> tiny(50, 0x1p-126f);
    for (float v : roundtrip(*make_codec(spec), tiny)) ASSERT_EQ(v, 0.0f) << spec;
  }
}

TEST(DenseCodecs, SpecsRoundTripAndRangesAreEnforced) {
  for (const auto& spec : all_specs()) {
    const auto codec = make_codec(spec);
    EXPECT_EQ(make_codec(codec->spec())->spec(), codec->spec()) << spec;
  }
  EXPECT_EQ(make_codec("qsgd")->spec(), "qsgd:bits=4,bucket=512,norm=l2");
  EXPECT_EQ(make_codec("terngrad:clip=2.5")->spec(), "terngrad:bucket=512,clip=2.5");
  EXPECT_THROW(make_codec("qsgd:bits=9"), SpecError);
  EXPECT_THROW(make_codec("qsgd:bits=1"), SpecError);
  EXPECT_THROW(make_codec("qsgd:norm=l1"), SpecError);
  EXPECT_THROW(make_codec("int8:bucket=0"), SpecError);
  EXPECT_THROW(make_codec("onebit:bucket=16777217"), SpecError);
  EXPECT_THROW(make_codec("terngrad:clip=-1"), SpecError);
  EXPECT_TRUE(make_codec("qsgd")->unbiased());
  EXPECT_TRUE(make_codec("natural")->unbiased());
  EXPECT_TRUE(make_codec("terngrad")->unbiased());
  EXPECT_FALSE(make_codec("terngrad:clip=2.5")->unbiased());
  EXPECT_FALSE(make_codec("scaled-sign")->unbiased());
}

/// Bit-at-a-time reference of the layout documented in quant/bitpack.h.
template <int kBits>
void check_bitpack() {
  const std::size_t count = 1003;
  std::vector<std::uint8_t> codes(count), back(count, 0xEE);
  for (std::size_t i = 0; i < count; ++i) {
    codes[i] = static_cast<std::uint8_t>(random_bits(SeedContext{kBits, 0, 0, 0}, RandomStream::kSampling, i) &
                                         ((1u << kBits) - 1u));
  }
  std::vector<std::uint8_t> packed(packed_bytes(count, kBits) + 1, 0xAB), ref(packed_bytes(count, kBits), 0);
  for (std::size_t i = 0; i < count; ++i) {
    for (int b = 0; b < kBits; ++b) {
      const std::size_t p = i * kBits + static_cast<std::size_t>(b);
      ref[p / 8] = static_cast<std::uint8_t>(ref[p / 8] | (((codes[i] >> b) & 1u) << (p % 8)));
    }
  }
  pack_fields<kBits>(codes.data(), count, packed.data());
  EXPECT_EQ(packed.back(), 0xAB) << "wrote past ceil(count*bits/8)";
  packed.pop_back();
  EXPECT_EQ(packed, ref) << kBits;
  unpack_fields<kBits>(packed.data(), count, back.data());
  EXPECT_EQ(back, codes) << kBits;
}

TEST(DenseCodecs, BitPackingMatchesTheDocumentedLayout) {
  check_bitpack<1>();
  check_bitpack<2>();
  check_bitpack<3>();
  check_bitpack<4>();
  check_bitpack<5>();
  check_bitpack<6>();
  check_bitpack<7>();
  check_bitpack<8>();
}

TEST(DenseCodecs, BatchedPhiloxEqualsRandomBlock) {
  // The batched rounding stream (its fastest path: AVX-512 or AVX2 where the CPU has them;
  // the AVX2 path; the portable path) gives exactly the numbers of random_block(), including
  // at the 2^32 counter wrap, for counts that end in each path's tail.
  for (const SeedContext ctx : {SeedContext{0, 0, 0, 0}, SeedContext{0xFEDCBA9876543210ull, 0x123456789ull, 0xFFFFFFFFu, 0xFFFFFFu},
                                SeedContext{42, 7, 3, 5}}) {
    for (const std::uint64_t first : {std::uint64_t{0}, std::uint64_t{12345}, std::uint64_t{0xFFFFFFF0u}}) {
      for (const std::size_t count : {std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{24}, std::size_t{33},
                                      std::size_t{47}, std::size_t{256}}) {
        std::vector<std::uint32_t> fast(4 * count), avx2(4 * count), portable(4 * count), ref(4 * count);
        bucketed::rounding_words(ctx, first, count, fast.data());
        bucketed::rounding_words_avx2_for_test(ctx, first, count, avx2.data());
        bucketed::rounding_words_portable_for_test(ctx, first, count, portable.data());
        for (std::size_t b = 0; b < count; ++b) {
          const Philox4x32 r = random_block(ctx, RandomStream::kRounding, first + b);
          for (int w = 0; w < 4; ++w) ref[4 * b + static_cast<std::size_t>(w)] = r.v[w];
        }
        ASSERT_EQ(fast, ref) << first << " " << count;
        ASSERT_EQ(avx2, ref) << first << " " << count;
        ASSERT_EQ(portable, ref) << first << " " << count;
      }
    }
  }
  for (std::uint32_t bits : {0u, 1u, 255u, 256u, 0x12345678u, 0xFFFFFFFFu}) {
    EXPECT_EQ(bucketed::uniform24(bits), uniform01(bits));
  }
}

// ---- statistics ------------------------------------------------------------------

/// Per-element mean and variance of decode(encode(x)) over `seeds` seeds.
void moments(const Codec& codec, const std::vector<float>& x, int seeds, std::vector<double>* mean,
             std::vector<double>* var) {
  const std::size_t n = x.size();
  std::vector<double> s1(n, 0.0), s2(n, 0.0);
  std::vector<float> y(n);
  for (int k = 0; k < seeds; ++k) {
    const SeedContext ctx{static_cast<std::uint64_t>(1000 + k), 17, 2, 1};
    const auto msg = codec.encode(x.data(), n, ctx);
    ASSERT_TRUE(codec.decode(msg.data(), msg.size(), y.data(), n).ok());
    for (std::size_t i = 0; i < n; ++i) {
      s1[i] += y[i];
      s2[i] += static_cast<double>(y[i]) * y[i];
    }
  }
  mean->resize(n);
  var->resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    (*mean)[i] = s1[i] / seeds;
    (*var)[i] = std::max(0.0, s2[i] / seeds - (*mean)[i] * (*mean)[i]) * seeds / (seeds - 1);
  }
}

TEST(DenseStatistics, UnbiasedCodecsAreUnbiased) {
  // Mean of decode(encode(x)) over 2000 seeds equals x within 4 standard errors, for
  // every registered spec whose codec declares itself unbiased (qsgd, terngrad with
  // clip=0, natural, ...), plus small-bucket variants.
  constexpr int kSeeds = 2000;
  // Magnitudes within a factor 4 of each other, so that every element's rounding
  // probability is >= ~5% (a rare event would leave a sample variance of 0), one zero.
  auto x = test_gradient(37, 21);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float frac = static_cast<float>((i * 7919u) % 97u) / 97.0f;
    x[i] = (i % 3 == 0 ? -1.0f : 1.0f) * (0.25f + 0.75f * frac) * (i == 13 ? 0.0f : 1.0f);
  }
  std::vector<std::string> specs = all_specs();
  for (const char* s : {"qsgd:bits=2,bucket=10", "qsgd:bits=3,bucket=10,norm=max", "terngrad:bucket=10"}) {
    specs.push_back(s);
  }
  int tested = 0;
  for (const auto& spec : specs) {
    const auto codec = make_codec(spec);
    if (!codec->unbiased()) continue;
    ++tested;
    SCOPED_TRACE(spec);
    std::vector<double> mean, var;
    moments(*codec, x, kSeeds, &mean, &var);
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double se = std::sqrt(var[i] / kSeeds);
      // 1e-6 relative: the decoded grid itself is computed in fp32 (level * (w / s)).
      EXPECT_LE(std::fabs(mean[i] - x[i]), 4.0 * se + 1e-6 * std::fabs(x[i]) + 1e-30)
          << "element " << i << " x=" << x[i] << " mean=" << mean[i] << " se=" << se;
    }
  }
  EXPECT_GE(tested, 5);
}

TEST(DenseStatistics, QsgdVarianceWithinLemma31Bound) {
  // Alistarh et al. 2017, Lemma 3.1: E||Q_s(v) - v||^2 <= min(n/s^2, sqrt(n)/s) ||v||^2,
  // per bucket (the L2 norm is the bucket's). Checked on the Monte-Carlo mean + 4 SE.
  constexpr int kSeeds = 2000;
  const std::size_t n = 137, bucket = 50;  // buckets of 50, 50, 37
  const auto x = test_gradient(n, 33);
  for (int bits : {2, 3, 4, 6}) {
    const auto codec = make_codec("qsgd:bits=" + std::to_string(bits) + ",bucket=50,norm=l2");
    const double s = (1 << (bits - 1)) - 1;
    const std::size_t nb = (n + bucket - 1) / bucket;
    std::vector<double> e1(nb, 0.0), e2(nb, 0.0);
    std::vector<float> y(n);
    for (int k = 0; k < kSeeds; ++k) {
      const auto msg = codec->encode(x.data(), n, SeedContext{static_cast<std::uint64_t>(k), 0, 0, 0});
      ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), n).ok());
      for (std::size_t b = 0; b < nb; ++b) {
        double err = 0.0;
        for (std::size_t i = b * bucket; i < std::min(n, (b + 1) * bucket); ++i) {
          err += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
        }
        e1[b] += err;
        e2[b] += err * err;
      }
    }
    for (std::size_t b = 0; b < nb; ++b) {
      const std::size_t m = std::min(n, (b + 1) * bucket) - b * bucket;
      double norm2 = 0.0;
      for (std::size_t i = b * bucket; i < b * bucket + m; ++i) norm2 += static_cast<double>(x[i]) * x[i];
      const double bound = std::min(m / (s * s), std::sqrt(static_cast<double>(m)) / s) * norm2;
      const double mean = e1[b] / kSeeds;
      const double se = std::sqrt(std::max(0.0, e2[b] / kSeeds - mean * mean) / kSeeds);
      EXPECT_LE(mean, bound + 4 * se) << "bits " << bits << " bucket " << b;
      EXPECT_GT(mean, 0.0) << "bits " << bits << " bucket " << b;
    }
  }
}

}  // namespace
}  // namespace gradzip::quant
