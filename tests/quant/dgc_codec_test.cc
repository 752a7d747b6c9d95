// dgc codec: the kept count lies in [0.8, 1.25] x the target k on Gaussian and
// heavy-tailed inputs, the kept set is magnitude-closed (every kept |x| >= every dropped
// |x|), the warm-up schedule sets k, and the decoder checks the count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "quant/registry.h"
#include "quant/sparse.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant {
namespace {

/// Kept count of a dgc message (payload: u64 step, then the sparse block's u64 count).
std::uint64_t dgc_count(const std::vector<std::uint8_t>& msg) {
  return load_le<std::uint64_t>(msg.data() + kHeaderBytes + 24 + 8);
}

void expect_dgc_band(const std::vector<float>& x, const std::string& spec, std::uint64_t k, std::uint64_t step) {
  const auto codec = make_codec(spec);
  const SeedContext ctx{42, step, 1, 7};
  const auto msg = codec->encode(x.data(), x.size(), ctx);
  const std::uint64_t c = dgc_count(msg);
  EXPECT_GE(static_cast<double>(c), 0.8 * static_cast<double>(k)) << spec << " n=" << x.size();
  EXPECT_LE(static_cast<double>(c), 1.25 * static_cast<double>(k)) << spec << " n=" << x.size();
  std::vector<float> y(x.size());
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  float min_kept = INFINITY, max_dropped = 0.0f;
  std::uint64_t nonzero = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (y[i] != 0.0f) {
      ASSERT_EQ(y[i], x[i]);
      min_kept = std::min(min_kept, std::fabs(x[i]));
      ++nonzero;
    } else {
      max_dropped = std::max(max_dropped, std::fabs(x[i]));
    }
  }
  EXPECT_EQ(nonzero, c);  // inputs have no zeros
  EXPECT_GE(min_kept, max_dropped) << spec;
  EXPECT_EQ(codec->encode(x.data(), x.size(), ctx), msg);  // deterministic
}

struct DgcCase {
  std::size_t n;
  bool heavy;
};
class DgcDensity : public ::testing::TestWithParam<DgcCase> {};

TEST_P(DgcDensity, CountWithinBand) {
  const auto [n, heavy] = GetParam();
  const auto x = heavy ? testing::cauchy(n, 3) : testing::gaussian(n, 4);
  for (const double ratio : {0.001, 0.01}) {
    for (const double sample : {0.001, 0.01}) {
      const std::string spec = "dgc:ratio=" + std::to_string(ratio) + ",sample=" + std::to_string(sample);
      expect_dgc_band(x, spec, count_for_ratio(n, ratio), 0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Inputs, DgcDensity,
                         ::testing::Values(DgcCase{65537, false}, DgcCase{65537, true}, DgcCase{1000003, false},
                                           DgcCase{1000003, true}),
                         [](const auto& param_info) {
                           return "n" + std::to_string(param_info.param.n) +
                                  (param_info.param.heavy ? "_cauchy" : "_gaussian");
                         });

TEST(Dgc, MatchesReferenceImplementation) {
  // The documented rule, re-implemented naively, selects the same indices for several
  // seeds, sizes, densities, warm-up stages and inputs (Gaussian and Cauchy).
  for (const std::size_t n : {std::size_t{16385}, std::size_t{65537}, std::size_t{150001}}) {
    for (const bool heavy : {false, true}) {
      const auto x = heavy ? testing::cauchy(n, 77) : testing::gaussian(n, 78);
      for (const std::uint64_t seed : {1ull, 2ull}) {
        for (const std::uint64_t step : {0ull, 5ull}) {
          const SeedContext ctx{seed, step, 2, 9};
          const auto codec = make_codec("dgc:ratio=0.002,sample=0.001,warmup_steps=8");
          const auto msg = codec->encode(x.data(), n, ctx);
          std::vector<float> y(n);
          ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), n).ok());
          const auto want = testing::dgc_reference(x, 0.002, 0.001, 8, ctx);
          std::vector<std::uint64_t> got;
          for (std::size_t i = 0; i < n; ++i) {
            if (y[i] != 0.0f) got.push_back(i);
          }
          EXPECT_EQ(got, want) << "n=" << n << " heavy=" << heavy << " seed=" << seed << " step=" << step;
        }
      }
    }
  }
}

