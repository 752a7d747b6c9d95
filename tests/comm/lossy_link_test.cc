// Real packet loss: shard processes in a hub network namespace, each worker process in
// a namespace of its own, joined by veth pairs on which nftables drops packets at
// random (1%, 5%) or cuts the link for a while (tests/comm/lossy_links.h). TCP recovers
// what is lost; the sync runs end with exactly the parameters of the loss-free
// single-process reference (two workers: the sum of two gradients does not depend on
// arrival order). Needs root, ip and nft; skipped otherwise.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include <fmt/format.h>

#include "tests/comm/lossy_links.h"
#include "tests/comm/zmq_helpers.h"

namespace gradzip::comm {
namespace {

using namespace testing;  // NOLINT: the helpers of these tests

constexpr std::uint32_t kWorkers = 2;
// About 28 KB of parameters: each push and pull spans many TCP segments.
const std::string kSizes = "--sizes=2000,1500,3000,37,500";

// Shards in the hub namespace, workers in the spokes, all with their logs in `dir`.
struct NetRun {
  LossyStar& star;
  TempDir& dir;
  std::string tag;
  std::vector<ChildProcess> shards, workers;
  std::vector<std::string> ports;

  NetRun(LossyStar& s, TempDir& d, std::string name, const std::vector<std::string>& shard_flags)
      : star(s), dir(d), tag(std::move(name)) {
    for (std::uint32_t i = 0; i < 2; ++i) {
      const std::string ep_file = dir / (tag + "-shard" + std::to_string(i) + ".ep");
      std::vector<std::string> argv = LossyStar::in_namespace(star.hub());
      for (const std::string& a : {kBin + "gradzip-ps", "--shard=" + std::to_string(i), std::string("--shards=2"),
                                   "--workers=" + std::to_string(kWorkers), kSizes, std::string("--bucket-bytes=16384"),
                                   std::string("--bind=tcp://0.0.0.0:0"), "--endpoint-file=" + ep_file,
                                   "--stats-file=" + dir / (tag + "-shard" + std::to_string(i) + ".stats"),
                                   std::string("--stats-interval=0.2"), std::string("--idle-exit=60")}) {
        argv.push_back(a);
      }
      argv.insert(argv.end(), shard_flags.begin(), shard_flags.end());
      const std::string shard_name = tag + "-shard" + std::to_string(i);
      shards.emplace_back(shard_name, argv, dir / (shard_name + ".log"));
      const std::string ep = wait_endpoint(ep_file, shards.back());
      EXPECT_FALSE(ep.empty()) << "shard " << i << " did not start";
      ports.push_back(ep.substr(ep.rfind(':') + 1));
    }
  }
  void start_worker(std::uint32_t w, const std::vector<std::string>& flags) {
    std::string endpoints;
    for (const auto& port : ports) {
      endpoints += (endpoints.empty() ? "" : ",") + ("tcp://" + star.hub_address(w) + ":" + port);
    }
    std::vector<std::string> argv = LossyStar::in_namespace(star.spoke(w));
    for (const std::string& a : {kBin + "lsq_worker", "--rank=" + std::to_string(w), "--endpoints=" + endpoints,
                                 kSizes, std::string("--bucket-bytes=16384"), "--out=" + out(w)}) {
      argv.push_back(a);
    }
    argv.insert(argv.end(), flags.begin(), flags.end());
    const std::string name = tag + "-worker" + std::to_string(w);
    workers.emplace_back(name, argv, dir / (name + ".log"));
  }
  std::string out(std::uint32_t w) const { return dir / (tag + "-w" + std::to_string(w) + ".bin"); }
  nlohmann::json stats(std::uint32_t shard) const {
    return last_stats(dir / (tag + "-shard" + std::to_string(shard) + ".stats"));
  }
  std::string log(const std::string& name) const { return log_text(dir / (tag + "-" + name + ".log")); }
  // Waits for worker w; true when it exited within the time.
  bool finish(std::uint32_t w, std::chrono::seconds timeout = 120s) { return workers.at(w).wait_for(timeout); }
  void stop_shards() {
    for (auto& s : shards) s.signal(SIGTERM);
    for (auto& s : shards) EXPECT_TRUE(s.wait_for(20s));
  }
};

#define SKIP_WITHOUT_NETNS()                                          \
  do {                                                                \
    const std::string why = LossyStar::unavailable_reason();          \
    if (!why.empty()) GTEST_SKIP() << "lossy links unavailable: " << why; \
    LossyStar::remove_stale();                                        \
  } while (0)

ModelSignature lossy_signature() { return lsq_signature({2000, 1500, 3000, 37, 500}); }

TEST(LossyLink, OneAndFivePercentLossGiveExactlyTheLossFreeParams) {
  SKIP_WITHOUT_NETNS();
  TempDir dir;
  LossyStar star(kWorkers);
  const std::uint64_t steps = 12;
  const std::vector<float> reference = sync_reference(lossy_signature(), kWorkers, steps, OptimizerOptions{});
  for (unsigned loss : {0u, 1u, 5u}) {
    for (std::uint32_t w = 0; w < kWorkers; ++w) star.set_loss(w, loss);
    const std::uint64_t dropped_before = star.dropped(0) + star.dropped(1);
    NetRun run(star, dir, "loss" + std::to_string(loss), {});
    for (std::uint32_t w = 0; w < kWorkers; ++w) run.start_worker(w, {"--steps=" + std::to_string(steps)});
    for (std::uint32_t w = 0; w < kWorkers; ++w) {
      ASSERT_TRUE(run.finish(w)) << loss << "% loss: worker " << w << " hung";
      EXPECT_EQ(run.workers[w].exit_code(), 0) << run.log("worker" + std::to_string(w));
      EXPECT_EQ(read_floats(run.out(w)), reference) << loss << "% loss, worker " << w;
    }
    for (auto& s : run.shards) EXPECT_TRUE(s.wait_for(20s));
    const std::uint64_t dropped = star.dropped(0) + star.dropped(1) - dropped_before;
    if (loss == 0) {
      EXPECT_EQ(dropped, 0u);
    } else {
      EXPECT_GT(dropped, 0u) << loss << "% loss dropped nothing";
    }
    std::printf("[ loss %u%% ] %llu packets dropped\n", loss, static_cast<unsigned long long>(dropped));
  }
}

TEST(LossyLink, ACutShorterThanTheWorkerTimeoutRecoversWithTheLossFreeParams) {
  SKIP_WITHOUT_NETNS();
  TempDir dir;
  LossyStar star(kWorkers);
  const std::uint64_t steps = 30;
  NetRun run(star, dir, "shortcut", {"--worker-timeout=8"});
  for (std::uint32_t w = 0; w < kWorkers; ++w) {
    run.start_worker(w, {"--steps=" + std::to_string(steps), "--step-sleep-ms=30"});
  }
  std::this_thread::sleep_for(500ms);
  star.cut(1);
  std::this_thread::sleep_for(2s);
  star.heal(1);
  EXPECT_GT(star.dropped(1), 0u) << "the cut dropped nothing";
  const std::vector<float> reference = sync_reference(lossy_signature(), kWorkers, steps, OptimizerOptions{});
  for (std::uint32_t w = 0; w < kWorkers; ++w) {
    ASSERT_TRUE(run.finish(w)) << "worker " << w << " hung";
    EXPECT_EQ(run.workers[w].exit_code(), 0) << run.log("worker" + std::to_string(w));
    EXPECT_EQ(read_floats(run.out(w)), reference) << "worker " << w;
  }
  for (auto& s : run.shards) EXPECT_TRUE(s.wait_for(20s));
  for (std::uint32_t s = 0; s < 2; ++s) {
    EXPECT_EQ(run.stats(s)["workers_declared_dead"], 0) << "shard " << s;
    EXPECT_EQ(run.stats(s)["version"], steps) << "shard " << s;
  }
}

// Async: the shards declare the cut worker dead (silence after announced heartbeats),
// the other worker goes on during the cut, and the cut one rejoins once the link heals.
TEST(LossyLink, ACutLongerThanTheWorkerTimeoutDeclaresTheWorkerDeadAndAsyncContinues) {
  SKIP_WITHOUT_NETNS();
  TempDir dir;
  LossyStar star(kWorkers);
  NetRun run(star, dir, "asynccut", {"--mode=async", "--worker-timeout=1", "--lr=0.05"});
  run.start_worker(0, {"--steps=400", "--step-sleep-ms=15", "--heartbeat=0.2"});
  run.start_worker(1, {"--steps=60", "--step-sleep-ms=15", "--heartbeat=0.2"});
  std::this_thread::sleep_for(500ms);
  star.cut(1);
  std::this_thread::sleep_for(1500ms);
  const auto during = run.stats(0)["version"].get<std::uint64_t>();
  std::this_thread::sleep_for(1500ms);
  const auto later = run.stats(0)["version"].get<std::uint64_t>();
  EXPECT_GT(later, during) << "the run did not go on while worker 1 was cut off";
  star.heal(1);
  for (std::uint32_t w = 0; w < kWorkers; ++w) {
    ASSERT_TRUE(run.finish(w)) << "worker " << w << " hung";
    EXPECT_EQ(run.workers[w].exit_code(), 0) << run.log("worker" + std::to_string(w));
  }
  for (auto& s : run.shards) EXPECT_TRUE(s.wait_for(20s));
  for (std::uint32_t s = 0; s < 2; ++s) {
    EXPECT_GE(run.stats(s)["workers_declared_dead"].get<int>(), 1) << "shard " << s;
    EXPECT_GE(run.stats(s)["rejoins"].get<int>(), 1) << "shard " << s;
  }
  EXPECT_NE(run.log("shard0").find("no request or heartbeat"), std::string::npos);
}

// Sync, without automatic rejoin: the cut worker is declared dead by the step timeout
// while the other goes on; once the link heals it stops with a typed error, the other
// worker finishes the run and the shards hold a checkpoint of its last step.
TEST(LossyLink, ACutLongerThanTheWorkerTimeoutDeclaresTheWorkerDeadAndSyncStopsItCleanly) {
  SKIP_WITHOUT_NETNS();
  TempDir dir;
  LossyStar star(kWorkers);
  const std::uint64_t steps = 150;
  NetRun run(star, dir, "synccut",
             {"--worker-timeout=1", "--checkpoint-dir=" + dir / "ckpt", "--checkpoint-every=1"});
  for (std::uint32_t w = 0; w < kWorkers; ++w) {
    run.start_worker(w, {"--steps=" + std::to_string(steps), "--step-sleep-ms=20", "--no-rejoin", "--op-timeout=30"});
  }
  std::this_thread::sleep_for(500ms);
  star.cut(1);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline &&
         (run.stats(0).is_null() || run.stats(0)["workers_declared_dead"].get<int>() == 0)) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_GE(run.stats(0)["workers_declared_dead"].get<int>(), 1) << "worker 1 was not declared dead";
  star.heal(1);
  ASSERT_TRUE(run.finish(1, 60s)) << "worker 1 hung after the link healed";
  EXPECT_EQ(run.workers[1].exit_code(), 1);
  EXPECT_NE(run.log("worker1").find("declared_dead"), std::string::npos) << run.log("worker1");
  ASSERT_TRUE(run.finish(0)) << "worker 0 hung";
  EXPECT_EQ(run.workers[0].exit_code(), 0) << run.log("worker0");
  for (auto& s : run.shards) ASSERT_TRUE(s.wait_for(20s)) << "shards wait for nobody: every live worker finished";
  for (std::uint32_t s = 0; s < 2; ++s) {
    EXPECT_EQ(run.stats(s)["version"], steps) << "shard " << s;
    EXPECT_GE(run.stats(s)["workers_declared_dead"].get<int>(), 1) << "shard " << s;
    const auto ckpt = dir / ("ckpt/shard-" + std::to_string(s) + "-step-" + fmt::format("{:012}", steps) + ".ckpt");
    EXPECT_TRUE(std::filesystem::exists(ckpt)) << ckpt;
  }
}

}  // namespace
}  // namespace gradzip::comm
