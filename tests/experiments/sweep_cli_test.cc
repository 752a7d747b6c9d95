// `gradzip sweep` through the built executable: the progress it prints while runs go on
// (runs done / total, elapsed, an estimate of the time left, each finished run's result
// line from its summary.json, failures) and on resume. A shell script given with
// --gradzip stands in for `gradzip train`: it writes summary.json like a finished run,
// and fails for seed 13.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#ifndef GRADZIP_EXE
#error "GRADZIP_EXE must name the gradzip executable"
#endif

namespace {
namespace fs = std::filesystem;

const char* const kFakeGradzip = R"(#!/bin/sh
# stands in for `gradzip train ... --seed S --run-dir DIR`
dir=""; seed=""
while [ $# -gt 0 ]; do
  case "$1" in
    --run-dir) dir="$2"; shift ;;
    --seed) seed="$2"; shift ;;
  esac
  shift
done
sleep 0.2
[ "$seed" = 13 ] && exit 1
mkdir -p "$dir"
printf '{"status": "complete", "final_test_accuracy": 0.5%s, "best_test_accuracy": 0.6, "steps": 120,
 "bytes_up": 2000000, "bytes_down": 30400000, "seconds": 95}' "$seed" > "$dir/summary.json"
)";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class SweepCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gz-sweep-cli-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "fake-gradzip") << kFakeGradzip;
    fs::permissions(dir_ / "fake-gradzip", fs::perms::owner_all);
    std::ofstream(dir_ / "study.sweep") << "[sweep]\nout = " << (dir_ / "runs").string()
                                        << "\nparallel = 1\n[axes]\nseeds = 1 2 13\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// `gradzip sweep` on the study file with the fake binary; returns its stdout, sets `code`.
  std::string sweep(int* code) const {
    const std::string cmd = std::string("'") + GRADZIP_EXE + "' sweep --file '" + (dir_ / "study.sweep").string() +
                            "' --gradzip '" + (dir_ / "fake-gradzip").string() + "' > '" +
                            (dir_ / "out.txt").string() + "' 2>&1 </dev/null";
    const int status = std::system(cmd.c_str());
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return slurp(dir_ / "out.txt");
  }

  fs::path dir_;
};

// Position of `needle` in `text` (npos: absent), for order checks.
std::size_t at(const std::string& text, const std::string& needle) { return text.find(needle); }

TEST_F(SweepCli, PrintsProgressAndEachRunsResult) {
  int code = 0;
  const std::string out = sweep(&code);
  EXPECT_EQ(code, 1) << out;  // one run failed
  // Each run's start, then its end with runs done / total and the result line.
  const std::size_t started1 = at(out, "] started seed=1\n");
  const std::size_t done1 = at(out, "sweep [1/3 done, elapsed ");
  ASSERT_NE(started1, std::string::npos) << out;
  ASSERT_NE(done1, std::string::npos) << out;
  EXPECT_LT(started1, done1) << out;
  EXPECT_NE(at(out, "about "), std::string::npos) << "no estimate of the time left\n" << out;
  EXPECT_NE(at(out, "] completed seed=1 in "), std::string::npos) << out;
  EXPECT_NE(at(out, ": final test accuracy 51.00% (best 60.00%), 120 steps, 2.0 MB up, 30.4 MB down\n"),
            std::string::npos)
      << out;
  EXPECT_NE(at(out, "final test accuracy 52.00%"), std::string::npos) << out;
  EXPECT_NE(at(out, "sweep [3/3 done, elapsed "), std::string::npos) << out;
  EXPECT_NE(at(out, "] FAILED seed=13: exit status 1; see logs/seed=13.log"), std::string::npos) << out;
  // The 2/3 line (after the second run) estimates what is left from the pace so far.
  const std::size_t two = at(out, "sweep [2/3 done, elapsed ");
  ASSERT_NE(two, std::string::npos) << out;
  EXPECT_NE(out.substr(two, out.find('\n', two) - two).find(", about "), std::string::npos) << out;

  // Resume: the finished runs are counted as done from the start.
  const std::string again = sweep(&code);
  EXPECT_EQ(code, 1) << again;
  EXPECT_NE(at(again, "sweep [2/3 done, elapsed 0 s] 2 runs already finished, skipped\n"), std::string::npos)
      << again;
  EXPECT_NE(at(again, "] started seed=13\n"), std::string::npos) << again;
  EXPECT_EQ(at(again, "started seed=1\n"), std::string::npos) << again;
}

}  // namespace
