// dgc memory: momentum correction against a hand-computed 3-step example, local
// clipping, momentum factor masking, and the invariants decoded + v == compensated and
// u == 0 where sent.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "quant/registry.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant {
namespace {

/// One worker step: compensate, encode, decode, update. Returns the decoded vector.
std::vector<float> step(const Compressor& c, const std::vector<float>& g, std::uint64_t t, MemoryState* st) {
  std::vector<float> p(g.size());
  c.memory->compensate(g.data(), p.data(), g.size(), st);
  const auto msg = c.codec->encode(p.data(), p.size(), SeedContext{7, t, 0, 0});
  std::vector<float> d(g.size());
  EXPECT_TRUE(c.codec->decode(msg.data(), msg.size(), d.data(), d.size()).ok());
  c.memory->update(p.data(), d.data(), d.size(), st);
  return d;
}

TEST(DgcMemory, MomentumCorrectionHandComputed) {
  // m = 0.5, top-1 of 3 elements. Hand computation (all values exact in binary):
  //  t=1 g=[1,-2,.5]:  u=[1,-2,.5]      v=[1,-2,.5]        send idx1 -2 -> v=[1,0,.5]   u=[1,0,.5]
  //  t=2 g=[.5,1,-1]:  u=[1,1,-.75]     v=[2,1,-.25]       send idx0  2 -> v=[0,1,-.25] u=[0,1,-.75]
  //  t=3 g=[1,.25,-.5]: u=[1,.75,-.875] v=[1,1.75,-1.125]  send idx1 1.75 -> v=[1,0,-1.125] u=[1,0,-.875]
  const Compressor c = make_compressor("topk:k=1", "dgc:momentum=0.5");
  MemoryState st;
  EXPECT_EQ(step(c, {1.0f, -2.0f, 0.5f}, 1, &st), (std::vector<float>{0, -2.0f, 0}));
  EXPECT_EQ(st.residual, (std::vector<float>{1.0f, 0.0f, 0.5f}));
  EXPECT_EQ(st.momentum, (std::vector<float>{1.0f, 0.0f, 0.5f}));
  EXPECT_EQ(step(c, {0.5f, 1.0f, -1.0f}, 2, &st), (std::vector<float>{2.0f, 0, 0}));
  EXPECT_EQ(st.residual, (std::vector<float>{0.0f, 1.0f, -0.25f}));
  EXPECT_EQ(st.momentum, (std::vector<float>{0.0f, 1.0f, -0.75f}));
  EXPECT_EQ(step(c, {1.0f, 0.25f, -0.5f}, 3, &st), (std::vector<float>{0, 1.75f, 0}));
  EXPECT_EQ(st.residual, (std::vector<float>{1.0f, 0.0f, -1.125f}));
  EXPECT_EQ(st.momentum, (std::vector<float>{1.0f, 0.0f, -0.875f}));
  EXPECT_EQ(st.steps, 3u);
}

TEST(DgcMemory, LocalClippingByL2Norm) {
  const auto mem = make_memory("dgc:momentum=0,clip=1");
  MemoryState st;
  std::vector<float> g = {3.0f, -4.0f, 0.0f}, p(3);
  mem->compensate(g.data(), p.data(), 3, &st);  // ||g|| = 5 > 1: scaled by 1/5
  EXPECT_FLOAT_EQ(p[0], 0.6f);
  EXPECT_FLOAT_EQ(p[1], -0.8f);
  EXPECT_EQ(p[2], 0.0f);
  const auto loose = make_memory("dgc:momentum=0,clip=5.5");
  MemoryState st2;
  loose->compensate(g.data(), p.data(), 3, &st2);  // under the threshold: unchanged
  EXPECT_EQ(p, g);
}

TEST(DgcMemory, InvariantsAcrossSteps) {
  // Sparse dgc codec with lossy fp16 values: v keeps the rounding error, u is masked
  // exactly where something was sent.
  const Compressor c = make_compressor("dgc:ratio=0.01,values=fp16", "dgc:momentum=0.9,clip=50");
  const std::size_t n = 20011;
  MemoryState st;
  for (std::uint64_t t = 0; t < 6; ++t) {
    const auto g = testing::gaussian(n, static_cast<std::uint32_t>(100 + t));
    std::vector<float> p(n);
    c.memory->compensate(g.data(), p.data(), n, &st);
    const std::vector<float> u_before_mask = st.momentum;
    const auto msg = c.codec->encode(p.data(), n, SeedContext{1, t, 0, 0});
    std::vector<float> d(n);
    ASSERT_TRUE(c.codec->decode(msg.data(), msg.size(), d.data(), n).ok());
    c.memory->update(p.data(), d.data(), n, &st);
    std::size_t sent = 0;
    for (std::size_t i = 0; i < n; ++i) {
      // decoded + v == compensated, within one rounding of the subtraction.
      EXPECT_NEAR(d[i] + st.residual[i], p[i], 1e-6f * std::fabs(p[i])) << "t=" << t << " i=" << i;
      if (d[i] != 0.0f) {
        ++sent;
        EXPECT_EQ(st.momentum[i], 0.0f);
        EXPECT_LE(std::fabs(st.residual[i]), std::fabs(p[i]) / 1024.0f);  // fp16 rounding error only
      } else {
        EXPECT_EQ(st.momentum[i], u_before_mask[i]);
        EXPECT_EQ(st.residual[i], p[i]);
      }
    }
    EXPECT_GE(sent, 160u);  // 0.8 * 201
    EXPECT_LE(sent, 252u);  // 1.25 * 201
  }
}

TEST(DgcMemory, NoMomentumIsResidualErrorFeedback) {
  // m = 0, no clipping: sum of decoded over steps + final v == sum of gradients.
  const Compressor c = make_compressor("topk:ratio=0.05", "dgc:momentum=0");
  const std::size_t n = 1009;
  MemoryState st;
  std::vector<double> sent(n, 0.0), total(n, 0.0);
  for (std::uint64_t t = 0; t < 8; ++t) {
    const auto g = testing::gaussian(n, static_cast<std::uint32_t>(t));
    const auto d = step(c, g, t, &st);
    for (std::size_t i = 0; i < n; ++i) {
      sent[i] += d[i];
      total[i] += g[i];
    }
  }
  for (std::size_t i = 0; i < n; ++i) EXPECT_NEAR(sent[i] + st.residual[i], total[i], 1e-5) << i;
  EXPECT_EQ(c.memory->spec(), "dgc:momentum=0,clip=0");
}

}  // namespace
}  // namespace gradzip::quant
