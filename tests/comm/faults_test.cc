// Fault injection on a worker's requests AND on the replies it receives, one kind per
// test, through the in-process transport (same bytes as ZeroMQ): each kind is counted
// in both directions and the sync run ends with parameters equal to a fault-free run.
// Two workers, so that the sum of their gradients does not depend on arrival order
// (a + b == b + a in IEEE arithmetic) and equality is exact.
#include <gtest/gtest.h>

#include "tests/comm/inproc_train.h"

namespace gradzip::comm {
namespace {

using namespace testing;  // NOLINT: the helpers of these tests

constexpr std::uint32_t kWorkers = 2;
constexpr std::uint64_t kSteps = 6;

struct FaultRun {
  std::vector<float> clean, faulty;
  TrainResult result;
  std::uint64_t shard_duplicates = 0;
};

// The same sync training twice, once through `faults` (both directions).
FaultRun run_with(const FaultSpec& spec) {
  const auto sig = lsq_signature();
  PlacementOptions place;
  place.num_shards = 2;
  place.bucket_bytes = 4 * 30;  // several buckets per shard: pushes to both shards interleave
  ShardOptions so;
  so.optimizer = test_optimizer();
  FaultRun run;
  InprocCluster clean(sig, place, so, kWorkers);
  train(clean, kWorkers, kSteps, "identity");
  run.clean = clean.gather_params();
  ClientOptions co;
  co.request_timeout_s = 0.03;
  co.faults.requests = spec;
  co.faults.replies = spec;
  co.faults.seed = 11;
  InprocCluster dirty(sig, place, so, kWorkers);
  run.result = train(dirty, kWorkers, kSteps, "identity", co);
  run.faulty = dirty.gather_params();
  for (std::uint32_t s = 0; s < 2; ++s) run.shard_duplicates += dirty.shard_stats(s).duplicates;
  for (std::uint32_t s = 0; s < 2; ++s) EXPECT_EQ(dirty.shard_stats(s).version, kSteps);
  return run;
}

// Runs with `spec` on requests and replies; `kind` happened in both directions and the
// parameters equal the fault-free run's.
FaultRun run_and_check(const FaultSpec& spec, std::uint64_t FaultCounts::*kind) {
  FaultRun run = run_with(spec);
  EXPECT_GT(TrainResult::total(run.result.request_faults, kind), 0u) << "requests";
  EXPECT_GT(TrainResult::total(run.result.reply_faults, kind), 0u) << "replies";
  EXPECT_EQ(run.faulty, run.clean);
  return run;
}

TEST(Faults, DroppedRequestsAndRepliesAreRetriedToTheFaultFreeParams) {
  FaultSpec spec;
  spec.drop_probability = 0.15;
  // A dropped push reply makes the retried push a duplicate at the shard.
  EXPECT_GT(run_and_check(spec, &FaultCounts::dropped).shard_duplicates, 0u);
}

TEST(Faults, DuplicatedRequestsAndRepliesAreAppliedOnceToTheFaultFreeParams) {
  FaultSpec spec;
  spec.duplicate_probability = 0.3;
  // Every duplicated push reached the shard and was acknowledged as a duplicate.
  EXPECT_GT(run_and_check(spec, &FaultCounts::duplicated).shard_duplicates, 0u);
}

TEST(Faults, RequestsAndRepliesReorderedAcrossShardsGiveTheFaultFreeParams) {
  FaultSpec spec;
  spec.reorder_probability = 0.4;
  spec.reorder_depth = 3;  // up to three messages, to any shard, held back at once
  run_and_check(spec, &FaultCounts::reordered);
}

TEST(Faults, DelayedRequestsAndRepliesGiveTheFaultFreeParams) {
  FaultSpec spec;
  spec.delay_probability = 0.2;
  spec.delay_s = 0.05;  // longer than the 0.03 s retry: late copies arrive after their retries
  run_and_check(spec, &FaultCounts::delayed);
}

TEST(Faults, AChannelHoldsBackSeveralMessagesAndReleasesThemNewestFirst) {
  FaultSpec spec;
  spec.reorder_probability = 1.0;
  spec.reorder_depth = 3;
  FaultyChannel<int> channel(spec, 1);
  std::vector<int> delivered;
  const auto deliver = [&](int& m) { delivered.push_back(m); };
  for (int m = 1; m <= 4; ++m) channel.pass(m, FaultyChannel<int>::Clock::now(), deliver);
  // 1, 2, 3 held (depth 3); 4 goes first, then the held ones, newest first.
  EXPECT_EQ(delivered, (std::vector<int>{4, 3, 2, 1}));
  EXPECT_EQ(channel.counts().reordered, 3u);
  EXPECT_EQ(channel.counts().passed, 4u);
}

}  // namespace
}  // namespace gradzip::comm
