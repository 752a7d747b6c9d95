// The step pipeline's features as local processes through `gradzip train --cluster
// local` (slow: three processes each load torch and the data): a compressed downlink
// whose workers find no drift at any dense resync, and an injected push fault that
// stops every process, with the typed error in the worker's log and a failed but
// complete run directory.
#include "tests/experiments/train_pipeline_fixture.h"

namespace {
namespace fs = std::filesystem;
using gradzip::testing::read_json;
using gradzip::testing::shell;
using gradzip::testing::ShellResult;
using gradzip::testing::TrainPipeline;

TEST_F(TrainPipeline, LocalProcessesWithACompressedDownlinkFindNoDriftAtResyncs) {
  ShellResult r = train("dense", "--cluster local");
  ASSERT_EQ(r.status, 0) << r.output;
  r = train("topk", "--cluster local --downlink topk:ratio=0.01 --downlink-resync 4");
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json dense = read_json(root_ / "dense" / "summary.json");
  const nlohmann::json topk = read_json(root_ / "topk" / "summary.json");
  EXPECT_GT(topk["downlink_resyncs"].get<double>(), 0.0);
  EXPECT_EQ(topk["downlink_resync_max_abs_diff"].get<double>(), 0.0) << "each worker's replica == the shard's";
  EXPECT_LT(topk["bytes_down"].get<double>(), dense["bytes_down"].get<double>() / 3);
}

TEST_F(TrainPipeline, LocalProcessesStopOnAnInjectedPushFault) {
  const ShellResult r = train("fault", "--cluster local --inject-fault push:3");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("worker0"), std::string::npos) << "the failed process is named\n" << r.output;
  const fs::path dir = root_ / "fault";
  EXPECT_NE(shell("cat '" + (dir / "procs" / "worker0.log").string() + "'", root_ / "w0.log").output.find(
                "injected fault"),
            std::string::npos);
  for (const char* f : {"config.ini", "metrics.csv", "events.jsonl", "summary.json", "host.json"}) {
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  }
  EXPECT_EQ(read_json(dir / "summary.json")["status"], "failed");
}

}  // namespace
