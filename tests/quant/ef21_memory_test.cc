// ef21 memory: g_i += decoded exactly, g_i contracts towards a fixed gradient at the
// rate sqrt(1 - k/n) under top-k, and a receiver that follows the documented contract
// (g += mean of decoded increments, never reset) holds exactly the mean of the workers' g_i.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "quant/registry.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant {
namespace {

double l2_distance(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return std::sqrt(s);
}

TEST(Ef21Memory, IncrementAndContraction) {
  const Compressor c = make_compressor("topk:ratio=0.1", "ef21");
  const std::size_t n = 1003;
  const auto grad = testing::gaussian(n, 31);
  const double alpha = static_cast<double>(count_for_ratio(n, 0.1)) / static_cast<double>(n);
  MemoryState st;
  double dist = l2_distance(std::vector<float>(n, 0.0f), grad);  // g_i^0 = 0
  for (int t = 0; t < 12; ++t) {
    std::vector<float> p(n), d(n);
    const std::vector<float> g_old = st.residual.empty() ? std::vector<float>(n, 0.0f) : st.residual;
    c.memory->compensate(grad.data(), p.data(), n, &st);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], grad[i] - g_old[i]);
    const auto msg = c.codec->encode(p.data(), n, {});
    ASSERT_TRUE(c.codec->decode(msg.data(), msg.size(), d.data(), n).ok());
    c.memory->update(p.data(), d.data(), n, &st);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(st.residual[i], g_old[i] + d[i]);
    const double next = l2_distance(st.residual, grad);
    EXPECT_LE(next, std::sqrt(1.0 - alpha) * dist * (1.0 + 1e-6) + 1e-6) << "t=" << t;
    dist = next;
  }
  EXPECT_EQ(st.steps, 12u);
}

TEST(Ef21Memory, ReceiverContractTracksMeanEstimate) {
  // Three workers with different, changing gradients; the receiver never resets g.
  const Compressor c = make_compressor("topk:ratio=0.05", "ef21");
  const std::size_t n = 2011, workers = 3;
  std::vector<MemoryState> st(workers);
  std::vector<float> server(n, 0.0f);
  for (std::uint64_t t = 0; t < 5; ++t) {
    for (std::size_t w = 0; w < workers; ++w) {
      const auto grad = testing::gaussian(n, static_cast<std::uint32_t>(100 * t + w));
      std::vector<float> p(n), d(n);
      c.memory->compensate(grad.data(), p.data(), n, &st[w]);
      const auto msg = c.codec->encode(p.data(), n, {});
      ASSERT_TRUE(c.codec->decode(msg.data(), msg.size(), d.data(), n).ok());
      c.memory->update(p.data(), d.data(), n, &st[w]);
      ASSERT_TRUE(decode_add_any(msg.data(), msg.size(), server.data(), n, 1.0f / workers).ok());
    }
    for (std::size_t i = 0; i < n; ++i) {
      const double mean = (static_cast<double>(st[0].residual[i]) + st[1].residual[i] + st[2].residual[i]) / workers;
      EXPECT_NEAR(server[i], mean, 1e-5 * (1.0 + std::fabs(mean))) << "t=" << t << " i=" << i;
    }
  }
  EXPECT_EQ(make_memory("ef21")->spec(), "ef21");
}

}  // namespace
}  // namespace gradzip::quant
