// The epoch/summary accounting every training path shares (experiments/train/accounting.h):
// metrics.csv rows are on disk as each epoch ends (not at the end of the run), the
// modeled communication time adds T_step of the link model once per step, and the
// workers' epoch lines of a multi-process run merge only once every worker reported an
// epoch, whatever a worker is in the middle of writing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/train/accounting.h"

namespace gradzip::experiments {
namespace {
namespace fs = std::filesystem;

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> cells(const std::string& csv_line) {
  std::vector<std::string> out;
  std::stringstream ss(csv_line);
  for (std::string c; std::getline(ss, c, ',');) out.push_back(c);
  return out;
}

/// Cell `name` of data row `row` (1-based) of metrics.csv lines `rows`.
double cell(const std::vector<std::string>& rows, std::size_t row, const std::string& name) {
  const auto header = cells(rows.at(0));
  for (std::size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return std::stod(cells(rows.at(row)).at(i));
  }
  ADD_FAILURE() << "no column " << name;
  return 0;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in, nullptr, false);
}

class TrainAccounting : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("gz-accounting-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    runlog::RunDirOptions o;
    o.log_to_console = false;
    run_ = runlog::RunDir::create(root_ / "run", o);
    run_->declare_metrics(train_metric_columns());
  }
  void TearDown() override { fs::remove_all(root_); }

  /// One worker, one shard, a payload-only link of 1e6 bytes/s without latency.
  RunShape shape() const {
    RunShape s;
    s.link = parse_link("custom:bw=8mbit,lat=0,carries=payload");
    s.report_links = {s.link};
    s.workers = 1;
    s.shards = 1;
    s.shard_fraction = {1.0};
    s.epochs = 2;
    return s;
  }

  static EpochRow row(std::int64_t epoch, std::uint64_t step, double up, double down, double acc) {
    EpochRow r;
    r.epoch = epoch;
    r.step = step;
    r.seconds = static_cast<double>(epoch);
    r.test_accuracy = acc;
    r.up.payload_bytes = up;
    r.down.payload_bytes = down;
    return r;
  }

  fs::path root_;
  std::unique_ptr<runlog::RunDir> run_;
};

TEST_F(TrainAccounting, EachEpochRowIsOnDiskWhenTheEpochEnds) {
  RunRecorder rec(run_.get(), shape(), {{"cluster", "local"}, {"compressor", "none+identity"}, {"workers", 1}});
  rec.begin("start");
  EXPECT_EQ(read_json(run_->path() / "summary.json")["status"], "running");
  rec.epoch(row(1, 10, 1000, 2000, 0.5));
  auto rows = lines_of(run_->path() / "metrics.csv");
  ASSERT_EQ(rows.size(), 2u) << "header + the first epoch, before the run ends";
  EXPECT_EQ(cells(rows[1])[0], "1");
  EXPECT_EQ(cells(rows[1])[1], "10");
  rec.epoch(row(2, 30, 3000, 6000, 0.4));
  rows = lines_of(run_->path() / "metrics.csv");
  ASSERT_EQ(rows.size(), 3u);
  rec.complete({{"steps", 30}, {"final_test_accuracy", 0.4}});
  const nlohmann::json s = read_json(run_->path() / "summary.json");
  EXPECT_EQ(s["status"], "complete");
  EXPECT_EQ(s["cluster"], "local") << "the facts stay in the summary";
  EXPECT_DOUBLE_EQ(s["best_test_accuracy"].get<double>(), 0.5);
  int epoch_events = 0;
  for (const auto& line : lines_of(run_->path() / "events.jsonl")) {
    epoch_events += nlohmann::json::parse(line)["type"] == "epoch" ? 1 : 0;
  }
  EXPECT_EQ(epoch_events, 2);
}

// push_staleness_mean is the mean over the epoch's own pushes (from the cumulative
// counters), push_staleness_max the largest so far.
TEST_F(TrainAccounting, StalenessColumnsArePerEpochMeansAndTheMaximumSoFar) {
  RunRecorder rec(run_.get(), shape(), {});
  rec.begin("start");
  EpochRow r = row(1, 10, 1000, 2000, 0);
  r.stale_pushes = 40;
  r.staleness_sum = 20;
  r.staleness_max = 3;
  rec.epoch(r);
  r = row(2, 20, 2000, 4000, 0);
  r.stale_pushes = 60;
  r.staleness_sum = 80;  // the second epoch's 20 pushes had staleness 3 on average
  r.staleness_max = 5;
  rec.epoch(r);
  const auto rows = lines_of(run_->path() / "metrics.csv");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_DOUBLE_EQ(cell(rows, 1, "push_staleness_mean"), 0.5);
  EXPECT_DOUBLE_EQ(cell(rows, 2, "push_staleness_mean"), 3.0);
  EXPECT_DOUBLE_EQ(cell(rows, 2, "push_staleness_max"), 5.0);
  EXPECT_DOUBLE_EQ(cell(rows, 2, "h2d_bytes"), 0.0);
}

TEST_F(TrainAccounting, ModeledTimeAddsTheStepTimeOfEachStep) {
  RunRecorder rec(run_.get(), shape(), {});
  rec.begin("start");
  // Epoch 1: 10 steps of 100 B up + 200 B down: T_step = 300 B / 1e6 B/s = 3e-4 s.
  rec.epoch(row(1, 10, 1000, 2000, 0));
  // Epoch 2: 20 more steps of 50 B up + 100 B down: T_step = 1.5e-4 s.
  rec.epoch(row(2, 30, 2000, 4000, 0));
  const auto rows = lines_of(run_->path() / "metrics.csv");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_NEAR(cell(rows, 1, "modeled_comm_s"), 10 * 3e-4, 1e-12);
  EXPECT_NEAR(cell(rows, 2, "modeled_comm_s"), 10 * 3e-4 + 20 * 1.5e-4, 1e-12);
  rec.complete({{"steps", 30}});
  const nlohmann::json s = read_json(run_->path() / "summary.json");
  EXPECT_NEAR(s["modeled_step_comm_s"][shape().link.name].get<double>(), 1.5e-4, 1e-12) << "the last epoch's step";
}

