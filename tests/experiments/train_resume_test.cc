// `gradzip train --resume RUN_DIR` end to end through the binary (experiments/train/resume.h):
//  - a simulated run stopped at step 4 (--max-steps) and resumed ends with the shard
//    parameters, optimizer state and worker state (EF residuals, DGC momentum, BatchNorm
//    statistics) byte-identical to a run that was never stopped, with the same losses and
//    accuracies, for an `ef+` and a `dgc+dgc` compressor on the overlapped step pipeline
//    (--overlap on: the state is saved with the pipeline drained) and an `ef+` one on the
//    sequential step;
//  - a missing or corrupt worker checkpoint is refused with its file named;
//  - a `--cluster local` run killed (its whole process group) after its first checkpoint
//    resumes to completion: one metrics row per epoch, steps continuing, a resume event,
//    summary.json complete over the whole run.
#include <signal.h>

#include <chrono>
#include <thread>

#include "tests/experiments/gradzip_run_util.h"

namespace gradzip::testing {
namespace {

/// Tiny runs of 4 steps an epoch; constant LR so that a --max-steps stop does not change
/// the schedule of the steps after it.
const std::string kRun = kTinyRun + " --lr-schedule constant --checkpoint-every 1 --epochs 3";

std::string step_file(const std::string& who, int step) {
  char name[64];
  std::snprintf(name, sizeof name, "%s-step-%012d.ckpt", who.c_str(), step);
  return name;
}

class SimResume : public TrainRunTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(SimResume, StoppedAndResumedEndsIdenticalToUninterrupted) {
  const std::string run = kRun + " --compressor " + GetParam();
  const fs::path whole = root_ / "whole", parts = root_ / "parts";
  Result r = gradzip("train" + run + " --run-dir '" + whole.string() + "'", root_ / "whole.log");
  ASSERT_EQ(r.status, 0) << r.output;
  r = gradzip("train" + run + " --max-steps 4 --run-dir '" + parts.string() + "'", root_ / "first.log");
  ASSERT_EQ(r.status, 0) << r.output;
  r = gradzip("train --resume '" + parts.string() + "' --max-steps 0", root_ / "resume.log");
  ASSERT_EQ(r.status, 0) << r.output;

  for (const std::string who : {"shard-0", "worker-0", "worker-1"}) {
    const std::string f = step_file(who, 12);
    ASSERT_TRUE(fs::exists(parts / "checkpoints" / f)) << f;
    EXPECT_EQ(slurp(whole / "checkpoints" / f), slurp(parts / "checkpoints" / f)) << f << " differs";
  }
  const auto a = read_csv(whole / "metrics.csv"), b = read_csv(parts / "metrics.csv");
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u) << "header + epochs 1..3 (the empty epoch of the stop was dropped)";
  for (std::size_t row = 1; row < a.size(); ++row) {
    for (std::size_t col : {0, 1, 3, 4, 5, 6}) {  // epoch, step, train loss/accuracy, test loss/accuracy
      EXPECT_EQ(a[row][col], b[row][col]) << a[0][col] << " of epoch " << row;
    }
    // The resumed process sent its handshake again: at least the bytes of the whole run.
    EXPECT_GE(std::stod(b[row][7]), std::stod(a[row][7])) << "up_payload_bytes of epoch " << row;
  }
  const auto resumed = events(parts, "resume");
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0]["from_step"], 4);
  EXPECT_EQ(resumed[0]["dropped_rows"], 1);
  const auto summary = read_json(parts / "summary.json");
  EXPECT_EQ(summary["status"], "complete");
  EXPECT_EQ(summary["steps"], 12);
  EXPECT_EQ(summary["final_test_accuracy"], read_json(whole / "summary.json")["final_test_accuracy"]);
  EXPECT_EQ(summary["resumes"][0]["from_step"], 4);
}

INSTANTIATE_TEST_SUITE_P(Memories, SimResume,
                         ::testing::Values("ef+topk:ratio=0.1 --overlap on", "dgc+dgc:ratio=0.05 --overlap on",
                                           "ef+topk:ratio=0.1 --overlap off"));

