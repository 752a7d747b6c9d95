// `gradzip train` as several processes, end to end through the binary: under a real
// `mpirun` (--cluster mpi), with Slurm's rank variables set by hand and a cluster file,
// and with --cluster local; and `gradzip ps` + `gradzip worker` started by hand from one
// config file. Each run directory must end like a local run's (config.ini,
// metrics.csv with one row per epoch, summary.json complete, host.json) so `gradzip
// report` reads it, and a progress line is printed per epoch. Tiny on purpose (ResNet-20
// at width 4, 256 Fashion-MNIST images, 2 epochs, 1 shard + 2 workers).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/experiments/shell.h"

namespace {
namespace fs = std::filesystem;

const std::string kExe = GRADZIP_EXE;
const std::string kData = "/usr/share/datasets/fashion-mnist";
const std::string kTiny = " --model resnet20 --width 4 --train-subset 256 --test-subset 100 --epochs 2 --batch-size 32 "
                          "--min-compress-numel 0 --compressor fp16 --workers 2 --data-dir " + kData;

using Result = gradzip::testing::ShellResult;
using gradzip::testing::shell;

/// A TCP port that was free a moment ago (bound to port 0, then closed).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

/// Pids of the processes whose command line holds every one of `args` (each a whole
/// argument), found in /proc.
std::vector<pid_t> pids_with_args(const std::vector<std::string>& args) {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "cmdline");
    std::vector<std::string> argv;
    for (std::string a; std::getline(f, a, '\0');) argv.push_back(a);
    bool all = true;
    for (const auto& want : args) all = all && std::find(argv.begin(), argv.end(), want) != argv.end();
    if (all && !argv.empty()) pids.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return pids;
}

int lines_in(const fs::path& file) {
  std::ifstream f(file);
  int rows = 0;
  for (std::string line; std::getline(f, line);) rows += line.empty() ? 0 : 1;
  return rows;
}

bool on_path(const std::string& tool) { return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0; }

class TrainCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kData)) GTEST_SKIP() << "Fashion-MNIST not installed at " << kData << " (dataset-fashion-mnist)";
    root_ = fs::temp_directory_path() / ("gz-cluster-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }

  /// Runs `cmd` (which writes run directory root_/name), then checks the run as
  /// expect_complete_run does.
  void run_and_check(const std::string& cmd, const std::string& name, const std::string& cluster) {
    const Result r = shell(cmd, root_ / (name + ".log"));
    ASSERT_EQ(r.status, 0) << r.output;
    expect_complete_run(root_ / name, cluster, r.output);
  }

  /// The run directory ends like a local run's, with one metrics row per epoch, and
  /// `gradzip report` reads it; the output shows a progress line per epoch.
  void expect_complete_run(const fs::path& dir, const std::string& cluster, const std::string& output) {
    for (const char* f : {"config.ini", "metrics.csv", "events.jsonl", "summary.json", "host.json"}) {
      EXPECT_TRUE(fs::exists(dir / f)) << f;
    }
    std::ifstream s(dir / "summary.json");
    const nlohmann::json summary = nlohmann::json::parse(s, nullptr, false);
    ASSERT_TRUE(summary.is_object());
    EXPECT_EQ(summary["status"], "complete") << summary.dump();
    EXPECT_EQ(summary["cluster"], cluster);
    EXPECT_EQ(summary["workers"], 2);
    EXPECT_GT(summary["bytes_up"].get<double>(), 0.0);
    std::ifstream csv(dir / "metrics.csv");
    int rows = 0;
    for (std::string line; std::getline(csv, line);) rows += line.empty() ? 0 : 1;
    EXPECT_EQ(rows, 1 + 2) << "header + one row per epoch";
    EXPECT_NE(output.find("epoch 1/2:"), std::string::npos) << output;
    EXPECT_NE(output.find("epoch 2/2:"), std::string::npos) << output;
    const Result rep = shell("'" + kExe + "' report '" + dir.string() + "' --plots=false --out '" +
                                 (root_ / "report").string() + "'",
                             root_ / "report.log");
    EXPECT_EQ(rep.status, 0) << rep.output;
  }

  fs::path root_;
};

TEST_F(TrainCluster, MpirunRanksWriteACompleteRunDirectory) {
  if (!on_path("mpirun")) GTEST_SKIP() << "mpirun not found (Debian: openmpi-bin)";
  const int port = free_port();
  ASSERT_GT(port, 0);
  const fs::path dir = root_ / "mpi";
  const std::string root_flags = ::geteuid() == 0 ? " --allow-run-as-root --oversubscribe" : " --oversubscribe";
  run_and_check("mpirun" + root_flags + " -np 3 '" + kExe + "' train --cluster mpi --shards 1 --endpoints " +
                    "tcp://127.0.0.1:" + std::to_string(port) + " --run-dir '" + dir.string() + "'" + kTiny,
                "mpi", "mpi");
}

