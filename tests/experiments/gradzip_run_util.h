// Helpers for tests that run the built `gradzip` binary and read the run directories it
// leaves (train_resume_test.cc, train_options_test.cc).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gradzip::testing {

namespace fs = std::filesystem;

inline const std::string kGradzip = GRADZIP_EXE;
inline const std::string kFashion = "/usr/share/datasets/fashion-mnist";
/// A run that takes seconds: ResNet-20 at width 4, 256 images, 2 workers, 4 steps an epoch.
inline const std::string kTinyRun =
    " --model resnet20 --width 4 --train-subset 256 --test-subset 100 --batch-size 32 --min-compress-numel 0 "
    "--workers 2 --torch-threads 1 --loader-threads 1 --data-dir " + kFashion;

struct Result {
  int status = -1;
  std::string output;  ///< stdout and stderr together
};

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

/// Runs `gradzip <args>` through the shell, output into `log`.
inline Result gradzip(const std::string& args, const fs::path& log) {
  const int rc = std::system(("'" + kGradzip + "' " + args + " > '" + log.string() + "' 2>&1 </dev/null").c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : 128, slurp(log)};
}

inline nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f, nullptr, false);
}

/// metrics.csv as rows of cells (header first).
inline std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::vector<std::vector<std::string>> rows;
  std::ifstream f(p);
  for (std::string line; std::getline(f, line);) {
    if (line.empty()) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    rows.push_back(cells);
  }
  return rows;
}

/// The events of events.jsonl of type `type`.
inline std::vector<nlohmann::json> events(const fs::path& run, const std::string& type) {
  std::vector<nlohmann::json> out;
  std::ifstream f(run / "events.jsonl");
  for (std::string line; std::getline(f, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("type") && j["type"] == type) out.push_back(j);
  }
  return out;
}

/// A fresh directory under the temp dir named after the running test; removed by the fixture.
class TrainRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFashion)) GTEST_SKIP() << "Fashion-MNIST not installed at " << kFashion;
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = c == '/' ? '_' : c;  // parameterized tests: "Name/0"
    root_ = fs::temp_directory_path() / ("gz-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }
  fs::path root_;
};

}  // namespace gradzip::testing