TEST_F(TrainAccounting, FailureIsWrittenToTheSummary) {
  RunRecorder rec(run_.get(), shape(), {});
  rec.begin("start");
  rec.fail("worker1 failed with exit status 3");
  const nlohmann::json s = read_json(run_->path() / "summary.json");
  EXPECT_EQ(s["status"], "failed");
  EXPECT_EQ(s["error"], "worker1 failed with exit status 3");
}

std::string epoch_line(int epoch, int step, double up, double down, double acc) {
  return nlohmann::json{{"epoch", epoch},
                        {"step", step},
                        {"seconds", 0.5 * epoch},
                        {"train_loss", 1.0 / epoch},
                        {"test_accuracy", acc},
                        {"up", {{"payload_bytes", up}, {"framing_bytes", up / 10}, {"tcpip_bytes", up / 20}}},
                        {"down", {{"payload_bytes", down}, {"framing_bytes", 0}, {"tcpip_bytes", 0}}}}
             .dump();
}

TEST_F(TrainAccounting, WorkerLinesMergeOnceEveryWorkerReportedTheEpoch) {
  const fs::path procs = root_ / "procs";
  fs::create_directories(procs);
  WorkerEpochLog log(procs, 2);
  std::ofstream w0(log.file(0)), w1(log.file(1));
  w0 << epoch_line(1, 4, 100, 400, 0.25) << "\n" << epoch_line(2, 8, 200, 800, 0.5) << "\n" << std::flush;
  const std::string second = epoch_line(2, 8, 210, 800, 0);
  w1 << epoch_line(1, 4, 110, 400, 0) << "\n" << second.substr(0, second.size() / 2) << std::flush;  // mid-write
  log.poll();
  ASSERT_EQ(log.complete_epochs(), 1u) << "worker1's second line is not complete yet";
  const EpochRow r = log.row(0);
  EXPECT_EQ(r.epoch, 1);
  EXPECT_EQ(r.step, 4u);
  EXPECT_DOUBLE_EQ(r.up.payload_bytes, 100 + 110) << "bytes are summed over workers";
  EXPECT_DOUBLE_EQ(r.up.framing_bytes, 10 + 11);
  EXPECT_DOUBLE_EQ(r.down.payload_bytes, 800);
  EXPECT_DOUBLE_EQ(r.test_accuracy, 0.25) << "accuracy is worker 0's";

  w1 << second.substr(second.size() / 2) << "\n" << std::flush;
  log.poll();
  ASSERT_EQ(log.complete_epochs(), 2u);
  EXPECT_DOUBLE_EQ(log.row(1).up.payload_bytes, 200 + 210);

  RunRecorder rec(run_.get(), shape(), {});
  EXPECT_EQ(log.record_new(&rec), 2u);
  EXPECT_EQ(log.record_new(&rec), 0u) << "an epoch is recorded once";
  EXPECT_EQ(lines_of(run_->path() / "metrics.csv").size(), 3u);

  EXPECT_EQ(log.missing_finals(), "worker0, worker1");
  w0 << nlohmann::json{{"final", true}, {"bottleneck", "compute"}, {"stages", {{"compute", 6.0}, {"send", 2.0}}}}.dump()
     << "\n" << std::flush;
  log.poll();
  EXPECT_EQ(log.missing_finals(), "worker1");
  const nlohmann::json res = log.results(rec);
  EXPECT_EQ(res["steps"], 8);
  EXPECT_EQ(res["bottleneck"], "compute");
  EXPECT_DOUBLE_EQ(res["compute_seconds_per_step"].get<double>(), 6.0 / 8) << "stages minus send and pull_wait";
  EXPECT_DOUBLE_EQ(res["bytes_up"].get<double>(), 410);
}

TEST_F(TrainAccounting, WorkerLinesMergeStalenessAndDeviceCopies) {
  const fs::path procs = root_ / "procs";
  fs::create_directories(procs);
  WorkerEpochLog log(procs, 2);
  std::ofstream(log.file(0)) << R"({"epoch": 1, "step": 4, "seconds": 1, "staleness": {"pushes": 8, "sum": 4, "max": 2},)"
                             << R"( "h2d_bytes": 100, "d2h_bytes": 50})" << "\n";
  std::ofstream(log.file(1)) << R"({"epoch": 1, "step": 4, "seconds": 2, "staleness": {"pushes": 8, "sum": 12, "max": 3},)"
                             << R"( "h2d_bytes": 100, "d2h_bytes": 50})" << "\n";
  log.poll();
  ASSERT_EQ(log.complete_epochs(), 1u);
  const EpochRow r = log.row(0);
  EXPECT_DOUBLE_EQ(r.stale_pushes, 16);
  EXPECT_DOUBLE_EQ(r.staleness_sum, 16);
  EXPECT_DOUBLE_EQ(r.staleness_max, 3) << "the largest of the workers'";
  EXPECT_DOUBLE_EQ(r.h2d_bytes, 200);
  EXPECT_DOUBLE_EQ(r.d2h_bytes, 100);
}

}  // namespace
}  // namespace gradzip::experiments
