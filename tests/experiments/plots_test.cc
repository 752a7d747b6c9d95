// plots/: render every figure from a tiny run directory made here, check each file
// exists, has the right magic and is not trivially small; bad input gives exit status 2.
// Skips (with the reason) when no python3 with matplotlib is found.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "experiments/report.h"

namespace gradzip::experiments {
namespace {
namespace fs = std::filesystem;

const fs::path kPlots = fs::path(GRADZIP_SOURCE_DIR) / "plots";

// Exit status of a shell command line (stdout/stderr to `log`).
int run_shell(const std::string& cmd, const fs::path& log) {
  const int rc = std::system((cmd + " > '" + log.string() + "' 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

std::string find_python(const fs::path& tmp) {
  for (const char* p : {"/usr/bin/python3", "python3"}) {
    if (run_shell(std::string(p) + " -c 'import matplotlib'", tmp / "probe.log") == 0) return p;
  }
  return "";
}

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  if (f) os << f.rdbuf();
  return os.str();
}

class PlotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("gz-plots-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    python_ = find_python(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A run directory as `gradzip train` writes it: 5 evaluations, accuracy rising.
  fs::path make_run(const std::string& name, const std::string& compressor, double up_bytes) {
    const fs::path dir = root_ / name;
    fs::create_directories(dir);
    std::ofstream(dir / "summary.json") << R"({"status": "complete", "compressor": ")" << compressor
                                        << R"(", "workers": 4, "shards": 2, "parameters": 50000,
      "compute_seconds_per_step": 0.02, "bottleneck": "compute",
      "stages": {"data_wait": 0.1, "compute": 2.0, "encode": 0.3, "send": 0.2, "pull_wait": 0.4}})";
    std::ofstream m(dir / "metrics.csv");
    m << "epoch,step,seconds,test_accuracy,up_payload_bytes,up_framing_bytes,up_tcpip_bytes,"
         "down_payload_bytes,down_framing_bytes,down_tcpip_bytes\n";
    for (int k = 1; k <= 5; ++k) {
      const double ws = 20.0 * k * 4;
      m << k << "," << 20 * k << "," << 1.5 * k << "," << 0.5 + 0.08 * k - (up_bytes < 1e5 ? 0.01 : 0) << ","
        << up_bytes * ws << "," << 100 * ws << "," << up_bytes * 0.06 * ws << "," << 200000 * ws << ",0,"
        << 12000 * ws << "\n";
    }
    return dir;
  }

  void expect_figure(const std::string& stem) {
    const std::string png = read(root_ / "fig" / (stem + ".png"));
    const std::string svg = read(root_ / "fig" / (stem + ".svg"));
    EXPECT_GT(png.size(), 5000u) << stem << ".png missing or tiny";
    EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << stem;
    EXPECT_GT(svg.size(), 5000u) << stem << ".svg missing or tiny";
    EXPECT_NE(svg.find("<svg"), std::string::npos) << stem;
  }

  fs::path root_;
  std::string python_;
};

TEST_F(PlotsTest, RendersEveryRunFigure) {
  if (python_.empty()) GTEST_SKIP() << "no python3 with matplotlib (Debian: python3-matplotlib)";
  const fs::path a = make_run("identity", "identity", 200000);
  const fs::path b = make_run("topk", "ef+topk:ratio=0.01", 4000);
  const std::vector<RunRecord> runs = {load_run(a.string()), load_run(b.string())};
  const auto links = parse_link_list("eth1g,eth10g");
  std::ofstream(root_ / "timelines.csv") << report_timelines_csv(runs, links);

  const std::string cmd = python_ + " '" + (kPlots / "plot_runs.py").string() + "' --out '" +
                          (root_ / "fig").string() + "' --timelines '" + (root_ / "timelines.csv").string() + "' '" +
                          a.string() + "' '" + b.string() + "'";
  ASSERT_EQ(run_shell(cmd, root_ / "plot.log"), 0) << read(root_ / "plot.log");
  for (const char* stem : {"accuracy_vs_bytes", "bytes_per_step", "step_breakdown", "accuracy_vs_time_eth1g",
                           "accuracy_vs_time_eth10g"}) {
    expect_figure(stem);
  }
}

// plots/rundir.py legend labels: a PowerSGD run (summary.json "aggregation" powersgd)
// is named by its aggregation spec, not its "none+identity" compressor, and a
// compressed downlink is named after the uplink codec.
TEST_F(PlotsTest, LabelsNamePowerSgdAndCompressedDownlink) {
  if (python_.empty()) GTEST_SKIP() << "no python3 with matplotlib (Debian: python3-matplotlib)";
  const fs::path psgd = make_run("psgd", "none+identity", 4000);
  std::ofstream(psgd / "summary.json") << R"({"status": "complete", "compressor": "none+identity", "workers": 4,
      "shards": 0, "parameters": 50000, "aggregation": "powersgd", "aggregation_spec": "powersgd:rank=4",
      "downlink": "dense"})";
  const fs::path bidir = make_run("bidir", "ef+topk:ratio=0.01,k=0,values=fp32", 4000);
  std::ofstream(bidir / "summary.json") << R"({"status": "complete", "compressor": "ef+topk:ratio=0.01,k=0",
      "workers": 4, "shards": 2, "parameters": 50000, "downlink": "none+scaled-sign:bucket=512"})";
  const fs::path plain = make_run("plain", "none+fp16", 100000);
  const std::string cmd = python_ + " -c \"import sys; sys.path.insert(0, '" + kPlots.string() +
                          "'); import rundir; print('|'.join(rundir.label(rundir.Run(p)) for p in sys.argv[1:]))\" '" +
                          psgd.string() + "' '" + bidir.string() + "' '" + plain.string() + "'";
  ASSERT_EQ(run_shell(cmd, root_ / "labels.log"), 0) << read(root_ / "labels.log");
  EXPECT_EQ(read(root_ / "labels.log"), "powersgd:rank=4|ef+topk:ratio=0.01 down scaled-sign:bucket=512|fp16\n");
}

