// In-process transport end to end: real Shards and RequestClients exchanging wire
// bytes, one thread per worker, on a least-squares problem.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <thread>

#include "comm/inproc.h"
#include "comm/optimizer.h"
#include "tests/comm/inproc_train.h"

namespace gradzip::comm {
namespace {

using namespace testing;  // NOLINT: the helpers of these tests

TEST(Inproc, SyncIdentityEqualsSingleProcessReference) {
  const auto sig = lsq_signature();
  PlacementOptions place;
  place.num_shards = 2;
  place.bucket_bytes = 4 * 40;
  ShardOptions so;
  so.optimizer = test_optimizer();
  InprocCluster cluster(sig, place, so, 4);
  const std::uint64_t steps = 6;
  const auto res = train(cluster, 4, steps, "identity");

  // Reference: one process, averaged gradient, same optimizer.
  const std::vector<float> x = sync_reference(sig, 4, steps, so.optimizer);
  EXPECT_LE(rel_diff(cluster.gather_params(), x), 1e-6);
  for (const auto& wp : res.worker_params) EXPECT_LE(rel_diff(wp, x), 1e-6);
  EXPECT_GT(res.first_loss[0], 0.0);
  for (std::uint32_t s = 0; s < 2; ++s) {
    const auto st = cluster.shard_stats(s);
    EXPECT_EQ(st.version, steps);
    EXPECT_EQ(st.refused, 0u);
    EXPECT_GT(st.total.up.payload_bytes, 4 * steps * cluster.layout().shard_numel[s]);
  }
}

TEST(Inproc, EveryPlacementStrategyRoundTripsAllParameters) {
  for (auto strategy :
       {PlacementStrategy::kRoundRobin, PlacementStrategy::kGreedyBytes, PlacementStrategy::kPartitioned}) {
    const auto sig = lsq_signature({37, 5, 100, 1, 64, 13, 211});
    PlacementOptions place;
    place.num_shards = 3;
    place.strategy = strategy;
    place.bucket_bytes = 4 * 50;
    place.partition_bytes = 4 * 30;
    InprocCluster cluster(sig, place, ShardOptions{}, 2);
    std::vector<float> init(sig.total_numel());
    for (std::size_t i = 0; i < init.size(); ++i) init[i] = 0.5f * static_cast<float>(i) - 7.0f;
    auto w0 = cluster.make_worker();
    auto w1 = cluster.make_worker();
    std::vector<float> got0 = init, got1(init.size(), 0.0f);
    w0->connect(cluster.signature(), 0, got0.data());
    w1->connect(cluster.signature(), 1, got1.data());
    EXPECT_EQ(got0, init) << placement_strategy_name(strategy);
    EXPECT_EQ(got1, init) << placement_strategy_name(strategy);
    EXPECT_EQ(cluster.gather_params(), init) << placement_strategy_name(strategy);
  }
}

TEST(Inproc, AsyncAndSspConvergeOnLeastSquaresAndReportStaleness) {
  for (auto mode : {SyncMode::kAsync, SyncMode::kSsp}) {
    const auto sig = lsq_signature();
    PlacementOptions place;
    place.num_shards = 2;
    place.bucket_bytes = 4 * 64;
    ShardOptions so;
    so.mode = mode;
    so.ssp_slack = 2;
    so.optimizer.lr = 4.0;
    InprocCluster cluster(sig, place, so, 4);
    const auto res = train(cluster, 4, 80, "identity");
    for (std::uint32_t w = 0; w < 4; ++w) {
      EXPECT_LT(res.last_loss[w], 0.1 * res.first_loss[w]) << sync_mode_name(mode) << " worker " << w;
    }
    const auto st = cluster.shard_stats(0);
    EXPECT_EQ(st.staleness_count, st.pushes_applied);
    EXPECT_LE(st.version, 80u);
    // Each push's acknowledgement told its worker the staleness the shard counted.
    std::uint64_t pushes = 0, sum = 0;
    for (const auto& c : res.counters) {
      pushes += c.staleness.pushes;
      sum += c.staleness.sum;
    }
    EXPECT_EQ(pushes, cluster.shard_stats(0).staleness_count + cluster.shard_stats(1).staleness_count);
    EXPECT_EQ(sum, cluster.shard_stats(0).staleness_sum + cluster.shard_stats(1).staleness_sum);
    EXPECT_EQ(pushes, 4u * 80u * cluster.layout().buckets.size());
  }
}

TEST(Inproc, HandshakeMismatchIsRefusedNamingTheDifference) {
  const auto sig = lsq_signature();
  PlacementOptions place;
  InprocCluster cluster(sig, place, ShardOptions{}, 1);
  auto other = cluster.signature();
  other.tensors[2].shape = {99};
  other.tensors[2].numel = 99;
  auto t = cluster.make_worker();
  std::vector<float> x(other.total_numel());
  try {
    t->connect(other, 0, x.data());
    FAIL() << "connect should have been refused";
  } catch (const CommError& e) {
    EXPECT_EQ(e.kind(), CommError::Kind::kRefused);
    EXPECT_NE(std::string(e.what()).find("tensor 2 'layer2.weight': shape [99] vs [100]"), std::string::npos)
        << e.what();
  }
  other = cluster.signature();
  other.compressor_spec = "fp16";
  try {
    t->connect(other, 0, x.data());
    FAIL() << "connect should have been refused";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("compressor 'fp16' vs 'identity'"), std::string::npos) << e.what();
  }
}

TEST(Inproc, DeadWorkerTimesOutAndTheOthersFinish) {
  const auto sig = lsq_signature();
  PlacementOptions place;
  place.num_shards = 2;
  ShardOptions so;
  so.worker_timeout_s = 0.3;
  InprocCluster cluster(sig, place, so, 3);
  const auto res = train(cluster, 3, 6, "identity", ClientOptions{}, {6, 6, 2});
  for (std::uint32_t s = 0; s < 2; ++s) {
    const auto st = cluster.shard_stats(s);
    EXPECT_EQ(st.version, 6u);
    EXPECT_EQ(st.workers_declared_dead, 1u);
    EXPECT_GE(st.timeout_completions, 1u);
  }
  EXPECT_EQ(res.worker_params[0], res.worker_params[1]);
}

// Per-bucket pulls (comm/protocol.h kFlagOneBucket), issued together and waited in any
// order, under a compressed downlink with server-side error feedback: every worker's
// parameters equal the shards' replica bit for bit, and a dense per-bucket pull (a
// resync) returns that replica.
TEST(Inproc, PerBucketPullsKeepWorkersOnTheReplicaBitForBit) {
  auto sig = lsq_signature();
  sig.downlink_spec = "topk:ratio=0.1";
  PlacementOptions place;
  place.num_shards = 2;
  place.bucket_bytes = 4 * 30;
  ShardOptions so;
  so.optimizer.lr = 2.0;
  InprocCluster cluster(sig, place, so, 3);
  const std::size_t buckets = cluster.layout().buckets.size();
  ASSERT_GT(buckets, 4u);
  const auto res = train(cluster, 3, 12, "identity", {}, {}, [buckets](RequestClient& t, std::uint64_t step, float* x) {
    std::vector<Handle> hs;
    for (std::uint32_t b = 0; b < buckets; ++b) hs.push_back(t.pull_bucket(step, b, x, false));
    for (std::size_t i = buckets; i-- > 0;) t.wait(hs[i]);
  });
  const std::vector<float> replica = cluster.gather_replica();
  for (std::uint32_t w = 0; w < 3; ++w) EXPECT_EQ(res.worker_params[w], replica) << "worker " << w;
  EXPECT_NE(replica, cluster.gather_params()) << "top-k 10%: the replica lags the parameters (the residual)";
  EXPECT_LT(res.last_loss[0], res.first_loss[0]);
  auto t = cluster.make_worker();
  std::vector<float> y(sig.total_numel(), -1.0f);
  t->connect(cluster.signature(), 0, y.data());
  std::vector<float> z(sig.total_numel(), -1.0f);
  std::vector<Handle> hs;
  for (std::uint32_t b = 0; b < buckets; ++b) hs.push_back(t->pull_bucket(kLatestStep, b, z.data(), true));
  for (auto h : hs) t->wait(h);
  EXPECT_EQ(z, replica);
}

TEST(Inproc, CompressedDownlinkKeepsWorkersOnTheShardReplica) {
  const auto sig_dense = lsq_signature();
  auto sig = sig_dense;
  sig.downlink_spec = "fp16";
  sig.compressor_spec = "ef+fp16";
  PlacementOptions place;
  place.num_shards = 2;
  place.bucket_bytes = 4 * 50;
  ShardOptions so;
  so.optimizer.lr = 4.0;
  InprocCluster cluster(sig, place, so, 2);
  const auto res = train(cluster, 2, 30, "ef+fp16");
  EXPECT_EQ(res.worker_params[0], res.worker_params[1]);
  // Workers hold x^ (the replica); the shard holds x; EF keeps them within fp16 error.
  EXPECT_LE(rel_diff(res.worker_params[0], cluster.gather_params()), 2e-3);
  EXPECT_LT(res.last_loss[0], 0.2 * res.first_loss[0]);
  const auto st = cluster.shard_stats(0);
  // Down traffic: fp16 deltas are about half of fp32 parameters.
  EXPECT_LT(st.total.down.payload_bytes, 2 * 31 * (cluster.layout().shard_numel[0] * 4 + 200) * 7 / 10);
}

}  // namespace
}  // namespace gradzip::comm

