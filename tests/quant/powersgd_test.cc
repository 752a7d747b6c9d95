// PowerSGD (quant/powersgd.h): the plan of each tensor shape, rank-r reproduction of a
// matrix of rank <= r, the error-feedback invariant, equality with a plain double
// reference, a simulated 4-rank run with the reductions done by the test, checkpoint
// images, and typed errors for misuse and corrupt images.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <vector>

#include "quant/powersgd.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant {
namespace {

PowerSgdPlan plan_of(std::vector<std::int64_t> shape, std::uint32_t rank = 4, std::uint64_t min_numel = 64) {
  PowerSgdPlan p;
  EXPECT_TRUE(plan_powersgd(shape, PowerSgdConfig{rank, min_numel}, &p).ok());
  return p;
}

/// One step of one rank without an engine: the reductions are the identity.
std::vector<float> single_step(PowerSgdState* s, const std::vector<float>& grad) {
  std::vector<float> p(s->p_numel()), q(s->q_numel()), approx(grad.size());
  EXPECT_TRUE(s->compute_p(grad.data(), p.data()).ok());
  EXPECT_TRUE(s->set_reduced_p(p.data()).ok());
  EXPECT_TRUE(s->compute_q(q.data()).ok());
  EXPECT_TRUE(s->set_reduced_q(q.data()).ok());
  EXPECT_TRUE(s->finish(approx.data()).ok());
  return approx;
}

/// rows x cols matrix of rank k: sum of k outer products of Gaussian vectors.
std::vector<float> low_rank(std::size_t rows, std::size_t cols, std::size_t k, std::uint32_t seed) {
  std::vector<float> m(rows * cols, 0.0f);
  for (std::size_t t = 0; t < k; ++t) {
    const auto a = testing::gaussian(rows, seed + 2 * static_cast<std::uint32_t>(t));
    const auto b = testing::gaussian(cols, seed + 2 * static_cast<std::uint32_t>(t) + 1);
    for (std::size_t i = 0; i < rows; ++i) {
      for (std::size_t j = 0; j < cols; ++j) m[i * cols + j] += a[i] * b[j];
    }
  }
  return m;
}

double frobenius(const std::vector<float>& a) {
  double s = 0.0;
  for (float v : a) s += static_cast<double>(v) * v;
  return std::sqrt(s);
}

double distance(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return std::sqrt(s);
}

TEST(PowerSgdPlan, BiasesSmallAndUnprofitableTensorsGoDense) {
  EXPECT_FALSE(plan_of({512}).compressed) << "1-D bias";
  EXPECT_FALSE(plan_of({4, 4}).compressed) << "below min_numel";
  EXPECT_FALSE(plan_of({10, 10}, 8).compressed) << "8 * (10 + 10) >= 100: no saving";
  const PowerSgdPlan conv = plan_of({64, 64, 3, 3});
  EXPECT_TRUE(conv.compressed);
  EXPECT_EQ(conv.rows, 64u);
  EXPECT_EQ(conv.cols, 576u);
  EXPECT_EQ(conv.rank, 4u);
  EXPECT_EQ(conv.floats_per_step(), 4u * (64 + 576));
  EXPECT_EQ(plan_of({512}).floats_per_step(), 512u);
  EXPECT_FALSE(plan_of({3, 1000}, 8).compressed) << "rank >= min(rows, cols) never saves bytes";
  PowerSgdPlan p;
  EXPECT_EQ(plan_powersgd({}, PowerSgdConfig{}, &p).code(), Errc::kInvalidArgument);
  EXPECT_EQ(plan_powersgd({4, 0}, PowerSgdConfig{}, &p).code(), Errc::kInvalidArgument);
  EXPECT_EQ(plan_powersgd({64, 64}, PowerSgdConfig{0, 1}, &p).code(), Errc::kInvalidArgument);
  EXPECT_THROW(PowerSgdState(plan_of({512}), 1, 0), QuantError);
}

TEST(PowerSgd, ReproducesMatrixOfRankAtMostR) {
  for (std::size_t k : {1, 3, 4}) {
    const std::size_t rows = 67, cols = 45;
    const auto m = low_rank(rows, cols, k, 10 + static_cast<std::uint32_t>(k));
    PowerSgdState s(plan_of({67, 45}), 5, 0);
    const auto approx = single_step(&s, m);
    EXPECT_LT(distance(approx, m), 1e-5 * frobenius(m)) << "rank " << k << " after one step";
    EXPECT_LT(frobenius(s.residual()), 1e-5 * frobenius(m));
  }
}

TEST(PowerSgd, ErrorFeedbackInvariantHoldsEveryStep) {
  const std::size_t rows = 33, cols = 70;
  PowerSgdState s(plan_of({33, 70}, 2), 1, 3);
  for (std::uint32_t t = 0; t < 5; ++t) {
    const auto g = testing::gaussian(rows * cols, 100 + t);
    const auto before = s.residual();
    const auto approx = single_step(&s, g);
    for (std::size_t i = 0; i < g.size(); ++i) {
      const float compensated = g[i] + before[i];
      ASSERT_NEAR(s.residual()[i] + approx[i], compensated, 1e-6f * (1.0f + std::fabs(compensated)))
          << "step " << t << " element " << i;
    }
  }
  EXPECT_EQ(s.steps(), 5u);
}

/// PowerSGD in double with classical Gram-Schmidt, from the same initial Q (read from a
/// state image of a fresh state): the textbook algorithm, for comparison.
struct Reference {
  std::size_t rows, cols, r;
  std::vector<double> q, e;
  std::vector<double> step(const std::vector<float>& g) {
    std::vector<double> m(rows * cols), p(rows * r, 0.0), approx(rows * cols, 0.0);
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = g[i] + e[i];
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t k = 0; k < r; ++k)
        for (std::size_t j = 0; j < cols; ++j) p[k * rows + i] += m[i * cols + j] * q[k * cols + j];
    for (std::size_t k = 0; k < r; ++k) {
      for (std::size_t l = 0; l < k; ++l) {
        double d = 0.0;
        for (std::size_t i = 0; i < rows; ++i) d += p[l * rows + i] * p[k * rows + i];
        for (std::size_t i = 0; i < rows; ++i) p[k * rows + i] -= d * p[l * rows + i];
      }
      double n = 0.0;
      for (std::size_t i = 0; i < rows; ++i) n += p[k * rows + i] * p[k * rows + i];
      for (std::size_t i = 0; i < rows; ++i) p[k * rows + i] /= std::sqrt(n);
    }
    std::fill(q.begin(), q.end(), 0.0);
    for (std::size_t k = 0; k < r; ++k)
      for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < cols; ++j) q[k * cols + j] += m[i * cols + j] * p[k * rows + i];
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < cols; ++j) {
        for (std::size_t k = 0; k < r; ++k) approx[i * cols + j] += p[k * rows + i] * q[k * cols + j];
        e[i * cols + j] = m[i * cols + j] - approx[i * cols + j];
      }
    return approx;
  }
};

