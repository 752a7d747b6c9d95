// The process supervisor (comm/launch.h) with the hooks `gradzip train --cluster
// local|netem` builds on: spawn, shards-ready, progress, and a failure that names the
// process and its log. The processes are small shell scripts; every wait is bounded.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "comm/launch.h"
#include "tests/comm/temp_dir.h"

namespace gradzip::comm {
namespace {


using testing::TempDir;

// The hooks `gradzip train --cluster local|netem` builds on: the spawn hook starts every
// process (slots: shards first), workers get the endpoints the shards wrote, progress is
// reported while workers run, and shards that exit by themselves within the grace time
// are not signalled.
TEST(Launch, HooksSeeEverySlotTheShardEndpointsAndProgress) {
  TempDir dir;
  LaunchOptions o;
  for (int s = 0; s < 2; ++s) {
    const std::string ep = dir / ("shard" + std::to_string(s) + ".ep");
    // Writes its endpoint, then exits 0 once the workers' marker files exist.
    o.shard_commands.push_back({"sh", "-c", "echo tcp://10.0.0." + std::to_string(s + 1) + ":5555 > " + ep +
                                                "; while [ ! -e " + (dir / "w0") + " ] || [ ! -e " + (dir / "w1") +
                                                " ]; do sleep 0.05; done"});
    o.shard_endpoint_files.push_back(ep);
  }
  for (int w = 0; w < 2; ++w) o.worker_commands.push_back({"sh", "-c", "sleep 0.3; echo \"$0\" > " + (dir / ("w" + std::to_string(w)))});
  o.shard_exit_grace_s = 10;
  o.timeout_s = 20;
  o.progress_interval_s = 0.05;
  std::vector<std::size_t> slots;
  o.spawn = [&slots](std::size_t slot, const std::string& name, const std::vector<std::string>& argv,
                     const std::string& log) -> std::unique_ptr<Process> {
    slots.push_back(slot);
    EXPECT_EQ(name, slot < 2 ? "shard" + std::to_string(slot) : "worker" + std::to_string(slot - 2));
    return std::make_unique<ChildProcess>(name, argv, log);
  };
  std::vector<std::string> seen;
  o.on_shards_ready = [&seen](const std::vector<std::string>& endpoints, std::vector<std::vector<std::string>>* workers) {
    seen = endpoints;
    for (auto& argv : *workers) argv.push_back(endpoints[0] + "," + endpoints[1]);  // becomes the script's $0
  };
  int progress = 0;
  o.on_progress = [&progress] { ++progress; };
  std::string failure;
  ASSERT_EQ(run_launch(o, &failure), 0) << failure;
  EXPECT_EQ(slots, (std::vector<std::size_t>{0, 1, 2, 3}));
  EXPECT_EQ(seen, (std::vector<std::string>{"tcp://10.0.0.1:5555", "tcp://10.0.0.2:5555"}));
  std::ifstream w1(dir / "w1");
  std::string got;
  std::getline(w1, got);
  EXPECT_EQ(got, "tcp://10.0.0.1:5555,tcp://10.0.0.2:5555");
  EXPECT_GE(progress, 2) << "while the workers ran, and once at the end";
}

TEST(Launch, AFailureIsReportedWithTheLogToRead) {
  TempDir dir;
  LaunchOptions o;
  o.worker_commands = {{"sh", "-c", "exit 4"}};
  o.log_dir = dir.path.string();
  std::string failure;
  EXPECT_EQ(run_launch(o, &failure), 1);
  EXPECT_NE(failure.find("worker 0 exited with status 4"), std::string::npos) << failure;
  EXPECT_NE(failure.find(dir / "worker0.log"), std::string::npos) << failure;
}

// A shard killed by SIGKILL while the workers wait on it ends the launch at once (the
// workers would only notice after their request timeout), and the failure names the
// shard, the signal and its log.
TEST(Launch, AShardKilledBySignalNineIsNamedAtOnceAndTheOthersAreStopped) {
  using namespace std::chrono_literals;
  TempDir dir;
  LaunchOptions o;
  for (int s = 0; s < 2; ++s) {
    const std::string ep = dir / ("shard" + std::to_string(s) + ".ep");
    const std::string end = s == 1 ? "sleep 0.3; kill -9 $$" : "exec sleep 30";
    o.shard_commands.push_back({"sh", "-c", "echo tcp://127.0.0.1:1 > " + ep + "; " + end});
    o.shard_endpoint_files.push_back(ep);
  }
  o.worker_commands = {{"sleep", "30"}, {"sleep", "30"}};
  o.log_dir = dir.path.string();
  o.timeout_s = 60;
  std::string failure;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(run_launch(o, &failure), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s) << "the sleeping workers and shard 0 must have been stopped";
  EXPECT_NE(failure.find("shard 1 killed by signal 9"), std::string::npos) << failure;
  EXPECT_NE(failure.find(dir / "shard1.log"), std::string::npos) << failure;
}


}  // namespace
}  // namespace gradzip::comm