namespace gradzip::comm {
namespace {

// SSP (Ho et al. 2013): a worker may run at most `slack` steps ahead of the slowest
// live worker. Workers of different speeds; each checks the bound after every pull.
TEST(Inproc, SspBoundsTheLeadOfTheFastestWorker) {
  const auto sig = lsq_signature();
  PlacementOptions place;
  place.num_shards = 2;
  ShardOptions so;
  so.mode = SyncMode::kSsp;
  so.ssp_slack = 2;
  so.optimizer.lr = 1.0;
  constexpr std::uint32_t kWorkers = 3;
  constexpr std::uint64_t kSteps = 20;
  InprocCluster cluster(sig, place, so, kWorkers);
  std::atomic<std::uint64_t> done[kWorkers] = {};
  std::atomic<std::uint64_t> worst_lead{0};
  std::vector<std::thread> threads;
  for (std::uint32_t w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      auto t = cluster.make_worker();
      LsqProblem prob(sig.total_numel(), kRows, w);
      BucketEncoder enc("identity");
      std::vector<float> x = initial_params(sig.total_numel()), g(x.size());
      t->connect(cluster.signature(), w, x.data());
      for (std::uint64_t step = t->resume_step(); step < kSteps; ++step) {
        prob.gradient(x.data(), g.data());
        auto msgs = enc.encode(t->layout(), g.data(), step, w);
        std::vector<Handle> hs;
        for (std::uint32_t b = 0; b < msgs.size(); ++b) hs.push_back(t->push(step, b, msgs[b].data(), msgs[b].size()));
        for (auto h : hs) t->wait(h);
        t->wait(t->pull(step, x.data()));
        std::uint64_t slowest = kSteps;
        for (std::uint32_t o = 0; o < kWorkers; ++o) {
          if (o != w) slowest = std::min<std::uint64_t>(slowest, done[o].load());
        }
        const std::uint64_t lead = step + 1 > slowest ? step + 1 - slowest : 0;
        std::uint64_t prev = worst_lead.load();
        while (lead > prev && !worst_lead.compare_exchange_weak(prev, lead)) {
        }
        done[w].store(step + 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(w * 3));  // worker 2 is slowest
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(worst_lead.load(), so.ssp_slack + 1u);
  EXPECT_GE(worst_lead.load(), 2u) << "the fast worker should have used its slack";
}

}  // namespace
}  // namespace gradzip::comm