TEST(Dgc, WarmupScheduleSetsTheTarget) {
  const std::size_t n = 100003;
  const auto x = testing::gaussian(n, 12);
  const std::string spec = "dgc:ratio=0.001,warmup_steps=400";
  // Quarters of the warm-up: 25%, 6.25%, 1.5625%, 0.390625%; then the target.
  const double density[] = {0.25, 0.0625, 0.015625, 0.00390625};
  for (std::uint64_t step : {0, 99, 100, 250, 399}) {
    expect_dgc_band(x, spec, count_for_ratio(n, density[step / 100]), step);
  }
  expect_dgc_band(x, spec, count_for_ratio(n, 0.001), 400);
  expect_dgc_band(x, spec, count_for_ratio(n, 0.001), 100000);
  // A target above a warm-up stage's density wins over it.
  expect_dgc_band(x, "dgc:ratio=0.1,warmup_steps=4", count_for_ratio(n, 0.1), 3);
}

TEST(Dgc, SmallAndDegenerateInputsFallBackToExact) {
  for (const std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{33}, std::size_t{1000}, std::size_t{16384}}) {
    const auto x = testing::gaussian(n, 5);
    const std::uint64_t k = count_for_ratio(n, 0.01);
    const auto codec = make_codec("dgc:ratio=0.01");
    const auto msg = codec->encode(x.data(), n, {});
    EXPECT_EQ(dgc_count(msg), k);  // n <= 16384: exact top-k
    std::vector<float> y(n);
    ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), n).ok());
    for (auto i : testing::reference_topk(x, k)) EXPECT_EQ(y[i], x[i]);
  }
  // Mostly zeros: the sampled threshold is 0 and keeps everything -> exact fallback.
  std::vector<float> z(200003, 0.0f);
  for (std::size_t i = 0; i < z.size(); i += 4999) z[i] = 1.0f + static_cast<float>(i % 7);
  const auto codec = make_codec("dgc:ratio=0.001,sample=0.01");
  const auto msg = codec->encode(z.data(), z.size(), {});
  EXPECT_EQ(dgc_count(msg), count_for_ratio(z.size(), 0.001));
}

TEST(Dgc, NonFiniteInputRefusedAnywhere) {
  // dgc/topk/threshold detect NaN/Inf among the kept elements (they have the largest
  // keys): check positions the sample misses, on every selection path.
  for (const char* spec : {"dgc:ratio=0.001", "dgc:ratio=0.3", "topk:ratio=0.001", "threshold:tau=2"}) {
    for (const float bad : {NAN, INFINITY, -INFINITY}) {
      auto x = testing::gaussian(70001, 2);
      x[70000] = bad;
      const auto codec = make_codec(spec);
      std::vector<std::uint8_t> out(codec->max_encoded_bytes(x.size()));
      std::size_t bytes = 0;
      EXPECT_EQ(codec->encode(x.data(), x.size(), {}, out.data(), out.size(), &bytes).code(), Errc::kNonFiniteInput)
          << spec << " " << bad;
    }
  }
}

TEST(Dgc, DecoderChecksCountBand) {
  const auto x = testing::gaussian(5003, 1);
  const auto codec = make_codec("dgc:ratio=0.01");  // k = 51: band [41, 63]
  auto msg = codec->encode(x.data(), x.size(), {});
  std::vector<float> y(x.size());
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  // Claim a warm-up step in the payload: k becomes 25% and the count is out of band.
  auto m = msg;
  store_le<std::uint32_t>(m.data() + kHeaderBytes + 4, 100);       // warmup_steps = 100
  write_header(m.data(), CodecId::kDgc, m[7], x.size(), 24, m.size() - kHeaderBytes - 24);
  EXPECT_EQ(codec->decode(m.data(), m.size(), y.data(), y.size()).code(), Errc::kBadLength);
  m = msg;
  store_le<std::uint64_t>(m.data() + kHeaderBytes + 24, std::uint64_t{1} << 33);  // step beyond 2^32
  write_header(m.data(), CodecId::kDgc, m[7], x.size(), 24, m.size() - kHeaderBytes - 24);
  EXPECT_EQ(codec->decode(m.data(), m.size(), y.data(), y.size()).code(), Errc::kBadParams);
}

}  // namespace
}  // namespace gradzip::quant
