// Deterministic ties (issue 13 point 6): topk and dgc keep, among elements of equal |x|,
// those with the smaller index (topk.cc, dgc.cc "ties broken by the smaller index"), and
// +0 / -0 tie. Users of RAFT/CUB top-k ask for exactly this; the CUDA twins are held to the
// same order by tests/gpu/tie_order_test.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "quant/registry.h"

namespace gradzip::quant {
namespace {

/// Positions whose decoded value is not +-0 (the kept set; inputs here keep no zeros).
std::vector<std::size_t> kept(const std::string& spec, const std::vector<float>& x, std::uint64_t step = 0) {
  const auto codec = make_codec(spec);
  const auto msg = codec->encode(x.data(), x.size(), SeedContext{3, step, 1, 2});
  std::vector<float> y(x.size());
  EXPECT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (y[i] != 0.0f) out.push_back(i);
  }
  return out;
}

std::vector<std::size_t> iota(std::size_t from, std::size_t to) {
  std::vector<std::size_t> v;
  for (std::size_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

TEST(TieOrder, TopkKeepsTheSmallerIndexAmongEqualMagnitudes) {
  // All |x| equal, alternating signs: the first k positions.
  std::vector<float> x(1001);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = i % 2 ? -0.5f : 0.5f;
  EXPECT_EQ(kept("topk:k=7", x), iota(0, 7));
  EXPECT_EQ(kept("topk:ratio=0.1", x), iota(0, 101));
  // A tie at the cut: four 3s compete for the last two places of k = 3 after the 4.
  const std::vector<float> y = {1, 3, -3, 2, 4, 3, 1, -3};
  EXPECT_EQ(kept("topk:k=3", y), (std::vector<std::size_t>{1, 2, 4}));
  // +0 and -0 tie: k = 2 of {-0, +0, -0, +0} keeps indices 0 and 1 (a kept -0 decodes as
  // -0, an element not kept as +0).
  const auto codec = make_codec("topk:k=2");
  const std::vector<float> z = {-0.0f, 0.0f, -0.0f, 0.0f};
  const auto msg = codec->encode(z.data(), z.size(), SeedContext{});
  std::vector<float> out(4, 9.0f);
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), out.data(), out.size()).ok());
  EXPECT_TRUE(std::signbit(out[0]));   // kept: -0 at index 0
  EXPECT_FALSE(std::signbit(out[2]));  // not kept: -0 at index 2 written as +0
}

TEST(TieOrder, DgcKeepsTheSmallerIndexAmongEqualMagnitudes) {
  // Small bucket (exact top-k path) and a large one (sampled threshold: every sample is a
  // tie, the candidate set is everything, too many -> exact top-k): both the first k.
  for (std::size_t n : {std::size_t{1000}, std::size_t{40000}}) {
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = i % 3 ? 0.25f : -0.25f;
    const std::size_t k = static_cast<std::size_t>(std::ceil(0.01 * static_cast<double>(n)));
    EXPECT_EQ(kept("dgc:ratio=0.01", x), iota(0, k)) << "n=" << n;
  }
  // Distinct magnitudes above the cut, a tie at it: the smaller indices of the tie.
  std::vector<float> x(2000, 1.0f);
  x[1500] = 2.0f;
  x[1999] = 3.0f;
  const auto got = kept("dgc:ratio=0.005", x);  // k = 10: the 2 big ones and indices 0..7
  std::vector<std::size_t> want = iota(0, 8);
  want.push_back(1500);
  want.push_back(1999);
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace gradzip::quant