TEST_F(TrainCluster, SlurmRankVariablesAndAClusterFile) {
  const int port = free_port();
  ASSERT_GT(port, 0);
  const fs::path dir = root_ / "slurm";
  const fs::path spec = root_ / "cluster.json";
  std::ofstream(spec) << R"({"ps": ["127.0.0.1:)" << port << R"("], "worker": ["127.0.0.1:0", "127.0.0.1:0"]})";
  // What srun would set for each of 3 tasks; each rank's exit status is checked.
  std::string script;
  for (int rank = 0; rank < 3; ++rank) {
    script += "SLURM_PROCID=" + std::to_string(rank) + " SLURM_NTASKS=3 '" + kExe + "' train --cluster '" +
              spec.string() + "' --run-dir '" + dir.string() + "'" + kTiny + " & p" + std::to_string(rank) + "=$!; ";
  }
  script += "wait $p0 && wait $p1 && wait $p2";
  run_and_check(script, "slurm", spec.string());
}

TEST_F(TrainCluster, LocalProcessesPrintProgressPerEpoch) {
  run_and_check("'" + kExe + "' train --cluster local --shards 1 --run-dir '" + (root_ / "local").string() + "'" + kTiny,
                "local", "local");
}

// `kill -9` of a shard in a --cluster local run without checkpoints: the launcher sees its
// child die and ends the run at once (the workers alone would wait for their 60 s request
// timeout), stops every other process, and the run directory stays consistent: a failed
// summary naming the dead shard and its log, one complete metrics row per finished epoch.
TEST_F(TrainCluster, LocalRunEndsAtOnceNamingAShardKilledBySignalNine) {
  using namespace std::chrono_literals;
  const fs::path dir = root_ / "killed";
  std::string tiny = kTiny;
  tiny.replace(tiny.find(" --epochs 2 "), 12, " --epochs 60 ");
  Result r;
  std::thread run([&] {
    r = shell("'" + kExe + "' train --cluster local --shards 2 --run-dir '" + dir.string() + "'" + tiny,
              root_ / "killed.log");
  });
  // Once the first epoch is recorded, kill shard 1 (found by its command line).
  const auto deadline = std::chrono::steady_clock::now() + 240s;
  std::vector<pid_t> shard1;
  while (std::chrono::steady_clock::now() < deadline && lines_in(dir / "metrics.csv") < 2) std::this_thread::sleep_for(50ms);
  shard1 = pids_with_args({"shard", "--role", "--rank", "1", dir.string()});
  const auto killed_at = std::chrono::steady_clock::now();
  if (shard1.size() == 1) ::kill(shard1[0], SIGKILL);
  run.join();
  const double after_kill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  ASSERT_EQ(shard1.size(), 1u) << "shard 1 of the run not found (or the first epoch never came)\n" << r.output;
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_LT(after_kill_s, 20.0) << "the run must end well before the workers' 60 s request timeout";
  EXPECT_NE(r.output.find("shard 1 killed by signal 9"), std::string::npos) << r.output;
  EXPECT_TRUE(pids_with_args({dir.string()}).empty()) << "every process of the run was stopped";

  std::ifstream s(dir / "summary.json");
  const nlohmann::json summary = nlohmann::json::parse(s, nullptr, false);
  ASSERT_TRUE(summary.is_object());
  EXPECT_EQ(summary["status"], "failed");
  ASSERT_TRUE(summary.contains("error")) << summary.dump();
  const std::string error = summary["error"].dump();  // quoted; paths hold no character JSON escapes
  EXPECT_NE(error.find("shard 1 killed by signal 9"), std::string::npos) << error;
  EXPECT_NE(error.find((dir / "procs" / "shard1.log").string()), std::string::npos) << error;
  // Every metrics row is complete: as many fields as the header.
  std::ifstream csv(dir / "metrics.csv");
  std::string header;
  ASSERT_TRUE(std::getline(csv, header));
  int rows = 0;
  for (std::string line; std::getline(csv, line); ++rows) {
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), std::count(header.begin(), header.end(), ',')) << line;
  }
  EXPECT_GE(rows, 1);
  EXPECT_LT(rows, 60);
  for (const char* f : {"config.ini", "events.jsonl", "host.json"}) EXPECT_TRUE(fs::exists(dir / f)) << f;
}