TEST_F(PlotsTest, RendersBenchmarkBarsAndTable) {
  if (python_.empty()) GTEST_SKIP() << "no python3 with matplotlib (Debian: python3-matplotlib)";
  // Google Benchmark JSON layout: CPU rows (bench/quant: bytes_per_second, size in the
  // name) and GPU rows (bench/cuda: only custom counters GB_per_s and numel, one name at
  // two sizes), two sizes each, plus a CPU row at a size without a baseline.
  std::ofstream(root_ / "bench.json") << R"({"context": {"num_cpus": 2}, "benchmarks": [
    {"name": "codec/memcpy/n=1000", "run_type": "iteration", "bytes_per_second": 8.0e9},
    {"name": "codec/encode/qsgd/n=1000", "run_type": "iteration", "bytes_per_second": 2.0e9},
    {"name": "codec/memcpy/n=5000", "run_type": "iteration", "bytes_per_second": 4.0e9},
    {"name": "codec/encode/qsgd/n=5000", "run_type": "iteration", "bytes_per_second": 2.0e9},
    {"name": "codec/encode/qsgd/n=777", "run_type": "iteration", "bytes_per_second": 1.0e9},
    {"name": "copy_d2d/manual_time", "run_type": "iteration", "GB_per_s": 2000, "numel": 1000},
    {"name": "encode/fp16/ef/manual_time", "run_type": "iteration", "GB_per_s": 1000, "numel": 1000},
    {"name": "copy_d2d/manual_time", "run_type": "iteration", "GB_per_s": 3000, "numel": 5000},
    {"name": "encode/fp16/ef/manual_time", "run_type": "iteration", "GB_per_s": 2400, "numel": 5000}]})";
  const std::string cmd = python_ + " '" + (kPlots / "plot_bench.py").string() + "' --out '" +
                          (root_ / "fig").string() + "' '" + (root_ / "bench.json").string() + "'";
  ASSERT_EQ(run_shell(cmd, root_ / "bench.log"), 0) << read(root_ / "bench.log");
  expect_figure("codec_throughput");
  const std::string table = read(root_ / "fig" / "kernel_table.md");
  // Each ratio divides by the baseline of its own device and size: one fastest baseline
  // over everything would give 0.25 at both CPU sizes, and GPU rows must not be dropped.
  for (const char* row : {"| cpu | 1000 | codec/encode/qsgd/n=1000 | 2.000 | codec/memcpy/n=1000 | 0.25 |",
                          "| cpu | 5000 | codec/encode/qsgd/n=5000 | 2.000 | codec/memcpy/n=5000 | 0.50 |",
                          "| gpu | 1000 | encode/fp16/ef | 1000.000 | copy_d2d | 0.50 |",
                          "| gpu | 5000 | encode/fp16/ef | 2400.000 | copy_d2d | 0.80 |",
                          "| cpu | 777 | codec/encode/qsgd/n=777 | 1.000 | - | n/a |"}) {
    EXPECT_NE(table.find(row), std::string::npos) << row << "\n" << table;
  }
}

TEST_F(PlotsTest, BadInputIsExitStatus2) {
  if (python_.empty()) GTEST_SKIP() << "no python3 with matplotlib (Debian: python3-matplotlib)";
  fs::create_directories(root_ / "empty-run");
  const std::string runs = python_ + " '" + (kPlots / "plot_runs.py").string() + "' --out '" +
                           (root_ / "fig").string() + "' '" + (root_ / "empty-run").string() + "'";
  EXPECT_EQ(run_shell(runs, root_ / "bad.log"), 2);
  EXPECT_NE(read(root_ / "bad.log").find("summary.json"), std::string::npos) << read(root_ / "bad.log");
  std::ofstream(root_ / "notbench.json") << R"({"x": 1})";
  const std::string bench = python_ + " '" + (kPlots / "plot_bench.py").string() + "' --out '" +
                            (root_ / "fig").string() + "' '" + (root_ / "notbench.json").string() + "'";
  EXPECT_EQ(run_shell(bench, root_ / "bad2.log"), 2);
  EXPECT_NE(read(root_ / "bad2.log").find("benchmarks"), std::string::npos);
}

}  // namespace
}  // namespace gradzip::experiments
