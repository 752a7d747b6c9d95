// Liveness: a worker that announced heartbeats in its hello is declared dead after the
// worker timeout of silence even when no step waits for it (async/SSP, or between
// steps), and is not while its heartbeat thread runs; the barrier reaches every shard.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "tests/comm/inproc_train.h"
#include "tests/comm/shard_harness.h"

namespace gradzip::comm {
namespace {

using namespace testing;  // NOLINT: the helpers of these tests
using namespace std::chrono_literals;

// Worker w's hello from peer "w<w>" announcing heartbeats every `heartbeat_ms`.
Envelope hello_with_heartbeats(Harness& h, std::uint32_t w, std::uint64_t heartbeat_ms) {
  const std::string json = signature_to_json(h.sig);
  Envelope e;
  e.type = MsgType::kHello;
  e.worker = w;
  e.seq = 1;
  e.aux = heartbeat_ms;
  std::vector<std::uint8_t> head(kEnvelopeBytes);
  write_envelope(e, head.data());
  const auto r = h.send({head, std::vector<std::uint8_t>(json.begin(), json.end())}, "w" + std::to_string(w));
  return r.empty() ? Envelope{} : r[0];
}

TEST(Liveness, ASilentWorkerThatAnnouncedHeartbeatsIsDeclaredDeadWithNoStepPending) {
  for (auto mode : {SyncMode::kSync, SyncMode::kAsync}) {
    ShardOptions o;
    o.num_workers = 2;
    o.mode = mode;
    o.worker_timeout_s = 1.0;
    Harness h(o, 1);
    std::vector<float> zero(h.layout.shard_numel[0], 0.0f);
    h.shard->initialize(zero.data(), &h.out);
    hello_with_heartbeats(h, 0, 100);  // promises heartbeats
    hello_with_heartbeats(h, 1, 0);    // promises nothing: only the step timeout applies to it
    h.out.clear();
    h.shard->tick(Shard::Clock::now() + 500ms, &h.out);
    EXPECT_EQ(h.shard->stats().workers_declared_dead, 0u) << sync_mode_name(mode);
    h.shard->tick(Shard::Clock::now() + 2s, &h.out);
    EXPECT_EQ(h.shard->stats().workers_declared_dead, 1u) << sync_mode_name(mode);
    const auto r = h.send({Harness::env(MsgType::kHeartbeat, 0, 0, 0, 2)}, "w0");
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(err_of(r[0]), ProtoErr::kDeclaredDead) << sync_mode_name(mode);
    const auto alive = h.send({Harness::env(MsgType::kHeartbeat, 1, 0, 0, 3)}, "w1");
    ASSERT_EQ(alive.size(), 1u);
    EXPECT_EQ(alive[0].type, reply_type(MsgType::kHeartbeat)) << sync_mode_name(mode);
  }
}

TEST(Liveness, AnIdleWorkerWhoseHeartbeatThreadRunsStaysLive) {
  PlacementOptions place;
  place.num_shards = 2;
  ShardOptions so;
  so.mode = SyncMode::kAsync;
  so.worker_timeout_s = 0.4;
  InprocCluster cluster(lsq_signature(), place, so, 1);
  ClientOptions co;
  co.heartbeat_interval_s = 0.1;
  co.rejoin_when_declared_dead = false;  // a false death would fail the step below
  auto t = cluster.make_worker(co);
  std::vector<float> x = initial_params(cluster.signature().total_numel());
  t->connect(cluster.signature(), 0, x.data());
  std::this_thread::sleep_for(1200ms);  // three worker timeouts without a request of its own
  t->wait(t->pull(kLatestStep, x.data()));
  for (std::uint32_t s = 0; s < 2; ++s) {
    const auto st = cluster.shard_stats(s);
    EXPECT_EQ(st.workers_declared_dead, 0u) << "shard " << s;
    EXPECT_GE(st.workers[0].up.messages, 5u) << "shard " << s << " heard no heartbeats";
  }
}

TEST(Liveness, TheBarrierReachesEveryShard) {
  PlacementOptions place;
  place.num_shards = 3;
  place.bucket_bytes = 4 * 30;
  InprocCluster cluster(lsq_signature(), place, ShardOptions{}, 2);
  std::vector<std::unique_ptr<RequestClient>> workers;
  std::vector<std::vector<float>> x(2, initial_params(cluster.signature().total_numel()));
  for (std::uint32_t w = 0; w < 2; ++w) {
    workers.push_back(cluster.make_worker());
    workers[w]->connect(cluster.signature(), w, x[w].data());
  }
  std::vector<std::uint64_t> up_before, down_before;
  for (std::uint32_t s = 0; s < 3; ++s) {
    up_before.push_back(cluster.shard_stats(s).total.up.messages);
    down_before.push_back(cluster.shard_stats(s).total.down.messages);
  }
  std::thread other([&] { workers[1]->barrier(); });
  workers[0]->barrier();
  other.join();
  for (std::uint32_t s = 0; s < 3; ++s) {
    EXPECT_EQ(cluster.shard_stats(s).total.up.messages - up_before[s], 2u) << "shard " << s;
    EXPECT_EQ(cluster.shard_stats(s).total.down.messages - down_before[s], 2u) << "shard " << s;
  }
}

}  // namespace
}  // namespace gradzip::comm