std::vector<float> initial_q(const PowerSgdState& s) {
  std::vector<std::uint8_t> image;
  EXPECT_TRUE(s.state(&image).ok());
  std::vector<float> q(s.q_numel());
  std::memcpy(q.data(), image.data() + 36, 4 * q.size());  // after the 36-byte header
  return q;
}

TEST(PowerSgd, SingleRankEqualsDoubleReference) {
  const std::size_t rows = 40, cols = 90, r = 3;
  PowerSgdState s(plan_of({40, 90}, 3), 21, 7);
  const auto q0 = initial_q(s);
  Reference ref{rows, cols, r, std::vector<double>(q0.begin(), q0.end()), std::vector<double>(rows * cols, 0.0)};
  for (std::uint32_t t = 0; t < 4; ++t) {
    const auto g = testing::gaussian(rows * cols, 500 + t);
    const auto got = single_step(&s, g);
    const auto want = ref.step(g);
    double err = 0.0, norm = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      err += (got[i] - want[i]) * (got[i] - want[i]);
      norm += want[i] * want[i];
    }
    EXPECT_LT(std::sqrt(err), 1e-4 * std::sqrt(norm)) << "step " << t;
  }
}

TEST(PowerSgd, SimulatedFourRanksAgreeBitwiseAndApproximateTheMean) {
  const std::size_t ranks = 4, rows = 50, cols = 77;
  std::vector<PowerSgdState> states;
  for (std::size_t r = 0; r < ranks; ++r) states.emplace_back(plan_of({50, 77}), 13, 2);
  PowerSgdState of_mean(plan_of({50, 77}), 13, 2);  // one rank fed the mean gradient
  for (std::uint32_t t = 0; t < 3; ++t) {
    std::vector<std::vector<float>> g(ranks);
    std::vector<float> mean(rows * cols, 0.0f);
    for (std::size_t r = 0; r < ranks; ++r) {
      g[r] = low_rank(rows, cols, 2, 1000 + 10 * t + static_cast<std::uint32_t>(r));
      for (std::size_t i = 0; i < mean.size(); ++i) mean[i] += g[r][i] / static_cast<float>(ranks);
    }
    std::vector<float> psum(states[0].p_numel(), 0.0f), qmean(states[0].q_numel(), 0.0f), buf;
    for (std::size_t r = 0; r < ranks; ++r) {
      buf.assign(psum.size(), 0.0f);
      ASSERT_TRUE(states[r].compute_p(g[r].data(), buf.data()).ok());
      for (std::size_t i = 0; i < psum.size(); ++i) psum[i] += buf[i];
    }
    for (std::size_t r = 0; r < ranks; ++r) {
      ASSERT_TRUE(states[r].set_reduced_p(psum.data()).ok());
      buf.assign(qmean.size(), 0.0f);
      ASSERT_TRUE(states[r].compute_q(buf.data()).ok());
      for (std::size_t i = 0; i < qmean.size(); ++i) qmean[i] += buf[i] / static_cast<float>(ranks);
    }
    std::vector<std::vector<float>> approx(ranks, std::vector<float>(rows * cols));
    for (std::size_t r = 0; r < ranks; ++r) {
      ASSERT_TRUE(states[r].set_reduced_q(qmean.data()).ok());
      ASSERT_TRUE(states[r].finish(approx[r].data()).ok());
      EXPECT_EQ(approx[r], approx[0]) << "rank " << r << " step " << t;
    }
    // Linear steps: the 4-rank approximation is PowerSGD of the mean gradient.
    const auto single = single_step(&of_mean, mean);
    EXPECT_LT(distance(approx[0], single), 1e-4 * frobenius(single)) << "step " << t;
  }
}

