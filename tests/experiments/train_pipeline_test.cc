// `gradzip train` through the binary for the worker's step pipeline (issue 11): async
// and SSP in the simulation and as local processes, with per-push staleness in
// metrics.csv; --straggler; a compressed downlink whose replicas agree with the shards;
// --overlap on/off training identically; injected faults stopping a run with a typed
// error and a complete run directory. The local-process variants of the last two are in
// train_pipeline_processes_test.cc (slow).
#include "tests/experiments/train_pipeline_fixture.h"

namespace {
namespace fs = std::filesystem;
using gradzip::testing::read_json;
using gradzip::testing::read_metrics;
using gradzip::testing::Result;
using gradzip::testing::TrainPipeline;
using gradzip::testing::gradzip;

TEST_F(TrainPipeline, AsyncAndSspRunInTheSimulationWithStalenessColumns) { expect_async_and_ssp_run("sim"); }

TEST_F(TrainPipeline, AsyncAndSspRunAsLocalProcessesWithStalenessColumns) { expect_async_and_ssp_run("local"); }

TEST_F(TrainPipeline, AStragglerMakesAsyncPushesStaleButNotSyncOnes) {
  Result r = train("async", "--mode async --straggler 1:4");
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
  // "ef+": the shards' downlink always has error feedback; the codec is what is recorded.
  const auto [dense, topk] = expect_compressed_downlink("sim", "ef+topk:ratio=0.01");
  EXPECT_EQ(topk["downlink"], "topk:ratio=0.01");
  EXPECT_EQ(topk["replica_max_abs_diff"].get<double>(), 0.0) << "worker parameters == the shards' replica";
  // The uplink is unchanged but for the handshake, whose signature names the downlink.
  EXPECT_NEAR(topk["bytes_up"].get<double>(), dense["bytes_up"].get<double>(), 100.0);
  Result r;
  // A compressed downlink needs one replica for all workers: sync only.
  r = train("async", "--downlink topk:ratio=0.01 --mode async");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("needs --mode sync"), std::string::npos) << r.output;
  // Another memory than error feedback is refused, naming the form that works.
  r = train("dgc", "--downlink dgc+topk:ratio=0.01");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("ef+CODEC"), std::string::npos) << r.output;
}

TEST_F(TrainPipeline, OverlapOnAndOffTrainIdentically) {
  Result r = train("off", "--overlap off", 3);
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
  r = gradzip("train --help", root_ / "help.log");
  for (const char* opt : {"--overlap", "--encode-threads", "--mode", "--straggler", "--downlink", "--downlink-resync",
                          "--first-bucket-mb", "--sim-link-delay", "--inject-fault"}) {
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
  };
  for (const Case& c : cases) {
    const Result r = train(c.name, c.args);
    EXPECT_EQ(r.status, 1) << c.name << "\n" << r.output;
    EXPECT_NE(r.output.find(c.error), std::string::npos) << c.name << "\n" << r.output;
    const fs::path dir = root_ / c.name;
    for (const char* f : {"config.ini", "metrics.csv", "events.jsonl", "summary.json", "host.json"}) {
      EXPECT_TRUE(fs::exists(dir / f)) << c.name << " " << f;
    }
    const nlohmann::json summary = read_json(dir / "summary.json");
    EXPECT_EQ(summary["status"], "failed") << c.name;
    EXPECT_TRUE(summary.contains("error") && summary["error"] != "") << c.name;
  }
  EXPECT_EQ(train("bad", "--inject-fault hook:x").status, 2);
  EXPECT_EQ(train("bad2", "--inject-fault hook:1 --overlap off").status, 2);
}

}  // namespace
