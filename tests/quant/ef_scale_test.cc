// Safe error feedback for unbiased codecs (Stich & Karimireddy 2020; Richtarik et al. 2021):
// each unbiased codec states its variance factor omega (quant/registry.h VarianceBound),
// an "ef" memory over one is scaled by 1/(1+omega) unless the spec says otherwise, the
// canonical spec records the scale and parses back, and the scaled compressor is
// contractive where the unscaled one is not.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "quant/memory/memories.h"
#include "quant/registry.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

using namespace codec_testing;  // NOLINT(google-build-using-namespace): test helpers

TEST(VarianceFactor, StatedPerCodec) {
  // QSGD Lemma 3.1: min(d/s^2, sqrt(d)/s), d = bucket, s = 2^(bits-1)-1.
  EXPECT_DOUBLE_EQ(variance_factor(*make_codec("qsgd:bits=4,bucket=512")), std::sqrt(512.0) / 7.0);
  EXPECT_DOUBLE_EQ(variance_factor(*make_codec("qsgd:bits=8,bucket=64,norm=max")), 64.0 / (127.0 * 127.0));
  EXPECT_DOUBLE_EQ(variance_factor(*make_codec("terngrad:bucket=16")), 4.0);
  EXPECT_DOUBLE_EQ(variance_factor(*make_codec("natural")), 0.125);
  EXPECT_DOUBLE_EQ(variance_factor(*make_codec("randk:ratio=0.25,scale=true")), 3.0);
  EXPECT_TRUE(std::isnan(variance_factor(*make_codec("randk:k=4,scale=true"))));
  EXPECT_DOUBLE_EQ(variance_factor(*make_codec("zipml:bits=2,bucket=900")), 50.0);
  // Biased codecs (and biased settings of unbiased ones): -1.
  for (const char* spec : {"identity", "fp16", "topk", "scaled-sign", "terngrad:clip=2.5", "randk:ratio=0.1", "dgc"}) {
    EXPECT_EQ(variance_factor(*make_codec(spec)), -1.0) << spec;
  }
  // `gradzip compressors` states it.
  const std::string text = describe_registry();
  EXPECT_NE(text.find("omega (unbiased; E||C(x)-x||^2 <= omega ||x||^2): min(bucket/s^2, sqrt(bucket)/s)"),
            std::string::npos);
}

TEST(VarianceFactor, BoundsTheMeasuredVariance) {
  // E||C(x) - x||^2 <= omega ||x||^2 for every unbiased spec with a bound (Monte Carlo
  // mean over 400 seeds; a small bucket so the bound is not loose by orders of magnitude).
  const auto x = test_gradient(300, 8);
  double norm2 = 0.0;
  for (float v : x) norm2 += static_cast<double>(v) * v;
  for (const char* spec : {"qsgd:bits=2,bucket=30", "qsgd:bits=3,bucket=30,norm=max", "terngrad:bucket=30", "natural",
                           "randk:ratio=0.2,scale=true", "zipml:bits=1,bucket=30", "zipml:bits=2,bucket=30"}) {
    SCOPED_TRACE(spec);
    const auto codec = make_codec(spec);
    const double omega = variance_factor(*codec);
    ASSERT_GE(omega, 0.0);
    // randk's bound is an equality (E = (n/k - 1)||x||^2): the mean is compared with 4 SE.
    constexpr int kSeeds = 400;
    double s1 = 0.0, s2 = 0.0;
    std::vector<float> y(x.size());
    for (int k = 0; k < kSeeds; ++k) {
      const auto msg = codec->encode(x.data(), x.size(), SeedContext{static_cast<std::uint64_t>(k), 2, 0, 1});
      ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
      double err = 0.0;
      for (std::size_t i = 0; i < x.size(); ++i) err += (static_cast<double>(y[i]) - x[i]) * (y[i] - x[i]);
      s1 += err;
      s2 += err * err;
    }
    const double mean = s1 / kSeeds;
    const double se = std::sqrt(std::max(0.0, s2 / kSeeds - mean * mean) / kSeeds);
    EXPECT_LE(mean - 4 * se, omega * norm2);
  }
}

