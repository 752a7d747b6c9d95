// Child processes and the one process supervisor of gradzip (`gradzip train --cluster
// local|netem`, `gradzip launch`): start M shards, wait for their endpoints, start N
// workers, follow them, forward SIGINT/SIGTERM, tear every child down when one fails and
// name the failed process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace gradzip::comm {

/// A started process the supervisor follows: a ChildProcess, or one a spawn hook started
/// elsewhere (experiments/netem.h: inside a network namespace). Not thread-safe.
class Process {
 public:
  virtual ~Process() = default;
  /// False once the process exited and was reaped (non-blocking).
  virtual bool running() = 0;
  /// Sends a signal; no-op once reaped.
  virtual void signal(int sig) = 0;
  /// Exit status once !running(): the exit code, or 128 + signal number when killed.
  virtual int exit_code() const = 0;
};

/// One child process (fork + execvp). RAII: the destructor sends SIGKILL to a child
/// still running and reaps it. Not thread-safe.
class ChildProcess final : public Process {
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
  bool running() override;
  /// Sends a signal (no-op once reaped).
  void signal(int sig) override;
  /// Waits up to `timeout`; true when the child exited (exit_code() then valid).
  bool wait_for(std::chrono::milliseconds timeout);
  /// Exit status: the exit code, or 128 + signal number when killed by a signal.
  int exit_code() const override { return exit_code_; }

 private:
  bool reap(bool block);
  std::string name_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

/// Starts the process of `slot` (shards 0..M-1, then workers M..M+N-1) named `name`
/// ("shard0", "worker1") with `argv`, stdout and stderr appended to `log_file` ("" =
/// inherited). Throws on failure.
using SpawnFn = std::function<std::unique_ptr<Process>(std::size_t slot, const std::string& name,
                                                       const std::vector<std::string>& argv,
                                                       const std::string& log_file)>;

/// What to launch and how to follow it (filled by its caller: the CLI's local and netem paths).
struct LaunchOptions {
  std::vector<std::vector<std::string>> shard_commands;   ///< argv per shard
  std::vector<std::vector<std::string>> worker_commands;  ///< argv per worker
  std::string log_dir;             ///< per-process logs "<name>.log" ("" = inherit)
  double timeout_s = 0.0;          ///< kill everything after this long (0 = none)
  /// Shards write their endpoint into these files before workers start (may be empty:
  /// then workers start right away). A file counts once its first line is not empty.
  std::vector<std::string> shard_endpoint_files;
  double shard_start_timeout_s = 30.0;
  /// After every worker exited 0: how long shards may take to exit by themselves (they
  /// do once every worker said goodbye) before they are sent SIGTERM.
  double shard_exit_grace_s = 0.0;
  /// Starts one process; empty: a ChildProcess (fork + exec in this namespace).
  SpawnFn spawn;
  /// Called once the shards' endpoint files are written, with each file's first line
  /// (shard order), before any worker starts; may complete the worker commands (e.g.
  /// append the endpoints to them).
  std::function<void(const std::vector<std::string>& endpoints, std::vector<std::vector<std::string>>* worker_commands)>
      on_shards_ready;
  /// Called every progress_interval_s while workers run and once after they all exited
  /// (e.g. to merge what the workers wrote so far). Exceptions fail the launch.
  std::function<void()> on_progress;
  double progress_interval_s = 0.5;
};

/// Runs the processes: shards first (waits for their endpoint files), then workers.
/// Returns 0 when every worker exited 0 and every shard then exited 0 (by itself within
/// shard_exit_grace_s, or after SIGTERM); otherwise kills every child and returns 1
/// after logging which process failed and how, e.g. "shard 1 killed by signal 9 (Killed);
/// see <log_dir>/shard1.log" (also written to `*failure` when given). A shard that ends
/// while workers run fails the launch at once.
/// SIGINT/SIGTERM to this process while it runs stop every child; the previous signal
/// dispositions are restored on return.
int run_launch(const LaunchOptions& options, std::string* failure = nullptr);

}  // namespace gradzip::comm
