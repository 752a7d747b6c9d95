// Helpers for tests that run the built `gradzip` binary and read the run directories it
// leaves (train_resume_test.cc, train_options_test.cc).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <utility>

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

/// Epoch, step, train loss/accuracy, test loss/accuracy of every metrics row (header first).
inline std::vector<std::vector<std::string>> learning_columns(const fs::path& run) {
  std::vector<std::vector<std::string>> out;
  for (const auto& row : read_csv(run / "metrics.csv")) {
    out.push_back({row.at(0), row.at(1), row.at(3), row.at(4), row.at(5), row.at(6)});
  }
  return out;
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

/// Starts `gradzip <args>` in a process group of its own (it and every child it starts),
/// stdout and stderr into `log`, with the variables `env` added to its environment (e.g.
/// the rank variables a launcher sets).
inline pid_t start_group(const std::vector<std::string>& args, const fs::path& log,
                         const std::vector<std::pair<std::string, std::string>>& env = {}) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv{const_cast<char*>(kGradzip.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(kGradzip.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

/// The words of a command line without quoting ("--a 1 --b x" -> {"--a", "1", ...}).
inline std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  for (std::string w; ss >> w;) out.push_back(w);
  return out;
}

/// How a process ended: its exit status, or the signal that ended it.
struct Ended {
  bool exited = false;  ///< false: a signal ended it (or it was still running at the deadline)
  int code = -1;        ///< exit status, or the signal number
  bool timed_out = false;
};

/// Waits up to `timeout_s` for `pid`; past it the process group is killed and timed_out set.
inline Ended wait_ended(pid_t pid, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  Ended e;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      e.exited = WIFEXITED(status);
      e.code = e.exited ? WEXITSTATUS(status) : WTERMSIG(status);
      return e;
    }
    if (done < 0 || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  e.timed_out = true;
  return e;
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
