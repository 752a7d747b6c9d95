// gradzip report: reading run directories (and refusing bad ones with a typed error)
// and the comparison table, checked against numbers computed by hand.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "experiments/report.h"

namespace gradzip::experiments {
namespace {
namespace fs = std::filesystem;

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("gz-report-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A run of `workers` workers, 1000 parameters, evaluated at steps 10 and 20 (0.5 s
  // per 10 steps). Per worker and step: `up` payload bytes + 50 framing + 400 TCP/IP
  // up, 4000 payload bytes down.
  fs::path make_run(const std::string& name, const std::string& compressor, double up, double acc10, double acc20,
                    int workers = 2) {
    const fs::path dir = root_ / name;
    fs::create_directories(dir);
    std::ofstream(dir / "summary.json") << R"({"status": "complete", "compressor": ")" << compressor
                                        << R"(", "workers": )" << workers
                                        << R"(, "shards": 1, "parameters": 1000, "compute_seconds_per_step": 0.01,
        "bottleneck": "compute", "stages": {"compute": 1.5, "send": 0.2}})";
    std::ofstream m(dir / "metrics.csv");
    m << "epoch,step,seconds,train_loss,test_accuracy,up_payload_bytes,up_framing_bytes,up_tcpip_bytes,"
         "down_payload_bytes,down_framing_bytes,down_tcpip_bytes\n";
    for (int k = 1; k <= 2; ++k) {
      const double ws = 10.0 * k * workers;  // worker-steps so far
      m << k << "," << 10 * k << "," << 0.5 * k << ",1.0," << (k == 1 ? acc10 : acc20) << "," << up * ws << ","
        << 50 * ws << "," << 400 * ws << "," << 4000 * ws << ",0,0\n";
    }
    return dir;
  }

  fs::path root_;
};

TEST_F(ReportTest, LoadsRunDirectory) {
  const RunRecord r = load_run(make_run("a", "identity", 4100, 0.5, 0.7).string());
  EXPECT_EQ(r.name, "a");
  EXPECT_EQ(r.compressor, "identity");
  EXPECT_EQ(r.workers, 2u);
  EXPECT_EQ(r.parameters, 1000u);
  EXPECT_DOUBLE_EQ(r.compute_seconds_per_step, 0.01);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_DOUBLE_EQ(r.rows[1].up.payload_bytes, 4100 * 40);
  EXPECT_DOUBLE_EQ(r.stages.at("send"), 0.2);
  const auto segs = run_segments(r);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[1].steps, 10u);
  EXPECT_DOUBLE_EQ(segs[1].compute_s, 0.1);  // 10 steps * 0.01 s
  ASSERT_EQ(segs[1].mean_step_traffic.up.size(), 2u);
  EXPECT_DOUBLE_EQ(segs[1].mean_step_traffic.up[0].payload_bytes, 4100);
  EXPECT_DOUBLE_EQ(segs[1].mean_step_traffic.up[0].tcpip_bytes, 400);
}

TEST_F(ReportTest, TableNumbers) {
  std::vector<RunRecord> runs = {load_run(make_run("dense", "identity", 4100, 0.5, 0.7).string()),
                                 load_run(make_run("topk", "ef+topk:ratio=0.1", 410, 0.4, 0.65).string())};
  ReportSettings settings;
  settings.links = {parse_link("custom:bw=8mbit,lat=0")};  // 1e6 B/s
  settings.target_accuracy = 0.6;
  const ReportTable t = make_report(runs, settings);
  ASSERT_EQ(t.rows.size(), 2u);
  const ReportRow& d = t.rows[0];
  // up per worker-step: 4100 + 50 + 400 = 4550 B; ratio 4 * 1000 / 4100.
  EXPECT_DOUBLE_EQ(d.up_bytes_per_step, 4550);
  EXPECT_DOUBLE_EQ(d.down_bytes_per_step, 4000);
  EXPECT_NEAR(d.compression_ratio, 4000.0 / 4100.0, 1e-12);
  EXPECT_DOUBLE_EQ(d.best_accuracy, 0.7);
  EXPECT_DOUBLE_EQ(d.final_accuracy, 0.7);
  EXPECT_DOUBLE_EQ(d.steps_per_s, 20);  // 20 steps in 1.0 s
  EXPECT_DOUBLE_EQ(d.tta_measured_s, 1.0);  // 0.6 first reached at step 20
  // Modeled: per step 0.01 s compute + up 2 * 4550 B / 1e6 + down 2 * 4000 B / 1e6
  // (both workers through the single shard's port) = 0.01 + 0.0091 + 0.008 = 0.0271 s;
  // reached at step 20 -> 0.542 s.
  ASSERT_EQ(d.tta_modeled_s.size(), 1u);
  EXPECT_NEAR(d.tta_modeled_s[0], 0.542, 1e-9);
  const ReportRow& k = t.rows[1];
  EXPECT_NEAR(k.compression_ratio, 4000.0 / 410.0, 1e-12);
  // topk: up 410 + 450 = 860 B -> 0.01 + 0.00172 + 0.008 = 0.01972 s/step -> 0.3944 s.
  EXPECT_NEAR(k.tta_modeled_s[0], 0.3944, 1e-9);
  EXPECT_EQ(k.bottleneck, "compute");

  const std::string md = report_markdown(t);
  EXPECT_NE(md.find("| dense | `identity` | 2 x 1 |"), std::string::npos) << md;
  EXPECT_NE(md.find("TTA custom:bw=8mbit,lat=0"), std::string::npos);
  EXPECT_NE(md.find("9.8x"), std::string::npos);  // topk ratio 9.76
  const std::string csv = report_csv(t);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "run,compressor,workers,shards,up_bytes_per_step,down_bytes_per_step,compression_ratio,best_accuracy,"
            "final_accuracy,steps_per_s,target_accuracy,tta_measured_s,tta_custom:bw=8mbit,lat=0_s,bottleneck");
  EXPECT_NE(csv.find("\"topk\",\"ef+topk:ratio=0.1\",2,1,860,4000,"), std::string::npos) << csv;

  const std::string tl = report_timelines_csv(runs, settings.links);
  // dense at step 10: 10 * 0.0271 = 0.271 s modeled, 0.5 s measured.
  EXPECT_NE(tl.find("\"dense\",\"identity\",\"custom:bw=8mbit,lat=0\",10,0.5,0.271,0.5\n"), std::string::npos) << tl;
}

