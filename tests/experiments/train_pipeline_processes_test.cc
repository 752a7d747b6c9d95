// The step pipeline's features as local processes through `gradzip train --cluster
// local` (slow: three processes each load torch and the data): a compressed downlink
// whose workers find no drift at any dense resync, and an injected push fault that
// stops every process, with the typed error in the worker's log and a failed but
// complete run directory.
#include "tests/experiments/train_pipeline_fixture.h"

namespace {
namespace fs = std::filesystem;
using gradzip::testing::read_json;
using gradzip::testing::Result;
using gradzip::testing::TrainPipeline;

TEST_F(TrainPipeline, LocalProcessesWithACompressedDownlinkFindNoDriftAtResyncs) {
  expect_compressed_downlink("local", "ef+topk:ratio=0.01");
}

TEST_F(TrainPipeline, LocalProcessesStopOnAnInjectedPushFault) {
  const Result r = train("fault", "--cluster local --inject-fault push:3");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("worker0"), std::string::npos) << "the failed process is named\n" << r.output;
  const fs::path dir = root_ / "fault";
  EXPECT_NE(gradzip::testing::slurp(dir / "procs" / "worker0.log").find("injected fault"), std::string::npos);
  for (const char* f : {"config.ini", "metrics.csv", "events.jsonl", "summary.json", "host.json"}) {
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  }
  EXPECT_EQ(read_json(dir / "summary.json")["status"], "failed");
}

}  // namespace
