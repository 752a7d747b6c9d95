// Network-namespace clusters shaped with tc (see netem.h).
#include "experiments/netem.h"
#include "experiments/netem_signals.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

namespace gradzip::experiments {
namespace {

// ---- signal-safe registry of live namespaces and child pids --------------------------
// Written by normal code, read by the signal handler. Each slot: a flag and a fixed
// buffer, so the handler touches no heap and no locks.
constexpr int kSlots = 256;
struct NsSlot {
  std::atomic<bool> used{false};
  char path[128] = {};
};
NsSlot g_ns_slots[kSlots];
std::atomic<pid_t> g_pid_slots[kSlots];
std::once_flag g_handlers_once;
struct sigaction g_previous_int;
struct sigaction g_previous_term;

void on_fatal_signal(int sig) {
  for (auto& p : g_pid_slots) {
    const pid_t pid = p.load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  for (auto& s : g_ns_slots) {
    if (s.used.load()) {
      ::umount2(s.path, MNT_DETACH);
      ::unlink(s.path);
    }
  }
  // Re-raise with the disposition that was there before us, so the exit status says
  // "killed by SIGINT" and any outer handler (a test runner's) still runs.
  sigaction(sig, sig == SIGINT ? &g_previous_int : &g_previous_term, nullptr);
  raise(sig);
}

}  // namespace

namespace netem_detail {

void install_handlers() {
  std::call_once(g_handlers_once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, &g_previous_int);
    sigaction(SIGTERM, &sa, &g_previous_term);
  });
}

void register_netns(const std::string& name) {
  const std::string path = "/run/netns/" + name;
  for (auto& s : g_ns_slots) {
    if (!s.used.load()) {
      std::snprintf(s.path, sizeof s.path, "%s", path.c_str());
      s.used.store(true);
      return;
    }
  }
  // More than kSlots live namespaces: still works, only not cleaned by the handler.
}

void unregister_netns(const std::string& name) {
  const std::string path = "/run/netns/" + name;
  for (auto& s : g_ns_slots) {
    if (s.used.load() && path == s.path) s.used.store(false);
  }
}

void register_pid(pid_t pid) {
  for (auto& p : g_pid_slots) {
    pid_t expected = 0;
    if (p.compare_exchange_strong(expected, pid)) return;
  }
}

void unregister_pid(pid_t pid) {
  for (auto& p : g_pid_slots) {
    pid_t expected = pid;
    p.compare_exchange_strong(expected, 0);
  }
}

}  // namespace netem_detail

using namespace netem_detail;

namespace {

// ---- running ip / tc ----------------------------------------------------------------
struct ToolResult {
  int status = -1;
  std::string output;
};

// Runs argv (no shell) with stdout+stderr captured; bounded by timeout_s.
ToolResult run_tool(const std::vector<std::string>& argv, double timeout_s = 20) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw NetemError(std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw NetemError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  ::close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  ToolResult r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  bool exited = false;
  int status = 0;
  char buf[4096];
  while (true) {
    ssize_t got;
    while ((got = ::read(fds[0], buf, sizeof buf)) > 0) r.output.append(buf, static_cast<std::size_t>(got));
    if (exited) break;
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      exited = true;
      continue;  // drain the pipe once more
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ::close(fds[0]);
      throw NetemError("'" + argv[0] + "' did not finish within " + std::to_string(timeout_s) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::close(fds[0]);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// Runs argv and throws NetemError with the command and its output when it fails.
std::string must(const std::vector<std::string>& argv) {
  ToolResult r = run_tool(argv);
  if (r.status != 0) {
    while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == '\r')) r.output.pop_back();
    throw NetemError("'" + join(argv) + "' failed (status " + std::to_string(r.status) + "): " + r.output);
  }
  return r.output;
}

std::string base36(unsigned long v) {
  const char* digits = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string s;
  do {
    s.insert(s.begin(), digits[v % 36]);
    v /= 36;
  } while (v);
  return s;
}

unsigned long parse_base36(const std::string& s, bool* ok) {
  unsigned long v = 0;
  *ok = !s.empty();
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'z') {
      d = c - 'a' + 10;
    } else {
      *ok = false;
      return 0;
    }
    v = v * 36 + static_cast<unsigned long>(d);
  }
  return v;
}

bool on_path(const char* tool) {
  return run_tool({"sh", "-c", std::string("command -v ") + tool}, 5).status == 0;
}