TEST_F(ReportTest, AutomaticTargetIsReachedByEveryRun) {
  std::vector<RunRecord> runs = {load_run(make_run("a", "identity", 4100, 0.5, 0.73).string()),
                                 load_run(make_run("b", "fp16", 2050, 0.4, 0.612).string())};
  const ReportTable t = make_report(runs, ReportSettings{});
  EXPECT_NEAR(t.target_accuracy, 0.61, 1e-9);  // floor(0.612 / 0.005) * 0.005
  for (const auto& r : t.rows) EXPECT_TRUE(std::isfinite(r.tta_measured_s)) << r.run;
  // A target nobody reaches: "not reached" in markdown, empty cell in CSV.
  ReportSettings high;
  high.target_accuracy = 0.99;
  high.links = {parse_link("eth1g")};
  const ReportTable h = make_report(runs, high);
  EXPECT_FALSE(std::isfinite(h.rows[0].tta_measured_s));
  EXPECT_NE(report_markdown(h).find("not reached"), std::string::npos);
}

// A PowerSGD run (--aggregation powersgd) has no shards: it loads under its aggregation
// spec, its measured numbers are reported, and its traffic is modeled as a ring among the
// workers (a time and timeline rows like any run). A parameter-server run with 0 shards is
// an error.
TEST_F(ReportTest, CollectiveRunsLoadUnderTheirAggregationSpecAndAreModeledAsARing) {
  const fs::path psgd = make_run("psgd", "none+identity", 1000, 0.5, 0.7);
  std::ofstream(psgd / "summary.json") << R"({"status": "complete", "compressor": "none+identity", "workers": 2,
      "shards": 0, "parameters": 1000, "aggregation": "powersgd", "aggregation_spec": "powersgd:rank=4",
      "compute_seconds_per_step": 0.01})";
  std::vector<RunRecord> runs = {load_run(make_run("dense", "identity", 4100, 0.5, 0.7).string()),
                                 load_run(psgd.string())};
  EXPECT_EQ(runs[1].compressor, "powersgd:rank=4");
  EXPECT_EQ(runs[1].aggregation, "powersgd");
  EXPECT_EQ(runs[1].shards, 0u);
  ReportSettings settings;
  settings.links = {parse_link("custom:bw=8mbit,lat=0")};
  settings.target_accuracy = 0.6;
  const ReportTable t = make_report(runs, settings);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_DOUBLE_EQ(t.rows[1].tta_measured_s, 1.0);
  EXPECT_DOUBLE_EQ(t.rows[1].up_bytes_per_step, 1450);  // 1000 + 50 + 400
  ASSERT_TRUE(std::isfinite(t.rows[1].tta_modeled_s[0])) << "the ring model applies";
  EXPECT_GE(t.rows[1].tta_modeled_s[0], 20 * 0.01) << "at least the measured compute of its 20 steps";
  EXPECT_NE(report_markdown(t).find("| psgd | `powersgd:rank=4` | 2 x 0 |"), std::string::npos) << report_markdown(t);
  EXPECT_EQ(report_markdown(t).find(" 1.00 s | n/a |"), std::string::npos) << report_markdown(t);
  const std::string tl = report_timelines_csv(runs, settings.links);
  EXPECT_NE(tl.find("\"dense\""), std::string::npos);
  EXPECT_NE(tl.find("\"psgd\""), std::string::npos) << tl;

  std::ofstream(psgd / "summary.json") << R"({"compressor": "identity", "workers": 2, "shards": 0, "parameters": 9})";
  EXPECT_THROW(load_run(psgd.string()), ReportError);
}

