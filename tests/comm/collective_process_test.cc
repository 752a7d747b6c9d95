// CollectiveTransport between real processes (tests/comm/lsq_worker.cc over Gloo on
// loopback): a rank that dies or hangs makes every other rank exit with an error naming it
// within the timeout; a rank killed by signal 9 at any moment of a stream of allreduces
// leaves no survivor ended by a signal (SIGPIPE from Gloo's writes to the dead peer,
// SIGABRT from an exception in Gloo's I/O thread); the run then resumes from rank 0's last
// checkpoint and ends with the parameters of a run that never failed.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <fstream>
#include <sstream>

#include "comm/launch.h"
#include "tests/comm/temp_dir.h"

namespace gradzip::comm {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;
const std::string kBin = std::string(GRADZIP_BINARY_DIR) + "/tests/comm/";
constexpr double kTimeoutS = 4.0;

ChildProcess start_rank(const TempDir& dir, const std::string& store, std::uint32_t rank, std::uint32_t ranks,
                        const std::vector<std::string>& extra, const std::string& tag = "") {
  std::vector<std::string> argv = {kBin + "lsq_worker",
                                   "--aggregation=allgather",
                                   "--rank=" + std::to_string(rank),
                                   "--workers=" + std::to_string(ranks),
                                   "--store=" + store,
                                   "--timeout=" + std::to_string(kTimeoutS),
                                   "--bucket-bytes=160",
                                   "--momentum=0.9"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const std::string name = "rank" + std::to_string(rank) + tag;
  return ChildProcess(name, argv, dir / (name + ".log"));
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<float> read_params(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> x(bytes.size() / 4);
  std::memcpy(x.data(), bytes.data(), x.size() * 4);
  return x;
}

/// Starts 3 ranks, one of them with `fault` ("--die-at-step=3" or "--hang-at-step=3"),
/// and checks the other two exit 1 within the timeout with an error naming it.
void expect_others_name(std::uint32_t culprit, const std::string& fault) {
  TempDir dir;
  std::vector<ChildProcess> ranks;
  for (std::uint32_t r = 0; r < 3; ++r) {
    std::vector<std::string> args = {"--steps=50", "--step-sleep-ms=20"};
    if (r == culprit) args.push_back(fault);
    ranks.push_back(start_rank(dir, dir / "store", r, 3, args));
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint32_t r = 0; r < 3; ++r) {
    if (r == culprit) continue;
    // Start-up, 3 steps, the timeout, the diagnosis: far less than this on a loaded machine.
    ASSERT_TRUE(ranks[r].wait_for(std::chrono::milliseconds(static_cast<long>((kTimeoutS + 25) * 1000))))
        << "rank " << r << " hung after rank " << culprit << " failed";
    EXPECT_EQ(ranks[r].exit_code(), 1);
    const std::string log = slurp(dir / ("rank" + std::to_string(r) + ".log"));
    EXPECT_NE(log.find("rank " + std::to_string(culprit) + " "), std::string::npos) << log;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("others exited %.1f s after the start (timeout %.0f s)\n", seconds, kTimeoutS);
}

TEST(CollectiveProcesses, KilledRankIsNamedByTheOthersWithinTheTimeout) {
  expect_others_name(1, "--die-at-step=3");
}

TEST(CollectiveProcesses, HangingRankIsNamedByTheOthersWithinTheTimeout) {
  expect_others_name(2, "--hang-at-step=3");
}

// An exception that escapes a library thread (Gloo's I/O loop throws gloo::EnforceNotMet
// in its own thread) ends the rank with status 1 and one line naming what was thrown,
// not an abort; the other rank names it.
TEST(CollectiveProcesses, ExceptionEscapingAThreadEndsTheRankWithAnErrorNotAnAbort) {
  TempDir dir;
  std::vector<ChildProcess> ranks;
  ranks.push_back(start_rank(dir, dir / "store", 0, 2, {"--steps=50", "--step-sleep-ms=20"}));
  ranks.push_back(start_rank(dir, dir / "store", 1, 2, {"--steps=50", "--step-sleep-ms=20",
                                                        "--throw-in-thread-at-step=3"}));
  for (auto& p : ranks) ASSERT_TRUE(p.wait_for(std::chrono::milliseconds(static_cast<long>((kTimeoutS + 25) * 1000))));
  const std::string log1 = slurp(dir / "rank1.log"), log0 = slurp(dir / "rank0.log");
  EXPECT_EQ(ranks[1].exit_code(), 1) << "128 + signal when a signal ended it\n" << log1;
  EXPECT_NE(log1.find("rank 1: collective engine thread failed after call #"), std::string::npos) << log1;
  EXPECT_NE(log1.find("a thread's uncaught throw"), std::string::npos) << log1;
  EXPECT_EQ(log1.find("terminate called"), std::string::npos) << log1;
  EXPECT_EQ(ranks[0].exit_code(), 1) << log0;
  EXPECT_NE(log0.find("rank 1 "), std::string::npos) << log0;
}

TEST(CollectiveProcesses, KillNineAtAnyMomentEndsEverySurvivorWithAnErrorNotASignal) {
  // Steps of 100 KB allreduces, no sleep: a kill lands inside a collective, between two,
  // or while a survivor is still writing to the victim. Victim and moment vary per trial.
  for (int trial = 0; trial < 6; ++trial) {
    TempDir dir;
    const std::uint32_t victim = static_cast<std::uint32_t>(trial % 3);
    std::vector<ChildProcess> ranks;
    for (std::uint32_t r = 0; r < 3; ++r) {
      ranks.push_back(start_rank(dir, dir / "store", r, 3,
                                 {"--aggregation=allreduce", "--steps=100000000", "--sizes=20000,5000",
                                  "--bucket-bytes=400000"}));
    }
    // Wait until the ranks are stepping, then a little longer for each trial.
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (slurp(dir / "rank0.log").find("ready at step") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + 170 * trial));
    ranks[victim].signal(SIGKILL);
    for (std::uint32_t r = 0; r < 3; ++r) {
      ASSERT_TRUE(ranks[r].wait_for(std::chrono::milliseconds(static_cast<long>((kTimeoutS + 25) * 1000))))
          << "trial " << trial << ": rank " << r << " hung after rank " << victim << " was killed";
      if (r == victim) continue;
      const std::string log = slurp(dir / ("rank" + std::to_string(r) + ".log"));
      EXPECT_EQ(ranks[r].exit_code(), 1) << "trial " << trial << ": rank " << r << " (128 + signal when a signal "
                                         << "ended it) after rank " << victim << " was killed\n" << log;
      EXPECT_NE(log.find("rank " + std::to_string(victim) + " "), std::string::npos) << log;
    }
  }
}

TEST(CollectiveProcesses, RunResumesFromRankZerosCheckpointAfterAKill) {
  TempDir dir;
  const std::vector<std::string> common = {"--steps=8", "--checkpoint-dir=" + (dir / "ckpt"), "--checkpoint-every=2"};
  // Reference: 8 steps without a failure.
  {
    std::vector<ChildProcess> ranks;
    for (std::uint32_t r = 0; r < 2; ++r) {
      auto args = common;
      args.push_back("--out=" + (dir / ("ref" + std::to_string(r) + ".bin")));
      args[1] = "--checkpoint-dir=" + (dir / "ckpt-ref");
      ranks.push_back(start_rank(dir, dir / "store-ref", r, 2, args, "ref"));
    }
    for (auto& p : ranks) {
      ASSERT_TRUE(p.wait_for(60s));
      ASSERT_EQ(p.exit_code(), 0) << p.name();
    }
  }
  // Rank 1 dies before step 5: rank 0 fails, its newest checkpoint is of step 4.
  {
    std::vector<ChildProcess> ranks;
    ranks.push_back(start_rank(dir, dir / "store-a", 0, 2, common, "a"));
    auto args = common;
    args.push_back("--die-at-step=5");
    ranks.push_back(start_rank(dir, dir / "store-a", 1, 2, args, "a"));
    for (auto& p : ranks) ASSERT_TRUE(p.wait_for(std::chrono::seconds(40)));
    EXPECT_EQ(ranks[0].exit_code(), 1);
  }
  // Restart both from step 4 (a fresh store directory: the old one pairs dead addresses).
  std::vector<ChildProcess> ranks;
  for (std::uint32_t r = 0; r < 2; ++r) {
    auto args = common;
    args.push_back("--restore-step=4");
    args.push_back("--out=" + (dir / ("resumed" + std::to_string(r) + ".bin")));
    ranks.push_back(start_rank(dir, dir / "store-b", r, 2, args, "b"));
  }
  for (auto& p : ranks) {
    ASSERT_TRUE(p.wait_for(60s));
    ASSERT_EQ(p.exit_code(), 0) << p.name();
  }
  for (std::uint32_t r = 0; r < 2; ++r) {
    const auto ref = read_params(dir / ("ref" + std::to_string(r) + ".bin"));
    ASSERT_FALSE(ref.empty());
    EXPECT_EQ(read_params(dir / ("resumed" + std::to_string(r) + ".bin")), ref) << "rank " << r;
  }
  EXPECT_NE(slurp(dir / "rank0b.log").find("steps 4..8"), std::string::npos);
}

}  // namespace
}  // namespace gradzip::comm