std::atomic<unsigned> g_cluster_counter{0};

std::string format_bits(double bits_per_s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0fbit", bits_per_s);
  return buf;
}

std::string format_us(double seconds) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0fus", seconds * 1e6);
  return buf;
}

// Probes whether a qdisc kind can be created, in a scratch namespace of its own.
std::string probe_qdisc(const std::vector<std::string>& qdisc_args) {
  const std::string ns = "gz" + base36(static_cast<unsigned long>(getpid())) + "-probe" +
                         std::to_string(g_cluster_counter.fetch_add(1));
  if (run_tool({"ip", "netns", "add", ns}).status != 0) return "cannot create a network namespace";
  register_netns(ns);
  std::vector<std::string> cmd = {"tc", "-n", ns, "qdisc", "add", "dev", "lo", "root"};
  cmd.insert(cmd.end(), qdisc_args.begin(), qdisc_args.end());
  ToolResult r = run_tool(cmd);
  run_tool({"ip", "netns", "del", ns});
  unregister_netns(ns);
  if (r.status != 0) return "kernel lacks qdisc '" + qdisc_args[0] + "': " + r.output;
  return "";
}

}  // namespace

std::string netem_unavailable_reason() {
  if (geteuid() != 0) return "needs root (network namespaces and tc)";
  if (!on_path("ip")) return "iproute2 'ip' not on PATH";
  if (!on_path("tc")) return "iproute2 'tc' not on PATH";
  return probe_qdisc({"tbf", "rate", "1mbit", "burst", "32kb", "latency", "100ms"});
}

std::string netem_delay_unavailable_reason() {
  std::string r = netem_unavailable_reason();
  if (!r.empty()) return r;
  return probe_qdisc({"netem", "delay", "1ms"});
}

NetemCluster::NetemCluster(const NetemOptions& options) : options_(options) {
  if (options_.num_hosts < 1 || options_.num_hosts > 250) {
    throw NetemError("netem: num_hosts must be 1..250, got " + std::to_string(options_.num_hosts));
  }
  const auto& s = options_.shaping;
  if (!(s.rate_bit_per_s >= 0) || !(s.delay_s >= 0) || !(s.loss_fraction >= 0 && s.loss_fraction < 1) ||
      !(s.queue_latency_s > 0)) {
    throw NetemError("netem: shaping needs rate >= 0, delay >= 0, 0 <= loss < 1, queue latency > 0");
  }
  install_handlers();
  id_ = "gz" + base36(static_cast<unsigned long>(getpid())) + "-" + std::to_string(g_cluster_counter.fetch_add(1));
  bridge_ns_ = id_ + "-br";
  for (std::uint32_t i = 0; i < options_.num_hosts; ++i) host_ns_.push_back(id_ + "-h" + std::to_string(i));
  try {
    build();
  } catch (...) {
    try {
      teardown();
    } catch (const std::exception& e) {
      std::cerr << "netem: cleanup after a failed build: " << e.what() << "\n";
    }
    throw;
  }
}