TEST(SafeEf, AutoScaleOverUnbiasedCodecsAndSpecRoundTrips) {
  const Compressor q = make_compressor("ef+qsgd:bits=4");
  const float want = static_cast<float>(1.0 / (1.0 + std::sqrt(512.0) / 7.0));
  EXPECT_EQ(q.memory->spec(), "ef:scale=" + ef_scale_text(want));
  EXPECT_EQ(make_compressor(q.spec()).spec(), q.spec());
  // The same through --memory, and with scale=auto spelled out.
  EXPECT_EQ(make_compressor("qsgd:bits=4", "ef").spec(), q.spec());
  EXPECT_EQ(make_compressor("ef:scale=auto+qsgd:bits=4").spec(), q.spec());
  // An explicit scale wins, 1 included (the unscaled EF the issue reported diverging).
  EXPECT_EQ(make_compressor("ef:scale=1+qsgd:bits=4").memory->spec(), "ef:scale=1");
  EXPECT_EQ(make_compressor("ef:scale=0.5+qsgd:bits=4").memory->spec(), "ef:scale=0.5");
  EXPECT_EQ(make_compressor(make_compressor("ef:scale=1+qsgd").spec()).spec(), make_compressor("ef:scale=1+qsgd").spec());
  // Biased codecs keep plain EF, and the memory alone (no codec) is unscaled.
  EXPECT_EQ(make_compressor("ef+topk:ratio=0.01").memory->spec(), "ef");
  EXPECT_EQ(make_compressor("ef+scaled-sign").memory->spec(), "ef");
  EXPECT_EQ(make_memory("ef")->spec(), "ef");
  // No size-independent omega: refused with the fix named.
  try {
    make_compressor("ef+randk:k=5,scale=true");
    FAIL() << "expected SpecError";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("ef:scale=<s>"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(make_compressor("ef:scale=0.1+randk:k=5,scale=true"));
  EXPECT_THROW(make_compressor("ef:scale=0+qsgd"), SpecError);
  EXPECT_THROW(make_compressor("ef:scale=2+qsgd"), SpecError);
}

/// One EF step: compensate, encode, decode, update; returns the decoded vector.
std::vector<float> ef_step(const Compressor& c, const std::vector<float>& g, MemoryState* st, std::uint64_t step) {
  std::vector<float> x(g.size()), y(g.size());
  c.memory->compensate(g.data(), x.data(), g.size(), st);
  const auto msg = c.codec->encode(x.data(), x.size(), SeedContext{5, step, 0, 0});
  EXPECT_TRUE(c.codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  c.memory->update(x.data(), y.data(), g.size(), st);
  return y;
}

TEST(SafeEf, ScaledInvariantAndUnscaledBitIdentical) {
  const auto g = test_gradient(777, 3);
  // Scaled: decoded + e' == g + e up to the rounding of x / s (an ulp of |g + e|) and of
  // the subtraction (an ulp of |x / s| + |decoded|).
  const Compressor c = make_compressor("ef+qsgd:bits=3,bucket=64");
  MemoryState st;
  for (std::uint64_t step = 0; step < 5; ++step) {
    const std::vector<float> e = st.residual.empty() ? std::vector<float>(g.size(), 0.0f) : st.residual;
    const auto y = ef_step(c, g, &st, step);
    for (std::size_t i = 0; i < g.size(); ++i) {
      const double p = static_cast<double>(g[i]) + e[i];
      EXPECT_NEAR(static_cast<double>(y[i]) + st.residual[i], p, 2.5e-7 * (2 * std::fabs(p) + std::fabs(y[i])) + 1e-30)
          << i;
    }
  }
  // scale=1 is the unscaled memory bit for bit: e' = (g + e) - decoded.
  const Compressor one = make_compressor("ef:scale=1+qsgd:bits=3,bucket=64");
  MemoryState a;
  for (std::uint64_t step = 0; step < 3; ++step) {
    const std::vector<float> e = a.residual.empty() ? std::vector<float>(g.size(), 0.0f) : a.residual;
    const auto y = ef_step(one, g, &a, step);
    for (std::size_t i = 0; i < g.size(); ++i) ASSERT_EQ(a.residual[i], (g[i] + e[i]) - y[i]) << i;
  }
}

TEST(SafeEf, ScaledQsgdIsContractiveWhereUnscaledIsNot) {
  // delta-contraction E||C(x) - x||^2 <= (1 - delta) ||x||^2 with delta = 1/(1+omega) for
  // C = U/(1+omega) (what the scaled memory sends for the scaled vector); the unscaled
  // QSGD l2 at 2 bits has E||U(x) - x||^2 > ||x||^2 on a dense vector: not contractive.
  const auto x = test_gradient(512, 14);
  const auto codec = make_codec("qsgd:bits=2,bucket=512");
  const double omega = variance_factor(*codec);
  const float s = static_cast<float>(1.0 / (1.0 + omega));
  double norm2 = 0.0;
  for (float v : x) norm2 += static_cast<double>(v) * v;
  std::vector<float> xs(x.size()), y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) xs[i] = x[i] * s;
  double scaled = 0.0, unscaled = 0.0;
  constexpr int kSeeds = 200;
  for (int k = 0; k < kSeeds; ++k) {
    const SeedContext ctx{static_cast<std::uint64_t>(k), 0, 0, 0};
    auto msg = codec->encode(xs.data(), xs.size(), ctx);
    ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
    for (std::size_t i = 0; i < x.size(); ++i) scaled += (static_cast<double>(y[i]) - x[i]) * (y[i] - x[i]);
    msg = codec->encode(x.data(), x.size(), ctx);
    ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
    for (std::size_t i = 0; i < x.size(); ++i) unscaled += (static_cast<double>(y[i]) - x[i]) * (y[i] - x[i]);
  }
  EXPECT_LE(scaled / kSeeds, (1.0 - 1.0 / (1.0 + omega)) * norm2);
  EXPECT_GT(unscaled / kSeeds, norm2);
}

}  // namespace
}  // namespace gradzip::quant