// --heartbeat-interval through `gradzip ps` + `gradzip worker`: in async mode no step
// waits for a worker, so only its missing heartbeats tell the shard that worker 1 was
// killed; the shard declares it dead after --worker-timeout and ends once worker 0 is done.
TEST_F(TrainCluster, HeartbeatsLetAnAsyncShardDeclareAKilledWorkerDeadAndFinish) {
  using namespace std::chrono_literals;
  const int port = free_port();
  ASSERT_GT(port, 0);
  const fs::path ini = root_ / "run.ini";
  std::ofstream(ini) << "[common]\nmodel = resnet20\nwidth = 4\ntrain-subset = 256\ntest-subset = 100\n"
                        "epochs = 30\nbatch-size = 32\nworkers = 2\nshards = 1\ncompressor = fp16\nmode = async\n"
                        "worker-timeout = 3\nheartbeat-interval = 0.5\ndata-dir = "
                     << kData << "\n";
  const std::string ep = "tcp://127.0.0.1:" + std::to_string(port);
  const std::string gz = "'" + kExe + "' ";
  const std::string cfg = " --config '" + ini.string() + "'";
  Result ps, w0, w1;
  // Without heartbeats the async shard would wait for worker 1 forever: bounded here.
  std::thread run_ps([&] { ps = shell("timeout 180 " + gz + "ps" + cfg + " --rank 0 --bind " + ep, root_ / "ps.log"); });
  std::thread run_w0([&] { w0 = shell(gz + "worker" + cfg + " --worker-rank 0 --connect " + ep, root_ / "w0.log"); });
  std::thread run_w1([&] { w1 = shell(gz + "worker" + cfg + " --worker-rank 1 --connect " + ep, root_ / "w1.log"); });
  // Kill worker 1 once it finished its first epoch (it said hello, announcing heartbeats,
  // and pushed); 30 epochs of 4 steps leave worker 0 training long after that.
  const auto deadline = std::chrono::steady_clock::now() + 240s;
  auto epoch_done = [&] {
    std::ifstream f(root_ / "w1.log");
    std::ostringstream text;
    text << f.rdbuf();
    return text.str().find("worker 1 epoch 0 ") != std::string::npos;
  };
  while (std::chrono::steady_clock::now() < deadline && !epoch_done()) std::this_thread::sleep_for(50ms);
  const std::vector<pid_t> worker1 = pids_with_args({"worker", "--worker-rank", "1", ini.string()});
  if (worker1.size() == 1) ::kill(worker1[0], SIGKILL);
  run_w1.join();
  run_w0.join();
  run_ps.join();
  ASSERT_EQ(worker1.size(), 1u) << "worker 1 not found (or its first epoch never came)\n" << w1.output;
  EXPECT_EQ(w0.status, 0) << w0.output;
  EXPECT_EQ(ps.status, 0) << ps.output;
  EXPECT_NE(ps.output.find("worker 1 declared dead"), std::string::npos) << ps.output;
}

TEST_F(TrainCluster, PsAndWorkersStartedByHandShareOneConfigFile) {
  const int port = free_port();
  ASSERT_GT(port, 0);
  const fs::path ini = root_ / "run.ini";
  std::ofstream(ini) << "[common]\nmodel = resnet20\nwidth = 4\ntrain-subset = 256\ntest-subset = 100\n"
                        "epochs = 2\nbatch-size = 32\nworkers = 2\nshards = 1\ncompressor = fp16\ndata-dir = "
                     << kData << "\n";
  const std::string ep = "tcp://127.0.0.1:" + std::to_string(port);
  const std::string gz = "'" + kExe + "' ";
  const std::string cfg = " --config '" + ini.string() + "'";
  const Result r = shell(gz + "ps" + cfg + " --rank 0 --bind " + ep + " & ps=$!; " + gz + "worker" + cfg +
                             " --worker-rank 0 --connect " + ep + " & w0=$!; " + gz + "worker" + cfg +
                             " --worker-rank 1 --connect " + ep + " > /dev/null; r1=$?; wait $w0; r0=$?; wait $ps; "
                             "rp=$?; exit $((r0 | r1 | rp))",
                         root_ / "byhand.log");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("worker 0 epoch 1 steps 8"), std::string::npos) << "2 epochs of 256 / 2 / 32 steps\n"
                                                                           << r.output;
  EXPECT_NE(r.output.find("every worker finished"), std::string::npos) << r.output;
}

}  // namespace