void NetemCluster::build() {
  auto add_ns = [this](const std::string& ns) {
    must({"ip", "netns", "add", ns});
    created_.push_back(ns);
    register_netns(ns);
    must({"ip", "-n", ns, "link", "set", "lo", "up"});
  };
  add_ns(bridge_ns_);
  must({"ip", "-n", bridge_ns_, "link", "add", "br0", "type", "bridge"});
  must({"ip", "-n", bridge_ns_, "link", "set", "br0", "up"});

  const auto& s = options_.shaping;
  const double rate_bytes = s.rate_bit_per_s / 8;
  const std::uint64_t burst =
      s.burst_bytes ? s.burst_bytes : std::max<std::uint64_t>(32768, static_cast<std::uint64_t>(rate_bytes * 0.004));
  auto shape = [&](const std::string& ns, const std::string& dev, bool with_netem) {
    const bool netem = with_netem && (s.delay_s > 0 || s.loss_fraction > 0);
    std::string parent = "root";
    if (s.rate_bit_per_s > 0) {
      must({"tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "tbf", "rate",
            format_bits(s.rate_bit_per_s), "burst", std::to_string(burst), "latency", format_us(s.queue_latency_s)});
      parent = "1:1";
    }
    if (netem) {
      std::vector<std::string> cmd = {"tc", "-n", ns, "qdisc", "add", "dev", dev};
      if (parent == "root") {
        cmd.insert(cmd.end(), {"root", "handle", "10:"});
      } else {
        cmd.insert(cmd.end(), {"parent", parent, "handle", "10:"});
      }
      cmd.insert(cmd.end(), {"netem", "delay", format_us(s.delay_s)});
      if (s.loss_fraction > 0) {
        char loss[32];
        std::snprintf(loss, sizeof loss, "%.6f%%", s.loss_fraction * 100);
        cmd.insert(cmd.end(), {"loss", loss});
      }
      // Queue enough packets for rate * delay (netem's default limit of 1000 drops at
      // high bandwidth-delay products).
      cmd.insert(cmd.end(), {"limit", "100000"});
      must(cmd);
    }
  };

  for (std::uint32_t i = 0; i < options_.num_hosts; ++i) {
    const std::string& ns = host_ns_[i];
    add_ns(ns);
    const std::string peer = "p" + std::to_string(i);
    must({"ip", "-n", bridge_ns_, "link", "add", peer, "type", "veth", "peer", "name", host_interface(), "netns", ns});
    if (options_.disable_gso) {
      must({"ip", "-n", bridge_ns_, "link", "set", peer, "gso_max_segs", "1"});
      must({"ip", "-n", ns, "link", "set", host_interface(), "gso_max_segs", "1"});
    }
    must({"ip", "-n", bridge_ns_, "link", "set", peer, "master", "br0"});
    must({"ip", "-n", bridge_ns_, "link", "set", peer, "up"});
    must({"ip", "-n", ns, "addr", "add", address(i) + "/24", "dev", host_interface()});
    must({"ip", "-n", ns, "link", "set", host_interface(), "up"});
    shape(ns, host_interface(), true);  // uplink of host i (+ delay/loss at the sender)
    shape(bridge_ns_, peer, false);      // downlink of host i
  }
}

NetemCluster::~NetemCluster() {
  try {
    teardown();
  } catch (const std::exception& e) {
    std::cerr << "netem: teardown of " << id_ << ": " << e.what() << "\n";
  }
}

const std::string& NetemCluster::netns(std::uint32_t host) const {
  if (host >= host_ns_.size()) throw NetemError("netem: no host " + std::to_string(host));
  return host_ns_[host];
}

std::string NetemCluster::address(std::uint32_t host) const {
  if (host >= options_.num_hosts) throw NetemError("netem: no host " + std::to_string(host));
  return options_.subnet_prefix + "." + std::to_string(host + 1);
}

InterfaceCounters NetemCluster::counters(std::uint32_t host) const {
  const std::string dir = std::string("/sys/class/net/") + host_interface() + "/statistics/";
  // `ip netns exec` mounts the namespace's own sysfs, so the path names the veth there.
  const std::string out = must({"ip", "netns", "exec", netns(host), "cat", dir + "tx_bytes", dir + "rx_bytes",
                                dir + "tx_packets", dir + "rx_packets"});
  InterfaceCounters c;
  unsigned long long v[4];
  if (std::sscanf(out.c_str(), "%llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3]) != 4) {
    throw NetemError("netem: unreadable interface statistics of " + netns(host) + ": " + out);
  }
  c.tx_bytes = v[0];
  c.rx_bytes = v[1];
  c.tx_packets = v[2];
  c.rx_packets = v[3];
  return c;
}

void NetemCluster::teardown() {
  std::string failed;
  // Hosts first, the bridge last (reverse creation order).
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    const ToolResult r = run_tool({"ip", "netns", "del", *it});
    if (r.status != 0 && r.output.find("No such file") == std::string::npos) {
      failed += (failed.empty() ? "" : ", ") + *it + " (" + r.output + ")";
    }
    unregister_netns(*it);
  }
  created_.clear();
  if (!failed.empty()) throw NetemError("netem: could not delete namespaces: " + failed);
}

std::size_t remove_stale_netem() {
  std::size_t removed = 0;
  DIR* dir = opendir("/run/netns");
  if (!dir) return 0;
  std::vector<std::string> stale;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.rfind("gz", 0) != 0) continue;
    const auto dash = name.find('-');
    if (dash == std::string::npos) continue;
    bool ok = false;
    const unsigned long pid = parse_base36(name.substr(2, dash - 2), &ok);
    if (!ok || pid == 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  closedir(dir);
  for (const auto& ns : stale) {
    if (run_tool({"ip", "netns", "del", ns}).status == 0) ++removed;
  }
  return removed;
}

}  // namespace gradzip::experiments
