// The aggregation-only modes of CollectiveTransport, ranks as threads over loopback Gloo:
// homomorphic THC equals the decode-then-sum reference computed here from quant/'s
// functions; PowerSGD keeps every replica bitwise identical with two allreduces a step;
// the state of both (THC's EF residual, PowerSGD's Q and residual) survives
// save_state/restore_state so that a resumed run ends bitwise like an unbroken one.
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
  std::vector<std::vector<std::uint8_t>> states;  ///< save_state() after the last step
  std::vector<std::string> errors;
};

/// Which steps a run takes, and what it starts from.
struct Leg {
  std::uint64_t first = 0, end = 0;  ///< steps [first, end)
  std::string checkpoint_dir;        ///< rank 0 checkpoints every `end` steps there (when set)
  std::uint64_t restore_step = 0;    ///< > 0: start from that checkpoint
  std::vector<std::vector<std::uint8_t>> restore;  ///< per rank: restore_state() images
};

/// R ranks, each a thread: identity messages of LSQ gradients through `mode` with `spec`.
Ranks run(const ModelSignature& sig, CollectiveMode mode, const std::string& spec, std::uint32_t R, const Leg& leg) {
  testing::TempDir dir;
  Ranks out;
  out.params.resize(R);
  out.counters.resize(R);
  out.states.resize(R);
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
        o.checkpoint_dir = leg.checkpoint_dir;
        o.checkpoint_every = leg.checkpoint_dir.empty() ? 0 : leg.end;
        o.restore_step = leg.restore_step;
        const std::size_t d = sig.total_numel();
        CollectiveTransport t(o);
        LsqProblem prob(d, kRows, w);
        testing::BucketEncoder enc("identity");
        std::vector<float> x = initial_params(d), g(d);
        t.connect(sig, w, x.data());
        if (!leg.restore.empty()) t.restore_state(leg.restore[w]);
        const Layout layout = make_layout(sig, o.placement);
        for (std::uint64_t step = leg.first; step < leg.end; ++step) {
          prob.gradient(x.data(), g.data());
          const auto msgs = enc.encode(layout, g.data(), step, w);
          std::vector<Handle> hs;
          for (std::uint32_t b = 0; b < msgs.size(); ++b) hs.push_back(t.push(step, b, msgs[b].data(), msgs[b].size()));
          for (auto h : hs) t.wait(h);
          t.wait(t.pull(step, x.data()));
        }
        out.params[w] = x;
        out.counters[w] = t.collective_counters();
        out.states[w] = t.save_state();
      } catch (const std::exception& e) {
        out.errors[w] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  return out;
}

Ranks train(const ModelSignature& sig, CollectiveMode mode, const std::string& spec, std::uint32_t R,
            std::uint64_t steps) {
  Leg leg;
  leg.end = steps;
  Ranks out = run(sig, mode, spec, R, leg);
  for (std::uint32_t r = 0; r < R; ++r) EXPECT_EQ(out.errors[r], "") << "rank " << r;
  return out;
}

/// A matrix big enough to be compressed, a dense bias, and a second matrix.
ModelSignature power_signature() {
  ModelSignature sig;
  sig.tensors = {{"conv.weight", {8, 2, 3, 3}, 144}, {"conv.bias", {8}, 8}, {"fc.weight", {10, 30}, 300}};
  sig.compressor_spec = "identity";
  return sig;
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
  const ModelSignature sig = power_signature();
  const std::uint64_t steps = 3;
  const auto got = train(sig, CollectiveMode::kPowerSgd, "powersgd:rank=2,min_numel=16", 3, steps);
  EXPECT_EQ(got.params[1], got.params[0]);
  EXPECT_EQ(got.params[2], got.params[0]);
  EXPECT_NE(got.params[0], initial_params(sig.total_numel()));
  EXPECT_EQ(got.counters[0].allreduce.calls, 2 * steps);
}

class AggregationState : public ::testing::TestWithParam<std::pair<CollectiveMode, std::string>> {};

