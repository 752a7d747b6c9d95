// Network-namespace child processes (see netem.h: NetnsProcess, netns_spawner).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <thread>

#include "experiments/netem.h"
#include "experiments/netem_signals.h"

namespace gradzip::experiments {
using namespace netem_detail;

namespace {

// In the child after fork: join the namespace or die with a message.
void enter_netns_or_exit(const std::string& netns) {
  const std::string path = "/run/netns/" + netns;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
    const char* msg = "netem: cannot enter network namespace\n";
    (void)!::write(2, msg, std::strlen(msg));
    _exit(112);
  }
  ::close(fd);
}

}  // namespace

NetnsProcess::NetnsProcess(pid_t pid) : pid_(pid) { register_pid(pid); }

NetnsProcess NetnsProcess::exec(const std::string& netns, const std::vector<std::string>& argv,
                                const std::string& log_path) {
  if (argv.empty()) throw NetemError("netem: empty command");
  install_handlers();
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw NetemError("netem: cannot open log " + log_path + ": " + std::strerror(errno));
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    if (log_fd >= 0) ::close(log_fd);
    throw NetemError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    enter_netns_or_exit(netns);
    if (log_fd >= 0) {
      dup2(log_fd, 1);
      dup2(log_fd, 2);
    }
    execvp(args[0], args.data());
    _exit(127);
  }
  if (log_fd >= 0) ::close(log_fd);
  return NetnsProcess(pid);
}

NetnsProcess NetnsProcess::run(const std::string& netns, const std::function<int()>& fn) {
  install_handlers();
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = fork();
  if (pid < 0) throw NetemError(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    enter_netns_or_exit(netns);
    int rc = 111;
    try {
      rc = fn();
    } catch (const std::exception& e) {
      std::cerr << "netem child: " << e.what() << std::endl;
    } catch (...) {
      std::cerr << "netem child: unknown exception" << std::endl;
    }
    std::cout.flush();
    _exit(rc);
  }
  return NetnsProcess(pid);
}

NetnsProcess::NetnsProcess(NetnsProcess&& other) noexcept
    : pid_(other.pid_), reaped_(other.reaped_), exit_code_(other.exit_code_) {
  other.pid_ = -1;
  other.reaped_ = true;
}

NetnsProcess& NetnsProcess::operator=(NetnsProcess&& other) noexcept {
  if (this != &other) {
    kill();
    pid_ = other.pid_;
    reaped_ = other.reaped_;
    exit_code_ = other.exit_code_;
    other.pid_ = -1;
    other.reaped_ = true;
  }
  return *this;
}

NetnsProcess::~NetnsProcess() { kill(); }

bool NetnsProcess::reap(bool block) {
  if (pid_ <= 0 || reaped_) return true;
  int status = 0;
  pid_t w;
  do {
    w = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (w < 0 && errno == EINTR);
  if (w == 0) return false;
  reaped_ = true;
  unregister_pid(pid_);
  // w < 0 (ECHILD: reaped elsewhere): the status is unknown; report it as -1.
  exit_code_ = w < 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

int NetnsProcess::wait(double timeout_s) {
  if (pid_ <= 0 || reaped_) throw NetemError("netem: wait on a process that is not running");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (!reap(false)) {
    if (std::chrono::steady_clock::now() > deadline) {
      const pid_t pid = pid_;
      kill();
      throw NetemError("netem: process " + std::to_string(pid) + " still running after " +
                       std::to_string(timeout_s) + " s; killed");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_code_;
}

bool NetnsProcess::running() { return !reap(false); }

void NetnsProcess::signal(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

void NetnsProcess::kill() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
}

comm::SpawnFn netns_spawner(const NetemCluster& cluster) {
  return [&cluster](std::size_t slot, const std::string&, const std::vector<std::string>& argv,
                    const std::string& log_file) -> std::unique_ptr<comm::Process> {
    return std::make_unique<NetnsProcess>(
        NetnsProcess::exec(cluster.netns(static_cast<std::uint32_t>(slot)), argv, log_file));
  };
}

}  // namespace gradzip::experiments