TEST_F(TrainRunTest, MissingOrCorruptWorkerCheckpointIsNamed) {
  const fs::path dir = root_ / "run";
  Result r = gradzip("train" + kRun + " --compressor ef+topk:ratio=0.1 --max-steps 4 --run-dir '" + dir.string() + "'",
                     root_ / "first.log");
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path state = dir / "checkpoints" / step_file("worker-1", 4);
  ASSERT_TRUE(fs::exists(state));
  {
    std::fstream f(state, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(60);
    f.put('\x5a');
  }
  r = gradzip("train --resume '" + dir.string() + "' --max-steps 0", root_ / "corrupt.log");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(state.filename().string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("corrupt"), std::string::npos) << r.output;
  fs::remove(state);
  r = gradzip("train --resume '" + dir.string() + "' --max-steps 0", root_ / "missing.log");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(state.filename().string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("missing"), std::string::npos) << r.output;
  // Nothing was recorded by the refused resumes: still the first run's rows.
  EXPECT_EQ(read_csv(dir / "metrics.csv").size(), 3u);
}

TEST_F(TrainRunTest, ResumeRefusesWhatItCannotContinue) {
  const fs::path dir = root_ / "run";
  Result r = gradzip("train" + kRun + " --max-steps 4 --run-dir '" + dir.string() + "'", root_ / "first.log");
  ASSERT_EQ(r.status, 0) << r.output;
  r = gradzip("train --resume '" + dir.string() + "'", root_ / "done.log");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("already trained 4 of its 4 steps"), std::string::npos) << r.output;
  r = gradzip("train --resume '" + dir.string() + "' --config x.ini", root_ / "config.log");
  EXPECT_EQ(r.status, 2) << r.output;
  r = gradzip("train --resume '" + (root_ / "nothing").string() + "'", root_ / "nothing.log");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("no config.ini"), std::string::npos) << r.output;
}

TEST_F(TrainRunTest, LocalRunKilledAfterItsFirstCheckpointResumesToCompletion) {
  const fs::path dir = root_ / "local";
  std::vector<std::string> args = {"train", "--cluster", "local", "--epochs", "4", "--run-dir", dir.string(),
                                   "--compressor", "ef+topk:ratio=0.1", "--checkpoint-every", "1"};
  for (const std::string& w : words(kTinyRun)) args.push_back(w);
  const pid_t group = start_group(args, root_ / "killed.log");
  ASSERT_GT(group, 0);
  // The first checkpoint is complete once every worker wrote its state and its epoch has
  // its metrics row; then the whole process group dies at once.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  bool ready = false;
  while (!ready && std::chrono::steady_clock::now() < deadline) {
    ready = fs::exists(dir / "checkpoints" / step_file("worker-0", 4)) &&
            fs::exists(dir / "checkpoints" / step_file("worker-1", 4)) && read_csv(dir / "metrics.csv").size() >= 2;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-group, SIGKILL);
  int status = 0;
  ::waitpid(group, &status, 0);
  ASSERT_TRUE(ready) << slurp(root_ / "killed.log");
  ASSERT_NE(read_json(dir / "summary.json")["status"], "complete") << "killed before its end";

  const Result r = gradzip("train --resume '" + dir.string() + "'", root_ / "resume.log");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto rows = read_csv(dir / "metrics.csv");
  ASSERT_EQ(rows.size(), 5u) << "header + one row per epoch";
  for (std::size_t e = 1; e < rows.size(); ++e) {
    EXPECT_EQ(rows[e][0], std::to_string(e)) << "epoch";
    EXPECT_EQ(rows[e][1], std::to_string(4 * e)) << "step continues across the resume";
    if (e > 1) {
      EXPECT_GT(std::stod(rows[e][7]), std::stod(rows[e - 1][7])) << "bytes grow across the resume";
    }
  }
  const auto resumed = events(dir, "resume");
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_GE(resumed[0]["from_step"].get<int>(), 4);
  const auto summary = read_json(dir / "summary.json");
  EXPECT_EQ(summary["status"], "complete");
  EXPECT_EQ(summary["steps"], 16);
  EXPECT_EQ(summary["resumes"].size(), 1u);
  EXPECT_TRUE(fs::exists(dir / "procs" / "worker0.segment1.jsonl")) << "the killed run's epoch lines kept aside";
  EXPECT_NE(r.output.find("epoch 4/4"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace gradzip::testing
