// CollectiveTransport (comm/collective_transport.h), ranks as threads over loopback Gloo,
// against the parameter server (comm/inproc.h) on the least-squares problem of
// tests/comm/lsq.h: the same parameters after N steps, bitwise where the summation order
// is the same; replicas that stay bitwise identical; configuration mismatches refused.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "comm/collective_transport.h"
#include "comm/inproc.h"
#include "tests/comm/lsq.h"
#include "tests/comm/temp_dir.h"

namespace gradzip::comm {
namespace {

using testing::BucketEncoder;
using testing::LsqProblem;
using testing::initial_params;
using testing::test_optimizer;
constexpr std::size_t kRows = 24;

PlacementOptions test_placement() {
  PlacementOptions p;
  p.bucket_bytes = 4 * 40;  // several buckets, one tensor cut in two
  p.min_compress_numel = 8;  // small tensors go identity (fp32)
  return p;
}

/// The parameter server, driven by one thread in rank order: every worker pushes step t
/// before any pulls, so the shard sums in rank order.
std::vector<std::vector<float>> train_ps(const ModelSignature& sig, std::uint32_t R, std::uint64_t steps) {
  ShardOptions so;
  so.optimizer = test_optimizer();
  InprocCluster cluster(sig, test_placement(), so, R);
  const std::size_t d = sig.total_numel();
  std::vector<std::unique_ptr<RequestClient>> t;
  std::vector<std::vector<float>> x(R, initial_params(d));
  std::vector<LsqProblem> prob;
  std::vector<BucketEncoder> enc;
  for (std::uint32_t w = 0; w < R; ++w) {
    t.push_back(cluster.make_worker());
    t[w]->connect(sig, w, x[w].data());
    prob.emplace_back(d, kRows, w);
    enc.emplace_back(sig.compressor_spec);
  }
  std::vector<float> g(d);
  for (std::uint64_t step = 0; step < steps; ++step) {
    std::vector<std::vector<std::vector<std::uint8_t>>> msgs(R);
    std::vector<Handle> hs;
    for (std::uint32_t w = 0; w < R; ++w) {
      prob[w].gradient(x[w].data(), g.data());
      msgs[w] = enc[w].encode(t[w]->layout(), g.data(), step, w);
      for (std::uint32_t b = 0; b < msgs[w].size(); ++b) hs.push_back(t[w]->push(step, b, msgs[w][b].data(), msgs[w][b].size()));
    }
    std::size_t k = 0;
    for (std::uint32_t w = 0; w < R; ++w) {
      for (std::size_t b = 0; b < msgs[w].size(); ++b) t[w]->wait(hs[k++]);
    }
    std::vector<Handle> pulls;
    for (std::uint32_t w = 0; w < R; ++w) pulls.push_back(t[w]->pull(step, x[w].data()));
    for (std::uint32_t w = 0; w < R; ++w) t[w]->wait(pulls[w]);
  }
  return x;
}

CollectiveTransportOptions collective_options(const std::string& store, CollectiveMode mode, std::uint32_t rank,
                                              std::uint32_t R) {
  CollectiveTransportOptions o;
  o.mode = mode;
  o.collective.rank = rank;
  o.collective.size = R;
  o.collective.store_dir = store;
  o.collective.timeout_s = 20;
  o.collective.heartbeat_s = 0.2;
  o.placement = test_placement();
  o.optimizer = test_optimizer();
  return o;
}

/// Each rank a thread with its own CollectiveTransport; returns every rank's parameters.
/// `sig_of(rank)` lets a test give one rank another configuration; errors[r] collects failures.
std::vector<std::vector<float>> train_collective(const std::function<ModelSignature(std::uint32_t)>& sig_of,
                                                 CollectiveMode mode, std::uint32_t R, std::uint64_t steps,
                                                 std::vector<std::string>* errors) {
  testing::TempDir dir;
  std::vector<std::vector<float>> x(R);
  errors->assign(R, "");
  std::vector<std::thread> threads;
  for (std::uint32_t w = 0; w < R; ++w) {
    threads.emplace_back([&, w] {
      try {
        const ModelSignature sig = sig_of(w);
        const std::size_t d = sig.total_numel();
        CollectiveTransport t(collective_options(dir / "store", mode, w, R));
        LsqProblem prob(d, kRows, w);
        BucketEncoder enc(sig.compressor_spec);
        x[w] = initial_params(d);
        std::vector<float> g(d);
        t.connect(sig, w, x[w].data());
        const Layout layout = make_layout(sig, test_placement());
        for (std::uint64_t step = 0; step < steps; ++step) {
          prob.gradient(x[w].data(), g.data());
          const auto msgs = enc.encode(layout, g.data(), step, w);
          std::vector<Handle> hs;
          for (std::uint32_t b = 0; b < msgs.size(); ++b) hs.push_back(t.push(step, b, msgs[b].data(), msgs[b].size()));
          for (auto h : hs) t.wait(h);
          t.wait(t.pull(step, x[w].data()));
        }
        const TrafficCounters c = t.counters();
        if (R > 1) {
          EXPECT_GT(c.up.payload_bytes, 0u);
        }
      } catch (const std::exception& e) {
        (*errors)[w] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  return x;
}

ModelSignature signature(const std::string& spec) {
  ModelSignature s = testing::lsq_signature();
  s.compressor_spec = spec;
  return s;
}

void expect_no_errors(const std::vector<std::string>& errors) {
  for (std::size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / std::max(1e-3, std::fabs(double(b[i]))));
  }
  return worst;
}

TEST(CollectiveTransport, IdentityAllreduceAllgatherAndPsGiveBitwiseEqualParamsOnTwoRanks) {
  // Two addends: a + b == b + a in fp32, so the ring, rank-order and arrival-order sums agree bitwise.
  const auto sig = signature("identity");
  const auto ps = train_ps(sig, 2, 6);
  std::vector<std::string> errors;
  const auto ar = train_collective([&](std::uint32_t) { return sig; }, CollectiveMode::kAllreduce, 2, 6, &errors);
  expect_no_errors(errors);
  const auto ag = train_collective([&](std::uint32_t) { return sig; }, CollectiveMode::kAllgather, 2, 6, &errors);
  expect_no_errors(errors);
  ASSERT_NE(ps[0], initial_params(sig.total_numel()));
  for (std::uint32_t r = 0; r < 2; ++r) {
    EXPECT_EQ(ar[r], ps[r]) << "allreduce rank " << r;
    EXPECT_EQ(ag[r], ps[r]) << "allgather rank " << r;
  }
}

TEST(CollectiveTransport, IdentityAllreduceOnThreeRanksEqualsPsWithinFp32SummationOrder) {
  const auto sig = signature("identity");
  const auto ps = train_ps(sig, 3, 6);
  std::vector<std::string> errors;
  const auto ar = train_collective([&](std::uint32_t) { return sig; }, CollectiveMode::kAllreduce, 3, 6, &errors);
  expect_no_errors(errors);
  for (std::uint32_t r = 0; r < 3; ++r) EXPECT_LT(max_rel_diff(ar[r], ps[0]), 1e-5) << "rank " << r;
  EXPECT_EQ(ar[1], ar[0]);
  EXPECT_EQ(ar[2], ar[0]);
}

TEST(CollectiveTransport, AllgatherOfAStochasticCodecKeepsReplicasBitwiseIdenticalAndEqualsThePs) {
  // QSGD with error feedback on three ranks: the shard fed in rank order sums like the
  // allgather's rank-order decode, so even the PS agrees bitwise.
  const auto sig = signature("ef+qsgd:bits=4,bucket=16");
  std::vector<std::string> errors;
  const auto ag = train_collective([&](std::uint32_t) { return sig; }, CollectiveMode::kAllgather, 3, 6, &errors);
  expect_no_errors(errors);
  const auto ps = train_ps(sig, 3, 6);
  for (std::uint32_t r = 0; r < 3; ++r) {
    EXPECT_EQ(ag[r], ag[0]) << "rank " << r << " drifted from rank 0";
    EXPECT_EQ(ag[r], ps[0]) << "rank " << r;
  }
}

TEST(CollectiveTransport, Fp16AllreduceStaysCloseToTheFp32Mean) {
  std::vector<std::string> errors;
  const auto sig32 = signature("identity"), sig16 = signature("fp16"), sigbf = signature("bf16");
  const auto a32 = train_collective([&](std::uint32_t) { return sig32; }, CollectiveMode::kAllreduce, 3, 4, &errors);
  expect_no_errors(errors);
  const auto a16 = train_collective([&](std::uint32_t) { return sig16; }, CollectiveMode::kAllreduce, 3, 4, &errors);
  expect_no_errors(errors);
  const auto abf = train_collective([&](std::uint32_t) { return sigbf; }, CollectiveMode::kAllreduce, 3, 4, &errors);
  expect_no_errors(errors);
  EXPECT_EQ(a16[2], a16[0]);
  EXPECT_EQ(abf[1], abf[0]);
  EXPECT_NE(a16[0], a32[0]);  // rounded sums, not the fp32 path
  EXPECT_LT(max_rel_diff(a16[0], a32[0]), 2e-2);
  EXPECT_LT(max_rel_diff(abf[0], a32[0]), 1e-1);
}

TEST(CollectiveTransport, AllreduceRefusesACodecItCannotSum) {
  testing::TempDir dir;
  CollectiveTransport t(collective_options(dir / "store", CollectiveMode::kAllreduce, 0, 1));
  std::vector<float> x(signature("topk:k=3").total_numel());
  EXPECT_THROW(t.connect(signature("topk:k=3"), 0, x.data()), std::invalid_argument);
}

TEST(CollectiveTransport, MismatchedCompressorIsRefusedNamingBothRanks) {
  std::vector<std::string> errors;
  train_collective([&](std::uint32_t r) { return signature(r == 1 ? "fp16" : "identity"); },
                   CollectiveMode::kAllgather, 2, 1, &errors);
  for (std::uint32_t r = 0; r < 2; ++r) {
    EXPECT_NE(errors[r].find("between rank 0 and rank 1"), std::string::npos) << errors[r];
    EXPECT_NE(errors[r].find("compressor"), std::string::npos) << errors[r];
  }
}

TEST(CollectiveTransport, MismatchedModelSizesAreRefusedNamingBothRanks) {
  std::vector<std::string> errors;
  train_collective(
      [&](std::uint32_t r) {
        return r == 2 ? testing::lsq_signature({37, 5, 101, 1, 64, 13}) : testing::lsq_signature();
      },
      CollectiveMode::kAllreduce, 3, 1, &errors);
  for (std::uint32_t r = 0; r < 3; ++r) {
    EXPECT_NE(errors[r].find("between rank 0 and rank 2"), std::string::npos) << errors[r];
  }
}

TEST(CollectiveTransport, PullBucketWritesOnlyThatBucketAndAbortReleasesWaits) {
  testing::TempDir dir;
  const auto sig = signature("identity");
  const std::size_t d = sig.total_numel();
  CollectiveTransport t(collective_options(dir / "store", CollectiveMode::kAllgather, 0, 1));
  std::vector<float> x = initial_params(d), g(d, 0.5f);
  t.connect(sig, 0, x.data());
  const Layout layout = make_layout(sig, test_placement());
  ASSERT_GT(layout.buckets.size(), 2u);
  BucketEncoder enc("identity");
  const auto msgs = enc.encode(layout, g.data(), 0, 0);
  for (std::uint32_t b = 0; b < msgs.size(); ++b) t.wait(t.push(0, b, msgs[b].data(), msgs[b].size()));
  std::vector<float> whole(d), one(d, -7.0f);
  t.wait(t.pull(0, whole.data()));
  const Bucket& b1 = layout.buckets[1];
  t.wait(t.pull_bucket(0, 1, one.data(), false));
  for (std::size_t i = 0; i < d; ++i) {
    const bool inside = i >= b1.offset && i < b1.offset + b1.numel;
    ASSERT_EQ(one[i], inside ? whole[i] : -7.0f) << "element " << i;
  }
  t.abort();
  EXPECT_THROW(t.wait(t.pull(0, whole.data())), CommError);
}

}  // namespace
}  // namespace gradzip::comm