TEST_F(ReportTest, EvaluationTimeJoinsEverySegmentsMeasuredPart) {
  // Rows at steps 10 and 20, 1.0 s in all; step_seconds 0.02 -> 20 * 0.02 = 0.4 s of
  // training, 0.6 s outside the steps (evaluations): 0.3 s per segment, added to the
  // segment's 10 * 0.01 s of compute.
  const fs::path d = make_run("evals", "identity", 4100, 0.5, 0.7);
  std::ofstream(d / "summary.json") << R"({"status": "complete", "compressor": "identity", "workers": 2, "shards": 1,
      "parameters": 1000, "compute_seconds_per_step": 0.01, "step_seconds": 0.02})";
  const auto segs = run_segments(load_run(d.string()));
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_NEAR(segs[0].compute_s, 0.4, 1e-12);
  EXPECT_NEAR(segs[1].compute_s, 0.4, 1e-12);
  EXPECT_NEAR(measured_timeline(segs).back(), 1.0, 1e-12);
}

TEST_F(ReportTest, CollectiveRunHasNoShardsAndRingModel) {
  const fs::path d = make_run("ring", "fp16", 4100, 0.5, 0.7, 4);
  std::ofstream(d / "summary.json") << R"({"status": "complete", "compressor": "fp16", "workers": 4, "shards": 0,
      "aggregation": "allreduce", "parameters": 1000, "compute_seconds_per_step": 0.01})";
  const RunRecord run = load_run(d.string());
  EXPECT_EQ(run.aggregation, "allreduce");
  EXPECT_EQ(run.shards, 0u);
  const auto segs = run_segments(run);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[0].mean_step_traffic.collective_rounds, 6u);  // 2 (R - 1), R = 4
  // A parameter-server run still needs a shard.
  std::ofstream(d / "summary.json") << R"({"compressor": "fp16", "workers": 4, "shards": 0, "parameters": 1000})";
  EXPECT_THROW(load_run(d.string()), ReportError);
  EXPECT_EQ(collective_ring_rounds("ps", 4), 0u);
  EXPECT_EQ(collective_ring_rounds("allgather", 4), 3u);
  EXPECT_EQ(collective_ring_rounds("powersgd", 4), 12u);
  EXPECT_EQ(collective_ring_rounds("allreduce", 1), 2u);
}

TEST_F(ReportTest, BadRunDirectoriesAreTypedErrors) {
  auto error_of = [](const fs::path& dir) -> std::string {
    try {
      load_run(dir.string());
    } catch (const ReportError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of(root_ / "nope").find("not a directory"), std::string::npos);
  const fs::path d = make_run("bad", "identity", 4100, 0.5, 0.7);
  std::ofstream(d / "metrics.csv") << "step,seconds,test_accuracy,up_payload_bytes,down_payload_bytes\n1,0.1,x,1,1\n";
  EXPECT_NE(error_of(d).find("metrics.csv:2 column test_accuracy: 'x' is not a number"), std::string::npos)
      << error_of(d);
  std::ofstream(d / "metrics.csv") << "step,seconds,test_accuracy\n1,0.1,0.5\n";
  EXPECT_NE(error_of(d).find("no column 'up_payload_bytes'"), std::string::npos);
  std::ofstream(d / "metrics.csv") << "step,seconds,test_accuracy,up_payload_bytes,down_payload_bytes\n1,0.1\n";
  EXPECT_NE(error_of(d).find("2 cells, header has 5"), std::string::npos);
  std::ofstream(d / "metrics.csv")
      << "step,seconds,test_accuracy,up_payload_bytes,down_payload_bytes\n5,0.1,0.5,1,1\n3,0.2,0.5,1,1\n";
  EXPECT_NE(error_of(d).find("backwards"), std::string::npos);
  std::ofstream(d / "summary.json") << "{\"compressor\": \"identity\"}";
  EXPECT_NE(error_of(d).find("missing \"workers\""), std::string::npos);
  std::ofstream(d / "summary.json") << "[1, 2";
  EXPECT_NE(error_of(d).find("not a JSON object"), std::string::npos);
  fs::remove(d / "summary.json");
  EXPECT_NE(error_of(d).find("summary.json: missing"), std::string::npos);
  EXPECT_THROW(make_report({}, ReportSettings{}), ReportError);
}

}  // namespace
}  // namespace gradzip::experiments
