// Who may speak for a worker: a worker rank is bound to the connection (peer) whose
// hello carried the model signature; requests from any other peer are refused with a
// typed error, a second claimant of a live rank is refused, a rejoin after the shard
// declared the rank dead is an explicit hello, and a shard moves its step ahead of the
// workers' only when it was restored from a checkpoint and every live worker agrees.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "tests/comm/shard_harness.h"

namespace gradzip::comm {
namespace {

using testing::err_of;
using testing::Harness;
using namespace std::chrono_literals;

// A sync shard of `workers` workers, initialized to 0, worker w bound to peer "w<w>".
Harness bound_shard(std::uint32_t workers, ShardOptions o = {}) {
  o.num_workers = workers;
  Harness h(o, 1);
  std::vector<float> zero(h.layout.shard_numel[0], 0.0f);
  h.shard->initialize(zero.data(), &h.out);
  for (std::uint32_t w = 0; w < workers; ++w) {
    const Envelope r = h.hello(w, "w" + std::to_string(w));
    EXPECT_EQ(r.type, reply_type(MsgType::kHello)) << proto_err_name(err_of(r));
  }
  return h;
}

// Every worker pushes `value` for step `step` from its own peer.
void honest_step(Harness& h, std::uint64_t step) {
  for (std::uint32_t w = 0; w < h.options.num_workers; ++w) {
    const std::string peer = "w" + std::to_string(w);
    for (const auto& r : h.push_all(w, step, 0.5f + static_cast<float>(w), 100 * step + 10 * w, peer)) {
      EXPECT_EQ(r.type, reply_type(MsgType::kPush));
      EXPECT_EQ(r.flags & (kFlagStale | kFlagDuplicate), 0) << "honest push of step " << step << " not applied";
    }
  }
}

TEST(ShardAuth, FabricatedFuturePullsAndPushesFromAPeerWithoutHelloAreRefusedAndTheStepStays) {
  Harness h = bound_shard(2);
  Harness reference = bound_shard(2);
  for (std::uint64_t step = 0; step < 2; ++step) {
    honest_step(h, step);
    honest_step(reference, step);
  }
  ASSERT_EQ(h.shard->version(), 2u);
  // An attacker that never said hello speaks for every rank at future steps inside the
  // step window: 42 rounds of pulls (which used to excuse the workers and make the shard
  // jump) and pushes (which used to be accumulated).
  std::size_t replies = 0;
  for (std::uint64_t k = 1; k <= 42; ++k) {
    const std::uint64_t step = h.shard->version() + 20000 * k;
    for (std::uint32_t w = 0; w < 2; ++w) {
      for (const auto& r : h.send({Harness::env(MsgType::kPull, w, 0, step, 7000 + k)}, "evil")) {
        ++replies;
        EXPECT_EQ(r.type, MsgType::kError);
        EXPECT_EQ(err_of(r), ProtoErr::kNotBound) << proto_err_name(err_of(r));
      }
      for (const auto& r : h.send({Harness::env(MsgType::kPush, w, h.owned(), step, 9000 + k),
                                   h.grad_msg(h.owned(), 1e6f)},
                                  "evil")) {
        ++replies;
        EXPECT_EQ(r.type, MsgType::kError);
        EXPECT_EQ(err_of(r), ProtoErr::kNotBound) << proto_err_name(err_of(r));
      }
    }
  }
  EXPECT_EQ(replies, 42u * 4u) << "every forged request is answered with an error";
  EXPECT_EQ(h.shard->version(), 2u) << "the shard jumped on forged requests";
  const auto st = h.shard->stats();
  EXPECT_EQ(st.refused_by_reason.at("not_bound"), 42u * 4u);
  EXPECT_EQ(st.pushes_applied, 2u * 2u * h.owned_count());
  // Forged traffic is not counted as the workers' own.
  EXPECT_EQ(st.workers[0].up.messages, 1u + 2u * h.owned_count());
  // The honest workers go on: their next step is applied, not dropped as stale, and the
  // parameters equal those of a shard that never saw the attacker.
  honest_step(h, 2);
  honest_step(reference, 2);
  EXPECT_EQ(h.shard->version(), 3u);
  EXPECT_EQ(h.shard->params(), reference.shard->params());
}

TEST(ShardAuth, BoundWorkersFuturePullsNeitherExcuseThemNorMoveANeverRestoredShard) {
  Harness h = bound_shard(2);
  honest_step(h, 0);
  ASSERT_EQ(h.shard->version(), 1u);
  // Both workers pull step 500 without having pushed it. A never-restored shard lost no
  // pushes, so nobody is excused and the step does not move; the pulls wait.
  EXPECT_TRUE(h.send({Harness::env(MsgType::kPull, 0, 0, 500, 77)}, "w0").empty());
  EXPECT_TRUE(h.send({Harness::env(MsgType::kPull, 1, 0, 500, 78)}, "w1").empty());
  EXPECT_EQ(h.shard->version(), 1u) << "the shard jumped on the workers' pulls";
  h.push_all(1, 1, 2.0f, 300, "w1");
  EXPECT_EQ(h.shard->version(), 1u) << "worker 0 was excused by its own pull";
  h.push_all(0, 1, 2.0f, 400, "w0");
  EXPECT_EQ(h.shard->version(), 2u);
}

TEST(ShardAuth, EveryRequestBeforeHelloIsRefusedAsNotBound) {
  Harness h = bound_shard(1);
  std::vector<std::vector<std::vector<std::uint8_t>>> requests = {
      {Harness::env(MsgType::kPush, 0, h.owned(), 0, 1), h.grad_msg(h.owned(), 1.0f)},
      {Harness::env(MsgType::kPull, 0, 0, kLatestStep, 2)},
      {Harness::env(MsgType::kBarrier, 0, 0, 0, 3)},
      {Harness::env(MsgType::kHeartbeat, 0, 0, 0, 4)},
      {Harness::env(MsgType::kShutdown, 0, 0, 0, 5)},
  };
  std::vector<std::vector<std::uint8_t>> init{Harness::env(MsgType::kInit, 0, 0, 0, 6)};
  for (std::size_t i = 0; i < h.owned_count(); ++i) init.push_back(h.grad_msg(h.owned(i), 3.0f));
  requests.push_back(init);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto r = h.send(requests[i], "stranger");
    ASSERT_EQ(r.size(), 1u) << i;
    EXPECT_EQ(r[0].type, MsgType::kError) << i;
    EXPECT_EQ(err_of(r[0]), ProtoErr::kNotBound) << i << ": " << proto_err_name(err_of(r[0]));
  }
  EXPECT_FALSE(h.shard->all_workers_shut_down()) << "a stranger's shutdown counted";
  EXPECT_EQ(h.shard->stats().pushes_applied, 0u);
}

TEST(ShardAuth, ASecondClaimantIsRefusedAndTakesTheRankOnlyByAnExplicitRejoinAfterATimeout) {
  ShardOptions o;
  o.worker_timeout_s = 1.0;
  Harness h = bound_shard(2, o);
  // A second connection claiming live rank 0: refused, typed.
  const Envelope taken = h.hello(0, "intruder");
  EXPECT_EQ(taken.type, MsgType::kError);
  EXPECT_EQ(err_of(taken), ProtoErr::kRankTaken) << proto_err_name(err_of(taken));
  // Its requests are not the worker's.
  auto r = h.send({Harness::env(MsgType::kPush, 0, h.owned(), 0, 5), h.grad_msg(h.owned(), 1.0f)}, "intruder");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(err_of(r[0]), ProtoErr::kNotBound);
  // Worker 1 pushes step 0; worker 0 stays silent past the timeout and is declared dead.
  h.push_all(1, 0, 1.0f, 20, "w1");
  h.out.clear();
  h.shard->tick(Shard::Clock::now() + 2s, &h.out);
  EXPECT_EQ(h.shard->version(), 1u);
  EXPECT_EQ(h.shard->stats().workers_declared_dead, 1u);
  // The old connection is not silently resurrected by a push: it must say hello again.
  r = h.send({Harness::env(MsgType::kPush, 0, h.owned(), 1, 30), h.grad_msg(h.owned(), 1.0f)}, "w0");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(err_of(r[0]), ProtoErr::kDeclaredDead) << proto_err_name(err_of(r[0]));
  // A restarted worker (new connection) rejoins explicitly with a hello.
  const Envelope rejoin = h.hello(0, "w0-restarted");
  EXPECT_EQ(rejoin.type, reply_type(MsgType::kHello)) << proto_err_name(err_of(rejoin));
  EXPECT_EQ(rejoin.aux, 1u) << "the rejoining worker resumes at the shard's step";
  EXPECT_EQ(h.shard->stats().rejoins, 1u);
  // The rank now belongs to the new connection; the old one is a stranger.
  r = h.send({Harness::env(MsgType::kHeartbeat, 0, 0, 0, 40)}, "w0");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(err_of(r[0]), ProtoErr::kNotBound);
  h.push_all(0, 1, 1.0f, 50, "w0-restarted");
  h.push_all(1, 1, 1.0f, 60, "w1");
  EXPECT_EQ(h.shard->version(), 2u);
}

TEST(ShardAuth, ARestoredShardJumpsOnlyToAStepEveryLiveWorkerAgreesOn) {
  const auto dir = std::filesystem::temp_directory_path() / ("gz_auth_ckpt_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ShardOptions o;
  o.checkpoint_dir = dir.string();
  o.checkpoint_every = 1;
  {
    Harness h = bound_shard(2, o);
    honest_step(h, 0);
    honest_step(h, 1);
    ASSERT_EQ(h.shard->version(), 2u);
  }
  o.restore = true;
  o.num_workers = 2;
  Harness r(o, 1);
  ASSERT_EQ(r.shard->version(), 2u);
  for (std::uint32_t w = 0; w < 2; ++w) r.hello(w, "w" + std::to_string(w));
  // The workers are at step 5 (the shard lost steps 2..4 and worker 0's pushes of 5).
  // One worker's pull is not agreement: the shard stays.
  EXPECT_TRUE(r.send({Harness::env(MsgType::kPull, 0, 0, 5, 1)}, "w0").empty());
  EXPECT_EQ(r.shard->version(), 2u);
  // Worker 1 pushes step 5: every live worker agrees on 5, the shard jumps and applies it.
  r.push_all(1, 5, 1.0f, 10, "w1");
  EXPECT_EQ(r.shard->version(), 6u);
  // Having caught up, it no longer jumps: a later pull of a future step waits.
  EXPECT_TRUE(r.send({Harness::env(MsgType::kPull, 0, 0, 9, 2)}, "w0").empty());
  r.push_all(1, 9, 1.0f, 20, "w1");
  EXPECT_EQ(r.shard->version(), 6u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gradzip::comm
