// Sweep files: parsing and its errors, cross-product expansion, and the runner's
// parallel limit, resume (finished runs skipped) and failure reporting. The runner is
// exercised with a small POSIX shell program standing in for `gradzip train`: it
// records how many runs are active at once and writes summary.json like a finished run.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "experiments/sweep.h"

namespace gradzip::experiments {
namespace {
namespace fs = std::filesystem;

fs::path temp_dir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("gz-sweep-" + tag + "-" + std::to_string(getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

TEST(SweepFile, ParsesAxesFixedAndAliases) {
  const std::string text = R"(
# a codec study
[sweep]
out = runs/x   ; trailing comment
parallel = 3
timeout = 120
[axes]
codecs = identity ef+qsgd:bits=4,bucket=512 ef+topk:ratio=0.01
workers = 2 4
seeds = 1 2
[fixed]
epochs = 2
)";
  const SweepSpec s = parse_sweep_text(text, "t.sweep", "");
  EXPECT_EQ(s.out_dir, "runs/x");
  EXPECT_EQ(s.parallel, 3);
  EXPECT_DOUBLE_EQ(s.run_timeout_s, 120);
  ASSERT_EQ(s.axes.size(), 3u);
  EXPECT_EQ(s.axes[0].first, "compressor");
  EXPECT_EQ(s.axes[0].second[1], "ef+qsgd:bits=4,bucket=512");
  EXPECT_EQ(s.axes[2].first, "seed");
  ASSERT_EQ(s.fixed.size(), 1u);
  EXPECT_EQ(s.fixed[0], (std::pair<std::string, std::string>{"epochs", "2"}));
}

TEST(SweepFile, ErrorsNameTheLine) {
  auto error_of = [](const std::string& text) -> std::string {
    try {
      parse_sweep_text(text, "f", "");
    } catch (const SweepError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of("[sweep]\nout=a\n[bogus]\n").find("f:3"), std::string::npos);
  EXPECT_NE(error_of("epochs = 1\n").find("before any [section]"), std::string::npos);
  EXPECT_NE(error_of("[sweep]\nout=a\nparallel=2.5\n").find("integer"), std::string::npos);
  EXPECT_NE(error_of("[sweep]\nout=a\n[axes]\nseeds = 1 1\n").find("repeats"), std::string::npos);
  EXPECT_NE(error_of("[sweep]\nout=a\n[axes]\nseeds =\n").find("no values"), std::string::npos);
  EXPECT_NE(error_of("[sweep]\n[axes]\nseeds = 1\n").find("out ="), std::string::npos);
  EXPECT_NE(error_of("[sweep]\nout=a\nbase=/no/such/file.ini\n").find("does not exist"), std::string::npos);
  EXPECT_NE(error_of("[sweep]\nout=a\n[axes]\nRun_Dir = x\n").find("option name"), std::string::npos);
  EXPECT_NE(error_of("[sweep]\nout=a\n[axes]\nrun-dir = x\n").find("set by the sweep"), std::string::npos);
  EXPECT_NE(error_of("[sweep]\nout=a\n[axes]\nseed = 1 2\n[fixed]\nseeds = 3\n").find("both"), std::string::npos);
  EXPECT_NE(error_of("[sweep]\nout=a\nnames = some\n").find("f:3: names = some must be"), std::string::npos);
  EXPECT_THROW(parse_sweep_file("/no/such/sweep.ini"), SweepError);
}

TEST(SweepExpand, CrossProductLastAxisFastest) {
  SweepSpec s;
  s.out_dir = "out";
  s.fixed = {{"epochs", "1"}};
  s.axes = {{"compressor", {"identity", "ef+qsgd:bits=4", "fp16"}}, {"workers", {"2", "4"}}, {"seed", {"7"}}};
  const auto runs = expand_sweep(s);
  ASSERT_EQ(runs.size(), 6u);  // 3 x 2 x 1
  std::set<std::string> names;
  for (const auto& r : runs) {
    EXPECT_TRUE(names.insert(r.name).second) << r.name;
    EXPECT_EQ(r.name.find('/'), std::string::npos);
    EXPECT_EQ(r.name.find(':'), std::string::npos);
    ASSERT_EQ(r.settings.size(), 4u);
    EXPECT_EQ(r.settings[0].first, "epochs");
  }
  EXPECT_EQ(runs[0].settings[1].second, "identity");
  EXPECT_EQ(runs[0].settings[2].second, "2");
  EXPECT_EQ(runs[1].settings[2].second, "4");  // workers varies fastest among multi-valued axes
  EXPECT_EQ(runs[2].settings[1].second, "ef+qsgd:bits=4");
  EXPECT_EQ(runs[2].name, "compressor=ef+qsgd_bits=4__workers=2");  // single-valued axis not in the name
  EXPECT_EQ(runs[2].dir, (fs::path("out") / runs[2].name).string());
}

// Two sweeps sharing one out folder that differ only in single-valued axes (what
// codec_study.sh writes for PowerSGD and the bidirectional runs) get distinct run names
// with `names = all`, and the usual names without it.
TEST(SweepExpand, NamesAllKeepsSingleValuedAxesInTheName) {
  const std::string bidir = "[sweep]\nout = runs\nnames = all\n[axes]\ncodecs = ef+topk:ratio=0.01\n"
                            "downlink = ef+topk:ratio=0.01\nseeds = 1 2\n";
  const std::string powersgd = "[sweep]\nout = runs\nnames = all\n[axes]\naggregation = powersgd\n"
                               "codecs = powersgd:rank=4\nseeds = 1 2\n[fixed]\nshards = 1\n";
  const auto a = expand_sweep(parse_sweep_text(bidir, "a", ""));
  const auto b = expand_sweep(parse_sweep_text(powersgd, "b", ""));
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(a[1].name, "compressor=ef+topk_ratio=0.01__downlink=ef+topk_ratio=0.01__seed=2");
  EXPECT_EQ(b[0].name, "aggregation=powersgd__compressor=powersgd_rank=4__seed=1");
  EXPECT_EQ(b[0].settings.front(), (std::pair<std::string, std::string>{"shards", "1"}));
  std::set<std::string> names;
  for (const auto* runs : {&a, &b}) {
    for (const auto& r : *runs) EXPECT_TRUE(names.insert(r.name).second) << r.name;
  }
  // Without `names = all` (or with the default spelled out) only the seed names a run.
  for (const char* names_line : {"", "names = varying\n"}) {
    std::string text = bidir;
    text.replace(text.find("names = all\n"), 12, names_line);
    EXPECT_EQ(expand_sweep(parse_sweep_text(text, "c", ""))[0].name, "seed=1");
  }
}

// Stand-in for `gradzip train`: parses --run-dir and --scratch, marks itself active,
// records the number of active runs, fails when --seed is 13, writes summary.json.
const char* kFakeTrain = R"(
dir=""; scratch=""; seed=""
while [ $# -gt 0 ]; do
  case "$1" in
    --run-dir) dir="$2"; shift ;;
    --scratch) scratch="$2"; shift ;;
    --seed) seed="$2"; shift ;;
  esac
  shift
done
touch "$scratch/active.$$"
ls "$scratch" | grep -c '^active\.' >> "$scratch/concurrency.$$"
sleep 0.3
rm -f "$scratch/active.$$"
echo "$dir" >> "$scratch/ran.$$"
[ "$seed" = 13 ] && exit 1
mkdir -p "$dir"
printf '{"status": "complete"}' > "$dir/summary.json"
)";

TEST(SweepRunner, ParallelLimitResumeAndFailures) {
  const fs::path root = temp_dir("run");
  const fs::path scratch = root / "scratch";
  fs::create_directories(scratch);
  SweepSpec s;
  s.out_dir = (root / "runs").string();
  s.parallel = 2;
  s.run_timeout_s = 30;
  s.fixed = {{"scratch", scratch.string()}};
  s.axes = {{"compressor", {"identity", "fp16", "ef+topk:ratio=0.01"}}, {"seed", {"1", "13"}}};
  SweepRunnerOptions opt;
  opt.command = {"sh", "-c", kFakeTrain, "fake-train"};

  const SweepResult first = run_sweep(s, opt);
  EXPECT_EQ(first.completed.size(), 3u);
  EXPECT_EQ(first.failed.size(), 3u);  // every seed=13 run
  for (const auto& f : first.failed) EXPECT_NE(f.find("seed=13"), std::string::npos) << f;
  EXPECT_TRUE(first.skipped.empty());
  // Never more than `parallel` runs active at once.
  int max_active = 0;
  int ran = 0;
  for (const auto& e : fs::directory_iterator(scratch)) {
    const std::string name = e.path().filename().string();
    std::ifstream f(e.path());
    if (name.rfind("concurrency.", 0) == 0) {
      int c = 0;
      while (f >> c) max_active = std::max(max_active, c);
    } else if (name.rfind("ran.", 0) == 0) {
      ++ran;
    }
  }
  EXPECT_EQ(ran, 6);
  EXPECT_GE(max_active, 1);
  EXPECT_LE(max_active, 2);
  // The runner records each command and captures output per run.
  const auto runs = expand_sweep(s);
  EXPECT_TRUE(fs::exists(root / "runs" / "logs" / (runs[0].name + ".cmd")));
  EXPECT_TRUE(fs::exists(root / "runs" / "logs" / (runs[0].name + ".log")));
  // A failed run leaves no directory behind to be mistaken for a result... and a stale
  // partial directory is cleared before the run is retried.
  fs::create_directories(runs[1].dir);
  std::ofstream(fs::path(runs[1].dir) / "metrics.csv") << "partial";

  // Resume: finished runs are skipped, failed ones run again.
  const SweepResult second = run_sweep(s, opt);
  EXPECT_EQ(second.skipped.size(), 3u);
  EXPECT_EQ(second.failed.size(), 3u);
  EXPECT_TRUE(second.completed.empty());
  EXPECT_FALSE(fs::exists(fs::path(runs[1].dir) / "metrics.csv")) << "partial run directory not cleared";

  // A summary.json that is not a finished run does not count as finished.
  std::ofstream(fs::path(runs[0].dir) / "summary.json") << R"({"status": "running"})";
  EXPECT_FALSE(run_finished(runs[0].dir));
  std::ofstream(fs::path(runs[0].dir) / "summary.json") << "{not json";
  EXPECT_FALSE(run_finished(runs[0].dir));
  opt.dry_run = true;
  const SweepResult dry = run_sweep(s, opt);
  ASSERT_EQ(dry.planned.size(), 4u);  // runs[0] again + the three failed ones
  EXPECT_NE(dry.planned[0].find("--run-dir " + runs[0].dir), std::string::npos);
  EXPECT_NE(dry.planned[0].find("--compressor identity"), std::string::npos);
  fs::remove_all(root);
}

TEST(SweepRunner, ProgressNamesLongRunsAndResults) {
  const fs::path root = temp_dir("progress");
  SweepSpec s;
  s.out_dir = (root / "runs").string();
  s.axes = {{"seed", {"1"}}};
  SweepRunnerOptions opt;
  // Runs long enough for several heartbeats, then finishes with a summary.
  opt.command = {"sh", "-c",
                 "for a; do dir=$a; done; sleep 0.6; mkdir -p \"$dir\"; "
                 "printf '{\"status\": \"complete\", \"steps\": 7}' > \"$dir\"/summary.json",
                 "fake-train"};
  std::ostringstream progress;
  opt.progress = &progress;
  opt.heartbeat_s = 0.1;
  const SweepResult r = run_sweep(s, opt);
  ASSERT_EQ(r.completed.size(), 1u) << progress.str();
  const std::string out = progress.str();
  EXPECT_NE(out.find("sweep [0/1 done, elapsed 0 s] started seed=1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("] still running: seed=1 ("), std::string::npos) << out;
  EXPECT_NE(out.find("sweep [1/1 done, elapsed "), std::string::npos) << out;
  EXPECT_NE(out.find("completed seed=1 in "), std::string::npos) << out;
  EXPECT_NE(out.find(": 7 steps\n"), std::string::npos) << out;
  // Silent without a stream.
  fs::remove_all(root / "runs");
  opt.progress = nullptr;
  EXPECT_EQ(run_sweep(s, opt).completed.size(), 1u);
  fs::remove_all(root);
}

TEST(SweepRunner, TimeoutKillsRun) {
  const fs::path root = temp_dir("timeout");
  SweepSpec s;
  s.out_dir = (root / "runs").string();
  s.run_timeout_s = 0.3;
  s.axes = {{"seed", {"1"}}};
  SweepRunnerOptions opt;
  opt.command = {"sh", "-c", "sleep 20", "slow-train"};
  const auto t0 = std::chrono::steady_clock::now();
  const SweepResult r = run_sweep(s, opt);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  ASSERT_EQ(r.failed.size(), 1u);
  EXPECT_NE(r.failed[0].find("timed out"), std::string::npos);
  fs::remove_all(root);
}

}  // namespace
}  // namespace gradzip::experiments
