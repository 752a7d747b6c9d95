// `gradzip train` through the binary for the worker's step pipeline (issue 11): async
// and SSP in the simulation and as local processes, with per-push staleness in
// metrics.csv; --straggler; a compressed downlink whose replicas agree with the shards;
// --overlap on/off training identically; injected faults stopping a run with a typed
// error and a complete run directory. Tiny runs (an MLP on 512 Fashion-MNIST images).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/experiments/shell.h"

namespace {
namespace fs = std::filesystem;
using gradzip::testing::shell;
using gradzip::testing::ShellResult;

const std::string kExe = GRADZIP_EXE;
const std::string kData = "/usr/share/datasets/fashion-mnist";
const std::string kTiny = " --model mlp --width 32 --train-subset 512 --test-subset 100 --epochs 2 --batch-size 32 "
                          "--min-compress-numel 0 --bucket-mb 0.02 --first-bucket-mb 0.005 "
                          "--torch-threads 1 --loader-threads 1 --lr 0.05 --data-dir " + kData;

/// metrics.csv as columns: name -> one value per row.
std::map<std::string, std::vector<double>> read_metrics(const fs::path& csv) {
  std::ifstream f(csv);
  std::string line;
  std::vector<std::string> names;
  std::map<std::string, std::vector<double>> cols;
  if (!std::getline(f, line)) return cols;
  std::stringstream header(line);
  for (std::string n; std::getline(header, n, ',');) names.push_back(n);
  while (std::getline(f, line)) {
    std::stringstream row(line);
    std::size_t i = 0;
    for (std::string v; std::getline(row, v, ',') && i < names.size(); ++i) {
      cols[names[i]].push_back(v.empty() ? 0.0 : std::stod(v));
    }
  }
  return cols;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f, nullptr, false);
}

class TrainPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kData)) GTEST_SKIP() << "Fashion-MNIST not installed at " << kData;
    root_ = fs::temp_directory_path() / ("gz-pipeline-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }
  /// Runs `gradzip train <args>` with `workers` workers into run directory `name`.
  ShellResult train(const std::string& name, const std::string& args, int workers = 2) {
    return shell("'" + kExe + "' train --run-dir '" + (root_ / name).string() + "'" + kTiny + " --workers " +
                     std::to_string(workers) + " " + args,
                 root_ / (name + ".log"));
  }
  /// --mode async and --mode ssp under `cluster` complete with the staleness and PCIe
  /// columns in metrics.csv.
  void expect_async_and_ssp_run(const std::string& cluster) {
    struct Mode {
      std::string name, args;
    };
    for (const Mode& mode : {Mode{"async", "--mode async"}, Mode{"ssp", "--mode ssp --slack 1"}}) {
      const std::string name = cluster + "-" + mode.name;
      const ShellResult r = train(name, "--cluster " + cluster + " " + mode.args);
      ASSERT_EQ(r.status, 0) << name << "\n" << r.output;
      const nlohmann::json summary = read_json(root_ / name / "summary.json");
      EXPECT_EQ(summary["status"], "complete") << name;
      EXPECT_EQ(summary["mode"], mode.name);
      auto m = read_metrics(root_ / name / "metrics.csv");
      ASSERT_EQ(m["epoch"].size(), 2u) << name;
      for (const char* col : {"push_staleness_mean", "push_staleness_max", "h2d_bytes", "d2h_bytes"}) {
        EXPECT_EQ(m[col].size(), 2u) << name << " column " << col;
      }
      EXPECT_GE(m["push_staleness_max"].back(), m["push_staleness_mean"].back()) << name;
      EXPECT_EQ(m["h2d_bytes"].back(), 0.0) << "no device copies on CPU";
      EXPECT_EQ(m["d2h_bytes"].back(), 0.0);
    }
  }
  fs::path root_;
};

TEST_F(TrainPipeline, AsyncAndSspRunInTheSimulationWithStalenessColumns) { expect_async_and_ssp_run("sim"); }

TEST_F(TrainPipeline, AsyncAndSspRunAsLocalProcessesWithStalenessColumns) { expect_async_and_ssp_run("local"); }

TEST_F(TrainPipeline, AStragglerMakesAsyncPushesStaleButNotSyncOnes) {
  ShellResult r = train("async", "--mode async --straggler 1:4");
  ASSERT_EQ(r.status, 0) << r.output;
  auto m = read_metrics(root_ / "async" / "metrics.csv");
  EXPECT_GE(m["push_staleness_max"].back(), 1.0)
      << "while worker 1 sleeps, worker 0 updates every bucket it will push next";
  r = train("sync", "--mode sync --straggler 1:4");
  ASSERT_EQ(r.status, 0) << r.output;
  m = read_metrics(root_ / "sync" / "metrics.csv");
  EXPECT_EQ(m["push_staleness_max"].back(), 0.0);
  r = train("bad", "--straggler 5:2");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--straggler"), std::string::npos) << r.output;
}

