// Child processes (ChildProcess) and a supervisor (run_launch): start M shards and N
// workers on loopback, forward SIGINT/SIGTERM, tear every child down when one fails,
// exit non-zero naming the failed process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace gradzip::comm {

/// One child process (fork + execvp). RAII: the destructor sends SIGKILL to a child
/// still running and reaps it. Not thread-safe.
class ChildProcess {
 public:
  /// Starts argv[0] with argv (searched in PATH). stdout/stderr go to `log_file` when
  /// not empty (appended), else are inherited. Throws std::runtime_error on failure.
  ChildProcess(std::string name, const std::vector<std::string>& argv, const std::string& log_file = "");
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  bool running();
  /// Sends a signal (no-op once reaped).
  void signal(int sig);
  /// Waits up to `timeout`; true when the child exited (exit_code() then valid).
  bool wait_for(std::chrono::milliseconds timeout);
  /// Exit status: the exit code, or 128 + signal number when killed by a signal.
  int exit_code() const { return exit_code_; }

 private:
  bool reap(bool block);
  std::string name_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

/// Settings of run_launch (filled by its caller).
struct LaunchOptions {
  std::vector<std::vector<std::string>> shard_commands;   ///< argv per shard
  std::vector<std::vector<std::string>> worker_commands;  ///< argv per worker
  std::string log_dir;             ///< per-process logs "<name>.log" ("" = inherit)
  double timeout_s = 0.0;          ///< kill everything after this long (0 = none)
  /// Shards write their endpoint into these files before workers start (may be empty:
  /// then workers start right away).
  std::vector<std::string> shard_endpoint_files;
  double shard_start_timeout_s = 30.0;
};

/// Runs the processes: shards first (waits for their endpoint files), then workers.
/// Returns 0 when every worker exited 0 (shards are then asked to stop with SIGTERM and
/// must exit 0); otherwise kills every child and returns 1 after logging which process
/// failed and how. SIGINT/SIGTERM to this process are forwarded to every child.
int run_launch(const LaunchOptions& options);

}  // namespace gradzip::comm
