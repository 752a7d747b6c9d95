#include "comm/launch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
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

/// Installs the flag-setting SIGINT/SIGTERM handler for its lifetime, then restores the
/// previous dispositions.
class SignalScope {
 public:
  SignalScope() {
    g_forward_signal.store(0);
    struct sigaction sa{};
    sa.sa_handler = &on_launch_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &previous_int_);
    sigaction(SIGTERM, &sa, &previous_term_);
  }
  ~SignalScope() {
    sigaction(SIGINT, &previous_int_, nullptr);
    sigaction(SIGTERM, &previous_term_, nullptr);
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  struct sigaction previous_int_{};
  struct sigaction previous_term_{};
};

/// Polls `p` until it exits or `timeout` passes; true when it exited.
bool wait_exit(Process& p, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (p.running()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

/// First line of `path`, or "" while the file is missing or empty.
std::string first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (f) std::getline(f, line);
  return line;
}

struct Named {
  std::string name;
  std::unique_ptr<Process> process;
};

/// One launch: the started processes and the rules for stopping them.
class Supervisor {
 public:
  explicit Supervisor(const LaunchOptions& o) : o_(o), start_(std::chrono::steady_clock::now()) {}

  int run() {
    try {
      return run_steps();
    } catch (const std::exception& e) {
      return fail(e.what());
    }
  }
  const std::string& failure() const { return failure_; }

 private:
  int run_steps() {
    if (!o_.log_dir.empty()) std::filesystem::create_directories(o_.log_dir);
    for (std::size_t i = 0; i < o_.shard_commands.size(); ++i) {
      shards_.push_back(start(i, "shard" + std::to_string(i), o_.shard_commands[i]));
    }
    std::vector<std::string> endpoints;
    for (const auto& f : o_.shard_endpoint_files) {
      std::string ep;
      while ((ep = first_line(f)).empty()) {
        if (const std::string why = shard_exited(); !why.empty()) return fail(why + " at start");
        if (elapsed() > o_.shard_start_timeout_s) return fail("shards did not start within the timeout");
        if (g_forward_signal.load()) return fail("interrupted");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      endpoints.push_back(ep);
    }
    std::vector<std::vector<std::string>> commands = o_.worker_commands;
    if (o_.on_shards_ready) o_.on_shards_ready(endpoints, &commands);
    for (std::size_t i = 0; i < commands.size(); ++i) {
      workers_.push_back(start(shards_.size() + i, "worker" + std::to_string(i), commands[i]));
    }
    if (const int rc = follow_workers(); rc != 0) return rc;
    return stop_shards();
  }

  Named start(std::size_t slot, const std::string& name, const std::vector<std::string>& argv) {
    const std::string log = o_.log_dir.empty() ? std::string() : (std::filesystem::path(o_.log_dir) / (name + ".log")).string();
    if (o_.spawn) return {name, o_.spawn(slot, name, argv, log)};
    return {name, std::make_unique<ChildProcess>(name, argv, log)};
  }

  // Until every worker exited 0: fails on a worker or shard exiting non-zero, a signal or the timeout.
  int follow_workers() {
    auto last_progress = std::chrono::steady_clock::now();
    for (;;) {
      if (const int sig = g_forward_signal.load()) return fail("received signal " + std::to_string(sig));
      bool all_done = true;
      for (auto& w : workers_) {
        if (w.process->running()) {
          all_done = false;
        } else if (w.process->exit_code() != 0) {
          return fail(how_it_ended(w) + see_log(w));
        }
      }
      if (const std::string why = shard_exited(/*any_status=*/false); !why.empty()) return fail(why);
      const auto now = std::chrono::steady_clock::now();
      if (o_.on_progress && (all_done || std::chrono::duration<double>(now - last_progress).count() >=
                                             o_.progress_interval_s)) {
        o_.on_progress();
        last_progress = now;
      }
      if (all_done) return 0;
      if (o_.timeout_s > 0 && elapsed() > o_.timeout_s) {
        return fail("timeout after " + std::to_string(o_.timeout_s) + " s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  int stop_shards() {
    for (auto& s : shards_) {
      wait_exit(*s.process, std::chrono::milliseconds(static_cast<long>(o_.shard_exit_grace_s * 1000)));
    }
    for (auto& s : shards_) s.process->signal(SIGTERM);
    for (auto& s : shards_) {
      if (!wait_exit(*s.process, std::chrono::milliseconds(10000))) return fail(s.name + " did not stop");
      if (s.process->exit_code() != 0) {
        return fail(how_it_ended(s) + see_log(s));
      }
    }
    spdlog::debug("launch: {} workers and {} shards finished in {:.1f} s", workers_.size(), shards_.size(), elapsed());
    return 0;
  }

  // A message naming a shard that exited (any status, or only non-zero), or "".
  std::string shard_exited(bool any_status = true) {
    for (auto& s : shards_) {
      if (!s.process->running() && (any_status || s.process->exit_code() != 0)) {
        return how_it_ended(s) + see_log(s);
      }
    }
    return "";
  }

  // "shard 1 killed by signal 9 (Killed)" or "worker 0 exited with status 4": the
  // process as a person names it (its log is "<name>.log") and how it ended (Process's
  // exit_code() is 128 + the signal number for a process a signal ended).
  static std::string how_it_ended(const Named& p) {
    std::string label = p.name;
    const auto digit = label.find_first_of("0123456789");
    if (digit != std::string::npos && digit > 0) label.insert(digit, " ");
    const int code = p.process->exit_code();
    if (code > 128 && code < 128 + NSIG) {
      return label + " killed by signal " + std::to_string(code - 128) + " (" + ::strsignal(code - 128) + ")";
    }
    return label + " exited with status " + std::to_string(code);
  }

  std::string see_log(const Named& p) const {
    if (o_.log_dir.empty()) return "";
    return "; see " + (std::filesystem::path(o_.log_dir) / (p.name + ".log")).string();
  }

  int fail(const std::string& why) {
    failure_ = why;
    spdlog::error("launch: {}; stopping every process", why);
    for (auto* group : {&workers_, &shards_}) {
      for (auto& c : *group) c.process->signal(SIGTERM);
    }
    for (auto* group : {&workers_, &shards_}) {
      for (auto& c : *group) {
        if (!wait_exit(*c.process, std::chrono::milliseconds(2000))) c.process->signal(SIGKILL);
      }
    }
    return 1;
  }

  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

  const LaunchOptions& o_;
  std::chrono::steady_clock::time_point start_;
  std::vector<Named> shards_, workers_;
  std::string failure_;
};

}  // namespace

int run_launch(const LaunchOptions& o, std::string* failure) {
  SignalScope signals;
  Supervisor supervisor(o);
  const int rc = supervisor.run();
  if (failure) *failure = supervisor.failure();
  return rc;
}

}  // namespace gradzip::comm