TEST_F(TrainPipeline, CompressedDownlinkReplicasAgreeWithTheShards) {
  ShellResult r = train("dense", "");
  ASSERT_EQ(r.status, 0) << r.output;
  r = train("topk", "--downlink topk:ratio=0.01 --downlink-resync 4");
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json dense = read_json(root_ / "dense" / "summary.json");
  const nlohmann::json topk = read_json(root_ / "topk" / "summary.json");
  EXPECT_EQ(topk["downlink"], "topk:ratio=0.01");
  EXPECT_EQ(topk["replica_max_abs_diff"].get<double>(), 0.0) << "worker parameters == the shards' replica";
  EXPECT_GT(topk["downlink_resyncs"].get<double>(), 0.0);
  EXPECT_EQ(topk["downlink_resync_max_abs_diff"].get<double>(), 0.0) << "no drift at any resync";
  EXPECT_LT(topk["bytes_down"].get<double>(), dense["bytes_down"].get<double>() / 3);
  // The uplink is unchanged but for the handshake, whose signature names the downlink.
  EXPECT_NEAR(topk["bytes_up"].get<double>(), dense["bytes_up"].get<double>(), 100.0);
  // The same as processes: each worker compared its replica at every resync.
  r = train("topk-local", "--cluster local --downlink topk:ratio=0.01 --downlink-resync 4");
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json local = read_json(root_ / "topk-local" / "summary.json");
  EXPECT_GT(local["downlink_resyncs"].get<double>(), 0.0);
  EXPECT_EQ(local["downlink_resync_max_abs_diff"].get<double>(), 0.0);
  EXPECT_LT(local["bytes_down"].get<double>(), dense["bytes_down"].get<double>() / 3);
  // A compressed downlink needs one replica for all workers: sync only.
  r = train("async", "--downlink topk:ratio=0.01 --mode async");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("needs --mode sync"), std::string::npos) << r.output;
}

TEST_F(TrainPipeline, OverlapOnAndOffTrainIdentically) {
  ShellResult r = train("off", "--overlap off", 3);
  ASSERT_EQ(r.status, 0) << r.output;
  r = train("on", "--overlap on --sim-link-delay --link eth10g", 3);
  ASSERT_EQ(r.status, 0) << r.output;
  auto off = read_metrics(root_ / "off" / "metrics.csv");
  auto on = read_metrics(root_ / "on" / "metrics.csv");
  for (const char* col : {"train_loss", "test_loss", "test_accuracy", "up_payload_bytes", "down_payload_bytes"}) {
    EXPECT_EQ(off[col], on[col]) << col;
  }
  EXPECT_EQ(read_json(root_ / "on" / "summary.json")["overlapped"], true);
  EXPECT_EQ(read_json(root_ / "off" / "summary.json")["overlapped"], false);
  r = shell("'" + kExe + "' train --help", root_ / "help.log");
  for (const char* opt : {"--overlap", "--encode-threads", "--straggler", "--downlink-resync", "--first-bucket-mb",
                          "--sim-link-delay", "--inject-fault"}) {
    EXPECT_NE(r.output.find(opt), std::string::npos) << opt;
  }
}

TEST_F(TrainPipeline, InjectedFaultsStopTheRunWithATypedErrorAndAnIntactRunDirectory) {
  struct Case {
    std::string name, args, error;
  };
  const std::vector<Case> cases = {
      {"sim-push", "--inject-fault push:3", "injected fault"},
      {"sim-hook", "--inject-fault hook:3", "gradient hook failed"},
      {"local-push", "--cluster local --inject-fault push:3", "worker0"},
  };
  for (const Case& c : cases) {
    const ShellResult r = train(c.name, c.args);
    EXPECT_EQ(r.status, 1) << c.name << "\n" << r.output;
    EXPECT_NE(r.output.find(c.error), std::string::npos) << c.name << "\n" << r.output;
    const fs::path dir = root_ / c.name;
    for (const char* f : {"config.ini", "metrics.csv", "events.jsonl", "summary.json", "host.json"}) {
      EXPECT_TRUE(fs::exists(dir / f)) << c.name << " " << f;
    }
    if (c.name.rfind("local", 0) == 0) {  // the worker's own log has the typed error
      EXPECT_NE(shell("cat '" + (dir / "procs" / "worker0.log").string() + "'", root_ / "w0.log")
                    .output.find("injected fault"),
                std::string::npos);
    }
    const nlohmann::json summary = read_json(dir / "summary.json");
    EXPECT_EQ(summary["status"], "failed") << c.name;
    EXPECT_TRUE(summary.contains("error") && summary["error"] != "") << c.name;
  }
  EXPECT_EQ(train("bad", "--inject-fault hook:x").status, 2);
  EXPECT_EQ(train("bad2", "--inject-fault hook:1 --overlap off").status, 2);
}

}  // namespace
