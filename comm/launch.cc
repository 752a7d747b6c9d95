#include "comm/launch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

namespace gradzip::comm {

ChildProcess::ChildProcess(std::string name, const std::vector<std::string>& argv, const std::string& log_file)
    : name_(std::move(name)) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess " + name_ + ": empty command");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log_fd = -1;
  if (!log_file.empty()) {
    log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error("cannot open log " + log_file + ": " + std::strerror(errno));
  }
  pid_ = ::fork();
  if (pid_ < 0) {
    if (log_fd >= 0) ::close(log_fd);
    throw std::runtime_error("fork failed: " + std::string(std::strerror(errno)));
  }
  if (pid_ == 0) {
    // Child: only async-signal-safe calls until exec.
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  if (log_fd >= 0) ::close(log_fd);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : name_(std::move(other.name_)), pid_(other.pid_), exit_code_(other.exit_code_) {
  other.pid_ = -1;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
}

bool ChildProcess::reap(bool block) {
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  if (r == pid_) exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  pid_ = -1;
  return true;
}

bool ChildProcess::running() { return pid_ > 0 && !reap(false); }

void ChildProcess::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

bool ChildProcess::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(false)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

namespace {
std::atomic<int> g_forward_signal{0};
extern "C" void on_launch_signal(int sig) { g_forward_signal.store(sig); }
}  // namespace

int run_launch(const LaunchOptions& o) {
  struct sigaction sa{};
  sa.sa_handler = &on_launch_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  auto log_of = [&](const std::string& name) {
    return o.log_dir.empty() ? std::string() : (std::filesystem::path(o.log_dir) / (name + ".log")).string();
  };
  if (!o.log_dir.empty()) std::filesystem::create_directories(o.log_dir);
  std::vector<ChildProcess> shards, workers;
  auto fail = [&](const std::string& why) {
    spdlog::error("launch: {}; stopping every process", why);
    for (auto* group : {&workers, &shards}) {
      for (auto& c : *group) c.signal(SIGTERM);
    }
    for (auto* group : {&workers, &shards}) {
      for (auto& c : *group) {
        if (!c.wait_for(std::chrono::milliseconds(2000))) c.signal(SIGKILL);
      }
    }
    return 1;
  };
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  try {
    for (std::size_t i = 0; i < o.shard_commands.size(); ++i) {
      const std::string name = "shard" + std::to_string(i);
      shards.emplace_back(name, o.shard_commands[i], log_of(name));
    }
    for (const auto& f : o.shard_endpoint_files) {
      while (!std::filesystem::exists(f)) {
        for (auto& c : shards) {
          if (!c.running()) return fail(c.name() + " exited with status " + std::to_string(c.exit_code()) + " at start");
        }
        if (elapsed() > o.shard_start_timeout_s) return fail("shards did not start within the timeout");
        if (g_forward_signal.load()) return fail("interrupted");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    for (std::size_t i = 0; i < o.worker_commands.size(); ++i) {
      const std::string name = "worker" + std::to_string(i);
      workers.emplace_back(name, o.worker_commands[i], log_of(name));
    }
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  for (;;) {
    if (const int sig = g_forward_signal.load()) return fail("received signal " + std::to_string(sig));
    bool all_done = true;
    for (auto& w : workers) {
      if (w.running()) {
        all_done = false;
      } else if (w.exit_code() != 0) {
        return fail(w.name() + " failed with exit status " + std::to_string(w.exit_code()));
      }
    }
    for (auto& s : shards) {
      if (!s.running() && s.exit_code() != 0) {
        return fail(s.name() + " failed with status " + std::to_string(s.exit_code()));
      }
    }
    if (all_done) break;
    if (o.timeout_s > 0 && elapsed() > o.timeout_s) return fail("timeout after " + std::to_string(o.timeout_s) + " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& s : shards) s.signal(SIGTERM);
  for (auto& s : shards) {
    if (!s.wait_for(std::chrono::milliseconds(10000))) return fail(s.name() + " did not stop");
    if (s.exit_code() != 0) return fail(s.name() + " exited with status " + std::to_string(s.exit_code()));
  }
  spdlog::info("launch: {} workers and {} shards finished in {:.1f} s", workers.size(), shards.size(), elapsed());
  return 0;
}

}  // namespace gradzip::comm
