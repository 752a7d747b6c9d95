// The aggregation-only modes of CollectiveTransport, ranks as threads over loopback Gloo:
// homomorphic THC equals the decode-then-sum reference computed here from quant/'s
// functions; PowerSGD keeps every replica bitwise identical with two allreduces a step.
#include <gtest/gtest.h>

#include <thread>

#include "comm/collective_transport.h"
#include "quant/homomorphic.h"
#include "quant/registry.h"
#include "tests/comm/lsq.h"
#include "tests/comm/temp_dir.h"

namespace gradzip::comm {
namespace {

using testing::initial_params;
using testing::LsqProblem;
constexpr std::size_t kRows = 24;

struct Ranks {
  std::vector<std::vector<float>> params;
  std::vector<CollectiveCounters> counters;
  std::vector<std::string> errors;
};

/// R ranks, each a thread: identity messages of LSQ gradients through `mode` with `spec`.
Ranks train(const ModelSignature& sig, CollectiveMode mode, const std::string& spec, std::uint32_t R,
            std::uint64_t steps) {
  testing::TempDir dir;
  Ranks out;
  out.params.resize(R);
  out.counters.resize(R);
  out.errors.assign(R, "");
  std::vector<std::thread> threads;
  for (std::uint32_t w = 0; w < R; ++w) {
    threads.emplace_back([&, w] {
      try {
        CollectiveTransportOptions o;
        o.mode = mode;
        o.aggregation_spec = spec;
        o.collective.rank = w;
        o.collective.size = R;
        o.collective.store_dir = dir / "store";
        o.collective.timeout_s = 20;
        o.placement.bucket_bytes = 4 * 64;
        o.optimizer.lr = 0.1;
        const std::size_t d = sig.total_numel();
        CollectiveTransport t(o);
        LsqProblem prob(d, kRows, w);
        testing::BucketEncoder enc("identity");
        std::vector<float> x = initial_params(d), g(d);
        t.connect(sig, w, x.data());
        const Layout layout = make_layout(sig, o.placement);
        for (std::uint64_t step = 0; step < steps; ++step) {
          prob.gradient(x.data(), g.data());
          const auto msgs = enc.encode(layout, g.data(), step, w);
          std::vector<Handle> hs;
          for (std::uint32_t b = 0; b < msgs.size(); ++b) hs.push_back(t.push(step, b, msgs[b].data(), msgs[b].size()));
          for (auto h : hs) t.wait(h);
          t.wait(t.pull(step, x.data()));
        }
        out.params[w] = x;
        out.counters[w] = t.collective_counters();
      } catch (const std::exception& e) {
        out.errors[w] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (std::uint32_t r = 0; r < R; ++r) EXPECT_EQ(out.errors[r], "") << "rank " << r;
  return out;
}

TEST(CollectiveAlgos, HomomorphicStepEqualsDecodeThenSumReference) {
  const ModelSignature sig = testing::lsq_signature();
  const std::uint32_t R = 3;
  const auto got = train(sig, CollectiveMode::kHomomorphic, "thc:levels=100", R, 1);
  // One step by hand: each bucket's scale is the max over the ranks, each rank's codes
  // are drawn with its own seed context, the int32 sum decoded with weight 1/R.
  const std::size_t d = sig.total_numel();
  PlacementOptions placement;
  placement.bucket_bytes = 4 * 64;
  const Layout layout = make_layout(sig, placement);
  std::vector<std::vector<float>> g(R, std::vector<float>(d));
  const std::vector<float> x0 = initial_params(d);
  for (std::uint32_t r = 0; r < R; ++r) LsqProblem(d, kRows, r).gradient(x0.data(), g[r].data());
  std::vector<float> mean(d);
  for (const Bucket& b : layout.buckets) {
    float scale = 0;
    for (std::uint32_t r = 0; r < R; ++r) {
      float s = 0;
      ASSERT_TRUE(quant::homomorphic::local_max_abs(g[r].data() + b.offset, b.numel, &s).ok());
      scale = std::max(scale, s);
    }
    std::vector<std::int32_t> sum(b.numel, 0), codes(b.numel);
    for (std::uint32_t r = 0; r < R; ++r) {
      ASSERT_TRUE(quant::homomorphic::encode_local<std::int32_t>(g[r].data() + b.offset, b.numel, scale, 100,
                                                                 {1, 0, r, b.id}, codes.data())
                      .ok());
      for (std::size_t i = 0; i < b.numel; ++i) sum[i] += codes[i];
    }
    ASSERT_TRUE(quant::homomorphic::decode_sum<std::int32_t>(sum.data(), b.numel, scale, 100, 1.0f / R,
                                                             mean.data() + b.offset)
                    .ok());
  }
  std::vector<float> want = x0;
  OptimizerOptions opt;
  opt.lr = 0.1;
  sgd_step(opt, 0, want.data(), mean.data(), nullptr, d);
  for (std::uint32_t r = 0; r < R; ++r) EXPECT_EQ(got.params[r], want) << "rank " << r;
}

TEST(CollectiveAlgos, HomomorphicSumsInTheNarrowestSafeInteger) {
  const ModelSignature sig = testing::lsq_signature();
  // 2 ranks x 63 levels fit int8: one byte per element in the allreduce.
  const auto narrow = train(sig, CollectiveMode::kHomomorphic, "thc:levels=63", 2, 2);
  const auto wide = train(sig, CollectiveMode::kHomomorphic, "thc:levels=127", 2, 2);
  EXPECT_EQ(narrow.params[0], narrow.params[1]);
  EXPECT_LT(narrow.counters[0].allreduce.sent_bytes, wide.counters[0].allreduce.sent_bytes);
}

TEST(CollectiveAlgos, PowerSgdKeepsReplicasIdenticalWithTwoAllreducesPerStep) {
  ModelSignature sig;
  sig.tensors = {{"conv.weight", {8, 2, 3, 3}, 144}, {"conv.bias", {8}, 8}, {"fc.weight", {10, 30}, 300}};
  sig.compressor_spec = "identity";
  const std::uint64_t steps = 3;
  const auto got = train(sig, CollectiveMode::kPowerSgd, "powersgd:rank=2,min_numel=16", 3, steps);
  EXPECT_EQ(got.params[1], got.params[0]);
  EXPECT_EQ(got.params[2], got.params[0]);
  EXPECT_NE(got.params[0], initial_params(sig.total_numel()));
  EXPECT_EQ(got.counters[0].allreduce.calls, 2 * steps);
}

}  // namespace
}  // namespace gradzip::comm
