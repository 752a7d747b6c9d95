// `gradzip train --aggregation allreduce` as ranks that no local launcher starts
// (experiments/train/cluster_rank.cc), each process started by the test with the
// variables a launcher sets:
//  - a --cluster FILE run of 3 processes learns bitwise like the same run under
//    --cluster local: the same losses and accuracies epoch by epoch and the same
//    parameters in rank 0's checkpoint; under a real mpirun (--cluster mpi, 2 ranks) too;
//  - a rank count that is not --workers, and a cluster file with another number of
//    "worker" hosts, are usage errors (exit 2) saying so;
//  - kill -9 of one rank mid-training, rank 1 then rank 0: every other rank exits with
//    status 1, never by a signal (no abort in Gloo's threads), with an error naming the
//    dead rank; rank 0, when it survives, records a failed summary naming it; and the
//    killed run resumes from its last checkpoint (--resume, under --cluster local) to
//    its end.
#include <signal.h>

#include <chrono>
#include <thread>

#include "tests/experiments/gradzip_run_util.h"

namespace gradzip::testing {
namespace {

/// Three workers, 4 steps an epoch; constant LR (a resumed run repeats no schedule step).
const std::string kThree = " --model resnet20 --width 4 --train-subset 384 --test-subset 100 --batch-size 32 "
                           "--min-compress-numel 0 --workers 3 --torch-threads 1 --loader-threads 1 "
                           "--lr-schedule constant --aggregation allreduce --data-dir " + kFashion;

class CollectiveRanks : public TrainRunTest {
 protected:
  /// A cluster file of `ranks` workers on loopback and no shards.
  fs::path cluster_file(int ranks) {
    const fs::path spec = root_ / ("cluster" + std::to_string(ranks) + ".json");
    std::ofstream f(spec);
    f << R"({"ps": [], "worker": [)";
    for (int r = 0; r < ranks; ++r) f << (r ? ", " : "") << R"("127.0.0.1:0")";
    f << "]}";
    return spec;
  }

  /// Starts rank r of `ranks` of `gradzip train <run> --cluster <spec> --run-dir <dir>`,
  /// with Slurm's rank variables, as srun would; its output in <root>/<name>.rank<r>.log.
  std::vector<pid_t> start_ranks(const std::string& run, int ranks, const fs::path& dir, const std::string& name) {
    std::vector<std::string> args = words("train" + run);
    args.insert(args.end(), {"--cluster", cluster_file(ranks).string(), "--run-dir", dir.string()});
    std::vector<pid_t> pids;
    for (int r = 0; r < ranks; ++r) {
      pids.push_back(start_group(args, log(name, r), {{"SLURM_PROCID", std::to_string(r)},
                                                      {"SLURM_NTASKS", std::to_string(ranks)}}));
    }
    return pids;
  }

