// experiments/repro/*.sh: every script takes --budget quick|standard|full; with --dry-run
// it writes its sweep file and prints the `gradzip train` commands (through `gradzip
// sweep --dry-run`) without running them. Checks that each budget reaches the commands
// with its sizes and device, that --device and --parallel override the budget, and that
// a bad budget or option is exit status 2 with one line.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef GRADZIP_EXE
#error "GRADZIP_EXE must name the gradzip executable"
#endif

namespace {
namespace fs = std::filesystem;

const fs::path kRepro = fs::path(GRADZIP_SOURCE_DIR) / "experiments" / "repro";

struct Result {
  int code = -1;
  std::string out;
  int runs = 0;  ///< "would run:" lines
};

class ReproScripts : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("gz-repro-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  /// `bash experiments/repro/<script> <args> OUT` with GRADZIP set to the built binary.
  Result script(const std::string& name, const std::string& args) {
    const fs::path out = root_ / (name + "-" + std::to_string(++calls_));
    const std::string cmd = std::string("GRADZIP='") + GRADZIP_EXE + "' bash '" + (kRepro / name).string() + "' " +
                            args + " '" + out.string() + "' > '" + (root_ / "log").string() + "' 2>&1 </dev/null";
    const int rc = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    std::ifstream f(root_ / "log");
    std::string line;
    while (std::getline(f, line)) {
      r.out += line + "\n";
      r.runs += line.find("would run: ") != std::string::npos;
    }
    return r;
  }

  fs::path root_;
  int calls_ = 0;
};

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// One dry run: the script, its arguments, the runs it plans, and text its output holds
// (or, for `absent`, must not hold).
struct Case {
  const char* script;
  const char* args;
  int runs;
  std::vector<std::string> present;
  std::vector<std::string> absent = {};
};

TEST_F(ReproScripts, EveryBudgetReachesItsRuns) {
  const Case cases[] = {
      // codec study: 13 configurations (10 codecs through the parameter server, PowerSGD
      // rank 4, 2 bidirectional) x 1 seed (quick) or 3 seeds; standard is the default.
      {"codec_study.sh", "--budget quick --dry-run", 13,
       {"--device cpu --width 8 --train-subset 2048 --test-subset 1000 --epochs 2",
        "--torch-threads 1 --shards 1 --aggregation powersgd --compressor powersgd:rank=4 --seed 1 --run-dir ",
        "/runs/aggregation=powersgd__compressor=powersgd_rank=4__seed=1\n"}},
      {"codec_study.sh", "--dry-run", 39,
       {"--width 8 --train-subset 0 --test-subset 0 --epochs 2 --warmup-epochs 0 --torch-threads 1",
        "--compressor ef+topk:ratio=0.01 --seed 3 ", ", 2 at a time",
        "--compressor ef+topk:ratio=0.01 --downlink ef+topk:ratio=0.01 --seed 3 ",
        "--compressor ef+scaled-sign --downlink ef+scaled-sign --seed 2 ",
        "/runs/compressor=ef+scaled-sign__downlink=ef+scaled-sign__seed=2\n"}},
      {"codec_study.sh", "--budget full --dry-run", 39,
       {"--device cuda --width 0 --train-subset 0 --test-subset 0 --epochs 15", ", 8 at a time"}},
      {"codec_study.sh", "--budget full --device cpu --parallel 3 --dry-run", 39,
       {"--device cpu --width 0", ", 3 at a time"}},
      // quickstart: 6 codecs and top-k 1% + EF both ways; standard is quickstart.ini as it is.
      {"quickstart.sh", "--budget quick --dry-run", 7,
       {"--train-subset 512 --test-subset 500 --epochs 2",
        "--compressor ef+topk:ratio=0.01 --downlink ef+topk:ratio=0.01 --run-dir "}},
      {"quickstart.sh", "--budget standard --dry-run", 7, {"--device cpu --compressor"}, {"--train-subset"}},
      {"quickstart.sh", "--budget full --dry-run", 7, {"--device cuda --width 0 --train-subset 0"}},
      // link study (a dry run needs no root): 100 Mbit/s x 3 configurations (quick), then
      // 2 links x 10: fp32/fp16/QSGD/top-k 10% PS, top-k 1% PS and fp16 allreduce with
      // and without overlap, allgather, homomorphic.
      {"link_study.sh", "--budget quick --dry-run", 3,
       {"--aggregation allreduce --shards 1 --encode-threads 1 --compressor fp16 --train-subset 1024 --epochs 2 "
        "--link custom:bw=100mbit,lat=50us --overlap on"},
       {"1gbit"}},
      {"link_study.sh", "--dry-run", 20,
       {"--aggregation allreduce --shards 1 --encode-threads 1 --compressor fp16 --link custom:bw=1gbit,lat=50us --overlap off",
        "--compressor ef+topk:ratio=0.01 --downlink ef+topk:ratio=0.01 --link custom:bw=100mbit,lat=50us --overlap off",
        "--aggregation homomorphic --shards 1 --encode-threads 1 --compressor ef+thc",
        "--aggregation allgather --shards 1 --encode-threads 1 --compressor ef+topk:ratio=0.01"}},
      {"link_study.sh", "--budget full --dry-run", 20, {"--device cuda --compressor identity --width 32 --train-subset 0"}},
      // straggler study: sync and async (quick), then sync, async, SSP slack 2 and 8 x
      // fp32 and top-k, worker 3 four times slower on 1 Gbit/s.
      {"straggler_study.sh", "--budget quick --dry-run", 2, {"--mode async --link custom:bw=1gbit,lat=50us --straggler 3:4"}},
      {"straggler_study.sh", "--dry-run", 8,
       {"--mode ssp --link custom:bw=1gbit,lat=50us --straggler 3:4 --slack 8 --compressor ef+topk:ratio=0.01"}},
      // scaling: workers x (PS shards + allreduce), one epoch of exactly `steps` steps.
      {"scaling_study.sh", "--budget quick --dry-run", 4, {"--workers 2 --train-subset 1280 --epochs 1"}},
      {"scaling_study.sh", "--dry-run", 16,
       {"--workers 8 --train-subset 10240 --epochs 1 --compressor identity --shards 4",
        "--shards 1 --link custom:bw=100mbit,lat=50us --workers 1 --train-subset 1280 --epochs 1 --compressor identity "
        "--aggregation allreduce"}},
  };
  for (const Case& c : cases) {
    const Result r = script(c.script, c.args);
    const std::string what = std::string(c.script) + " " + c.args + "\n" + r.out;
    ASSERT_EQ(r.code, 0) << what;
    EXPECT_EQ(r.runs, c.runs) << what;
    for (const auto& text : c.present) EXPECT_TRUE(has(r.out, text)) << text << " missing from " << what;
    for (const auto& text : c.absent) EXPECT_FALSE(has(r.out, text)) << text << " in " << what;
  }
}

TEST_F(ReproScripts, KernelTableBudgets) {
  if (!fs::exists(fs::path(GRADZIP_EXE).parent_path().parent_path() / "bench" / "gradzip_bench_quant")) {
    GTEST_SKIP() << "benchmarks not built (GRADZIP_BUILD_BENCH=OFF)";
  }
  Result r = script("kernel_table.sh", "--budget quick --dry-run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "gradzip_bench_quant --benchmark_min_time=0.05 ")) << r.out;
  EXPECT_TRUE(has(r.out, "--benchmark_filter=n=1000000$")) << r.out;
  r = script("kernel_table.sh", "--budget full --device cpu --dry-run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "gradzip_bench_quant --benchmark_min_time=0.5 --benchmark_repetitions=3 ")) << r.out;
  EXPECT_FALSE(has(r.out, "gradzip_bench_cuda")) << "--device cpu skips the GPU benchmark\n" << r.out;
}

// The one-command GPU study plans its three steps, each under its time limit (14
// minutes in all), results under the output folder; it runs the full budget only.
TEST_F(ReproScripts, GpuStudyPlansHostCheckKernelTableAndFullCodecStudy) {
  Result r = script("gpu_study.sh", "--dry-run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "timeout 360 bash ")) << r.out;
  EXPECT_TRUE(has(r.out, "scripts/gpu-host-check --build-dir ")) << r.out;
  EXPECT_TRUE(has(r.out, "/build/experiments/gradzip bash ")) << r.out;
  EXPECT_TRUE(has(r.out, "kernel_table.sh --budget full ")) << r.out;
  EXPECT_TRUE(has(r.out, "codec_study.sh --budget full --device cuda --parallel 8 ")) << r.out;
  int seconds = 0;
  for (std::size_t at = r.out.find("timeout "); at != std::string::npos; at = r.out.find("timeout ", at + 1)) {
    seconds += std::stoi(r.out.substr(at + 8));
  }
  EXPECT_LE(seconds, 14 * 60) << r.out;
  r = script("gpu_study.sh", "--parallel 4 --dry-run");
  EXPECT_TRUE(has(r.out, "--device cuda --parallel 4 ")) << r.out;
  r = script("gpu_study.sh", "--budget quick --dry-run");
  EXPECT_EQ(r.code, 2) << r.out;
}

TEST_F(ReproScripts, BadBudgetOrOptionIsExitStatus2) {
  for (const char* name : {"codec_study.sh", "quickstart.sh", "link_study.sh", "straggler_study.sh", "scaling_study.sh",
                           "kernel_table.sh", "gpu_study.sh"}) {
    Result r = script(name, "--budget huge --dry-run");
    EXPECT_EQ(r.code, 2) << name << "\n" << r.out;
    EXPECT_TRUE(has(r.out, "--budget must be quick, standard or full, not 'huge'")) << name << "\n" << r.out;
    r = script(name, "--bogus --dry-run");
    EXPECT_EQ(r.code, 2) << name << "\n" << r.out;
    EXPECT_TRUE(has(r.out, "unknown option --bogus")) << name << "\n" << r.out;
    r = script(name, "--help");
    EXPECT_EQ(r.code, 0) << name;
    EXPECT_TRUE(has(r.out, "Budgets (--budget")) << name << "\n" << r.out;
  }
  EXPECT_EQ(script("codec_study.sh", "--parallel 0 --dry-run").code, 2);
}

// The committed study results are what experiments/repro/study_table.py computes from the
// committed run directories and per-group reports: rebuilding each table from a copy gives
// the same report.md, and a row for every run.
TEST_F(ReproScripts, StudyTablesRebuildFromCommittedResults) {
  if (std::system("/usr/bin/python3 -c 'import matplotlib' > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 has no matplotlib";
  }
  const fs::path results = fs::path(GRADZIP_SOURCE_DIR) / "experiments" / "results";
  for (const std::string study : {"link", "straggler", "scaling"}) {
    const fs::path committed = results / (study + "_study");
    ASSERT_TRUE(fs::exists(committed / "report.md")) << committed;
    const fs::path copy = root_ / (study + "_study");
    fs::copy(committed, copy, fs::copy_options::recursive);
    fs::remove(copy / "report.md");
    const std::string cmd = "/usr/bin/python3 '" + (kRepro / "study_table.py").string() + "' " + study + " '" +
                            copy.string() + "' > /dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto text = [](const fs::path& f) {
      std::ifstream in(f);
      std::stringstream ss;
      ss << in.rdbuf();
      return ss.str();
    };
    EXPECT_EQ(text(copy / "report.md"), text(committed / "report.md")) << study;
    int runs = 0;
    for (const auto& group : fs::directory_iterator(copy / "runs")) {
      for (const auto& run : fs::directory_iterator(group.path())) runs += fs::exists(run.path() / "summary.json");
    }
    std::ifstream csv(copy / "report.csv");
    int rows = -1;  // header
    for (std::string line; std::getline(csv, line);) ++rows;
    EXPECT_EQ(rows % runs, 0) << study << ": " << rows << " rows for " << runs << " runs";
    EXPECT_GE(rows, runs) << study;
  }
}

}  // namespace