TEST(PowerSgd, ZeroGradientDoesNotCollapseWarmStart) {
  const std::size_t rows = 30, cols = 40;
  PowerSgdState s(plan_of({30, 40}), 2, 0);
  single_step(&s, std::vector<float>(rows * cols, 0.0f));
  const auto m = low_rank(rows, cols, 2, 77);
  EXPECT_LT(distance(single_step(&s, m), m), 1e-5 * frobenius(m));
}

TEST(PowerSgdState, SaveRestoreContinuesIdentically) {
  const std::size_t rows = 24, cols = 31;
  PowerSgdState kept(plan_of({24, 31}), 4, 1), restored(plan_of({24, 31}), 4, 1);
  for (std::uint32_t t = 0; t < 3; ++t) single_step(&kept, testing::gaussian(rows * cols, t));
  std::vector<std::uint8_t> image = {0xAB};  // state() appends
  ASSERT_TRUE(kept.state(&image).ok());
  std::size_t used = 0;
  ASSERT_TRUE(restored.restore(image.data() + 1, image.size() - 1, &used).ok());
  EXPECT_EQ(used, image.size() - 1);
  EXPECT_EQ(restored.steps(), 3u);
  for (std::uint32_t t = 3; t < 6; ++t) {
    const auto g = testing::gaussian(rows * cols, t);
    EXPECT_EQ(single_step(&kept, g), single_step(&restored, g)) << "step " << t;
  }
  EXPECT_EQ(kept.residual(), restored.residual());
}

TEST(PowerSgdState, CorruptImagesAreTypedErrorsAndChangeNothing) {
  PowerSgdState s(plan_of({16, 20}), 4, 1);
  single_step(&s, testing::gaussian(320, 1));
  std::vector<std::uint8_t> image;
  ASSERT_TRUE(s.state(&image).ok());
  PowerSgdState target(plan_of({16, 20}), 4, 1);
  const auto fresh = target.residual();
  std::size_t used = 0;
  for (std::size_t cut = 0; cut < image.size(); cut += 37) {
    EXPECT_EQ(target.restore(image.data(), cut, &used).code(), Errc::kTruncated) << "cut " << cut;
  }
  auto bad = image;
  bad[0] ^= 1;
  EXPECT_EQ(target.restore(bad.data(), bad.size(), &used).code(), Errc::kBadMagic);
  bad = image;
  bad[4] = 2;
  EXPECT_EQ(target.restore(bad.data(), bad.size(), &used).code(), Errc::kBadVersion);
  PowerSgdState other_shape(plan_of({20, 16}), 4, 1);
  EXPECT_EQ(other_shape.restore(image.data(), image.size(), &used).code(), Errc::kSizeMismatch);
  bad = image;
  const float nan = NAN;
  std::memcpy(bad.data() + bad.size() - 4, &nan, 4);
  EXPECT_EQ(target.restore(bad.data(), bad.size(), &used).code(), Errc::kNonFiniteInput);
  EXPECT_EQ(target.residual(), fresh);
  EXPECT_EQ(target.steps(), 0u);
}

TEST(PowerSgdState, PhasesOutOfOrderAndNonFiniteInputAreTypedErrors) {
  PowerSgdState s(plan_of({16, 20}), 4, 1);
  std::vector<float> p(s.p_numel()), q(s.q_numel()), a(320), g = testing::gaussian(320, 2);
  EXPECT_EQ(s.compute_q(q.data()).code(), Errc::kInvalidArgument);
  EXPECT_EQ(s.finish(a.data()).code(), Errc::kInvalidArgument);
  EXPECT_EQ(s.set_reduced_p(p.data()).code(), Errc::kInvalidArgument);
  g[5] = INFINITY;
  EXPECT_EQ(s.compute_p(g.data(), p.data()).code(), Errc::kNonFiniteInput);
  EXPECT_EQ(s.residual(), std::vector<float>(320, 0.0f)) << "refused gradient leaves the residual";
  g[5] = 0.0f;
  ASSERT_TRUE(s.compute_p(g.data(), p.data()).ok());
  std::vector<std::uint8_t> image;
  EXPECT_EQ(s.state(&image).code(), Errc::kInvalidArgument) << "no image mid-step";
  p[0] = NAN;
  EXPECT_EQ(s.set_reduced_p(p.data()).code(), Errc::kNonFiniteInput);
}

}  // namespace
}  // namespace gradzip::quant