  fs::path log(const std::string& name, int rank) const {
    return root_ / (name + ".rank" + std::to_string(rank) + ".log");
  }
};

TEST_F(CollectiveRanks, ClusterFileRanksLearnLikeLocalProcesses) {
  const std::string run = kThree + " --epochs 2 --checkpoint-every 1";
  const fs::path local = root_ / "local", file = root_ / "file";
  const Result r = gradzip("train" + run + " --cluster local --run-dir '" + local.string() + "'", root_ / "local.log");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::vector<pid_t> ranks = start_ranks(run, 3, file, "file");
  for (int rank = 0; rank < 3; ++rank) {
    const Ended e = wait_ended(ranks[rank], 300);
    ASSERT_TRUE(e.exited && e.code == 0) << "rank " << rank << " (exited " << e.exited << ", code " << e.code
                                          << ")\n" << slurp(log("file", rank));
  }
  ASSERT_EQ(learning_columns(local).size(), 3u) << "header + 2 epochs";
  EXPECT_EQ(learning_columns(file), learning_columns(local));
  const std::string params = "checkpoints/shard-0-step-000000000008.ckpt";
  ASSERT_TRUE(fs::exists(file / params)) << "rank 0 wrote no checkpoint";
  EXPECT_EQ(slurp(file / params), slurp(local / params)) << "the parameters after 8 steps";
  const auto summary = read_json(file / "summary.json");
  EXPECT_EQ(summary["status"], "complete");
  EXPECT_EQ(summary["workers"], 3);
  EXPECT_EQ(summary["shards"], 0);
  EXPECT_GT(summary["bytes_up"].get<double>(), 0);
  EXPECT_NE(slurp(log("file", 0)).find("epoch 2/2:"), std::string::npos) << "rank 0 prints the progress";
}

TEST_F(CollectiveRanks, MpirunRanksLearnLikeLocalProcesses) {
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "mpirun not found (Debian openmpi-bin, installed by scripts/setup)";
  }
  const std::string run = kTinyRun + " --lr-schedule constant --aggregation allreduce --compressor fp16 --epochs 2";
  const fs::path local = root_ / "local", mpi = root_ / "mpi";
  Result r = gradzip("train" + run + " --cluster local --run-dir '" + local.string() + "'", root_ / "local.log");
  ASSERT_EQ(r.status, 0) << r.output;
  // As root Open MPI wants --allow-run-as-root; --oversubscribe: 2 ranks on fewer cores.
  const std::string flags = ::geteuid() == 0 ? " --allow-run-as-root --oversubscribe" : " --oversubscribe";
  const int rc = std::system(("mpirun" + flags + " -np 2 '" + kGradzip + "' train" + run + " --cluster mpi --run-dir '" +
                              mpi.string() + "' > '" + (root_ / "mpi.log").string() + "' 2>&1 </dev/null")
                                 .c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << slurp(root_ / "mpi.log");
  EXPECT_EQ(learning_columns(mpi), learning_columns(local));
  EXPECT_EQ(read_json(mpi / "summary.json")["status"], "complete");
  EXPECT_EQ(read_json(mpi / "summary.json")["cluster"], "mpi");
}

TEST_F(CollectiveRanks, RankCountsThatDoNotMatchTheWorkersAreUsageErrors) {
  // 2 launcher ranks for --workers 3.
  std::vector<std::string> args = words("train" + kThree + " --cluster " + cluster_file(2).string() + " --run-dir " +
                                        (root_ / "a").string());
  Ended e = wait_ended(start_group(args, root_ / "a.log", {{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}), 60);
  EXPECT_TRUE(e.exited && e.code == 2) << slurp(root_ / "a.log");
  EXPECT_NE(slurp(root_ / "a.log").find("runs one rank per worker: --workers 3 needs 3 ranks"), std::string::npos)
      << slurp(root_ / "a.log");
  // 3 ranks, but a cluster file of 2 worker hosts.
  e = wait_ended(start_group(args, root_ / "b.log", {{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "3"}}), 60);
  EXPECT_TRUE(e.exited && e.code == 2) << slurp(root_ / "b.log");
  EXPECT_NE(slurp(root_ / "b.log").find("lists 2 \"worker\" hosts, but 3 ranks"), std::string::npos)
      << slurp(root_ / "b.log");
}

TEST_F(CollectiveRanks, KilledRankIsNamedByEveryOtherRankAndTheRunResumes) {
  using namespace std::chrono_literals;
  constexpr double kTimeoutS = 20;  // --collective-timeout: a dead peer is seen long before it
  const std::string run = kThree + " --epochs 6 --checkpoint-every 1 --collective-timeout 20";
  // Rank 1 (rank 0, the recorder, survives) and rank 0 (the recorder dies); the kills at
  // every moment of a stream of steps, rank by rank, are CollectiveProcesses.KillNine*.
  for (int victim : {1, 0}) {
    const std::string name = "kill" + std::to_string(victim);
    const fs::path dir = root_ / name;
    const std::vector<pid_t> ranks = start_ranks(run, 3, dir, name);
    // Mid-training: after the first checkpoint (step 4) and its metrics row, a little
    // later for each victim so the kill lands at different points of a step.
    const auto deadline = std::chrono::steady_clock::now() + 240s;
    bool ready = false;
    while (!ready && std::chrono::steady_clock::now() < deadline) {
      ready = fs::exists(dir / "checkpoints" / "worker-2-step-000000000004.ckpt") &&
              read_csv(dir / "metrics.csv").size() >= 2;
      if (!ready) std::this_thread::sleep_for(20ms);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 * victim));
    ::kill(ranks[victim], SIGKILL);
    ASSERT_TRUE(ready) << slurp(log(name, 0));
    for (int r = 0; r < 3; ++r) {
      const Ended e = wait_ended(ranks[r], kTimeoutS + 60);
      if (r == victim) continue;
      const std::string out = slurp(log(name, r));
      ASSERT_FALSE(e.timed_out) << "rank " << r << " hung after rank " << victim << " died\n" << out;
      EXPECT_TRUE(e.exited) << "rank " << r << " ended by signal " << e.code << " after rank " << victim
                            << " died\n" << out;
      EXPECT_EQ(e.code, 1) << out;
      const auto error = out.find("gradzip train: error: ");
      ASSERT_NE(error, std::string::npos) << out;
      const std::string line = out.substr(error, out.find('\n', error) - error);
      EXPECT_NE(line.find("rank " + std::to_string(victim) + " "), std::string::npos) << line;
    }
    if (victim != 0) {
      const auto summary = read_json(dir / "summary.json");
      EXPECT_EQ(summary["status"], "failed");
      ASSERT_TRUE(summary.contains("error")) << summary.dump();
      EXPECT_NE(summary["error"].dump().find("rank " + std::to_string(victim) + " "), std::string::npos)
          << summary.dump();
    }
  }
  // The run whose rank 1 died continues from its newest complete checkpoint to its end.
  const fs::path dir = root_ / "kill1";
  const Result r = gradzip("train --resume '" + dir.string() + "' --cluster local", root_ / "resume.log");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto rows = read_csv(dir / "metrics.csv");
  ASSERT_EQ(rows.size(), 7u) << "header + 6 epochs";
  for (std::size_t e = 1; e < rows.size(); ++e) EXPECT_EQ(rows[e][1], std::to_string(4 * e)) << "step of epoch " << e;
  const auto resumed = events(dir, "resume");
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_GE(resumed[0]["from_step"].get<int>(), 4);
  const auto summary = read_json(dir / "summary.json");
  EXPECT_EQ(summary["status"], "complete");
  EXPECT_EQ(summary["steps"], 24);
}

}  // namespace
}  // namespace gradzip::testing