TEST_P(AggregationState, RoundTripsAndAResumedRunEndsBitwiseLikeAnUnbrokenOne) {
  const auto [mode, spec] = GetParam();
  const ModelSignature sig = power_signature();
  const std::uint32_t R = 2;
  Leg whole;
  whole.end = 5;
  const Ranks unbroken = run(sig, mode, spec, R, whole);
  testing::TempDir ckpt;
  Leg first;
  first.end = 2;
  first.checkpoint_dir = ckpt.path.string();
  const Ranks a = run(sig, mode, spec, R, first);
  for (std::uint32_t r = 0; r < R; ++r) {
    ASSERT_EQ(unbroken.errors[r], "") << "rank " << r;
    ASSERT_EQ(a.errors[r], "") << "rank " << r;
    ASSERT_GT(a.states[r].size(), 16u) << "rank " << r << " saved no state";
  }
  // The residuals differ per rank: each rank keeps its own compression error.
  EXPECT_NE(a.states[0], a.states[1]);
  Leg second;
  second.first = 2;
  second.end = 5;
  second.checkpoint_dir = first.checkpoint_dir;
  second.restore_step = 2;
  second.restore = a.states;
  const Ranks b = run(sig, mode, spec, R, second);
  for (std::uint32_t r = 0; r < R; ++r) {
    ASSERT_EQ(b.errors[r], "") << "rank " << r;
    EXPECT_EQ(b.params[r], unbroken.params[r]) << "rank " << r;
    EXPECT_EQ(b.states[r], unbroken.states[r]) << "rank " << r;  // the state itself came back
  }
  // Without the state (fresh residual and Q) the same resume ends elsewhere: the
  // equality above depends on the restored state.
  second.restore.clear();
  const Ranks fresh = run(sig, mode, spec, R, second);
  ASSERT_EQ(fresh.errors[0], "");
  EXPECT_NE(fresh.params[0], unbroken.params[0]);
}

INSTANTIATE_TEST_SUITE_P(Modes, AggregationState,
                         ::testing::Values(std::make_pair(CollectiveMode::kPowerSgd, "powersgd:rank=2,min_numel=16"),
                                           std::make_pair(CollectiveMode::kHomomorphic, "ef+thc:levels=15")),
                         [](const auto& p) { return std::string(collective_mode_name(p.param.first)); });

TEST(CollectiveAlgos, AggregationStateImagesOfAnotherModeSizeOrLengthAreRefused) {
  const ModelSignature sig = power_signature();
  const auto power = train(sig, CollectiveMode::kPowerSgd, "powersgd:rank=2,min_numel=16", 1, 1);
  const auto thc = train(sig, CollectiveMode::kHomomorphic, "ef+thc:levels=15", 1, 1);
  const auto rank1 = train(sig, CollectiveMode::kPowerSgd, "powersgd:rank=1,min_numel=16", 1, 1);
  std::vector<std::uint8_t> cut = power.states[0];
  cut.resize(cut.size() - 4);
  const std::vector<std::pair<std::vector<std::uint8_t>, std::string>> bad = {
      {thc.states[0], "another aggregation"},
      {rank1.states[0], "rank 1"},
      {cut, "truncated"},
      {{}, "holds none"}};
  for (const auto& [image, why] : bad) {
    Leg leg;
    leg.restore = {image};
    const Ranks r = run(sig, CollectiveMode::kPowerSgd, "powersgd:rank=2,min_numel=16", 1, leg);
    EXPECT_NE(r.errors[0].find("aggregation state"), std::string::npos) << why << ": " << r.errors[0];
  }
  // Modes without state accept only an empty image.
  Leg leg;
  leg.restore = {power.states[0]};
  const Ranks r = run(sig, CollectiveMode::kAllgather, "", 1, leg);
  EXPECT_NE(r.errors[0].find("keeps none"), std::string::npos) << r.errors[0];
}

}  // namespace
}  // namespace gradzip::comm
