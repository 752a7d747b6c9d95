// Emulated links for real multi-process runs: every host (a PS shard or a worker) gets
// its own Linux network namespace, joined to a software bridge (in a namespace of its
// own) by a veth pair whose two ends are shaped with `tc`:
//
//   host ns "gz<id>-h<i>"            bridge ns "gz<id>-br"
//   eth0 10.77.0.<i+1>/24  <--veth-->  p<i> --- br0 --- p<j> <--veth--> eth0 (host j)
//   egress: tbf rate [+ netem delay/loss]      egress of p<i>: tbf rate
//
// So each host has one full-duplex port of `rate` bits/s per direction (the hose model
// of experiments/link_model.h); one-way delay and loss are added once, at the sender's eth0.
// Needs root, iproute2 and the sch_tbf (and, for delay/loss, sch_netem) kernel modules.
//
// Lifetime: NetemCluster is RAII. The constructor builds everything or, on any failure,
// removes what it built and throws NetemError. The destructor (and teardown()) deletes
// every namespace, which destroys its veths and bridge. On SIGINT/SIGTERM a handler
// installed by the first cluster kills registered child processes, deletes every live
// cluster's namespaces (async-signal-safe: umount2 + unlink of /run/netns/<name>, what
// `ip netns del` does) and re-raises the signal. Namespaces left behind by a process
// killed with SIGKILL are found by remove_stale_netem() (names embed the owner's pid).
//
// Names are unique per process and cluster ("gz" + base-36 pid + "-" + counter), so
// parallel tests never clash; addresses are private to the cluster's namespaces.
// Not thread-safe: build and use a cluster from one thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/launch.h"

namespace gradzip::experiments {

/// A failure to build, use or tear down the emulated network (tool missing, not root,
/// kernel module missing, command failed). The message names the command and its output.
class NetemError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Shaping of every host port (both directions).
struct ShapingOptions {
  double rate_bit_per_s = 0;        ///< tbf rate per direction; 0: no rate limit
  std::uint64_t burst_bytes = 0;    ///< tbf bucket size; 0: max(32 KiB, 4 ms at rate)
  double queue_latency_s = 0.5;     ///< tbf: longest a packet may wait before being dropped
  double delay_s = 0;               ///< netem one-way delay at the sender (needs sch_netem)
  double loss_fraction = 0;         ///< netem random loss at the sender, in [0, 1) (needs sch_netem)
};

/// Settings of a NetemCluster.
struct NetemOptions {
  std::uint32_t num_hosts = 2;         ///< namespaces with one port each, 1..250
  ShapingOptions shaping;
  std::string subnet_prefix = "10.77.0";  ///< host i gets <prefix>.<i+1>/24 (inside the cluster only)
  /// Set gso_max_segs 1 on the veths so TCP hands MSS-sized packets to the device and
  /// the interface counters see one TCP/IP header per segment, like a real NIC's wire.
  bool disable_gso = true;
};

/// Interface statistics from /sys/class/net/<dev>/statistics (bytes include the
/// 14-byte Ethernet header of each frame, not preamble/FCS/gap).
struct InterfaceCounters {
  std::uint64_t tx_bytes = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_packets = 0;
  std::uint64_t rx_packets = 0;
};

/// Empty when this process can build a cluster (root, `ip` and `tc` on PATH, sch_tbf
/// usable); otherwise the reason, for GTEST_SKIP or a CLI error.
std::string netem_unavailable_reason();
/// Empty when sch_netem (delay/loss) is usable; otherwise the reason.
std::string netem_delay_unavailable_reason();

class NetemCluster {
 public:
  /// Builds the namespaces, bridge, veths and qdiscs. Throws NetemError (after removing
  /// whatever it had built) on any failure.
  explicit NetemCluster(const NetemOptions& options);
  /// Tears down (never throws; failures are logged to stderr).
  ~NetemCluster();
  NetemCluster(const NetemCluster&) = delete;
  NetemCluster& operator=(const NetemCluster&) = delete;

  /// Unique id of this cluster, the prefix of all its namespace names.
  const std::string& id() const { return id_; }
  std::uint32_t size() const { return options_.num_hosts; }
  /// Namespace of host i (usable with `ip netns exec`).
  const std::string& netns(std::uint32_t host) const;
  /// IPv4 address of host i's eth0 (dotted quad).
  std::string address(std::uint32_t host) const;
  /// Name of host i's interface inside its namespace ("eth0").
  static const char* host_interface() { return "eth0"; }
  /// Counters of host i's eth0 (tx = what the host sent). Throws NetemError.
  InterfaceCounters counters(std::uint32_t host) const;
  /// Deletes every namespace of the cluster. Idempotent. Throws NetemError naming the
  /// namespaces it could not delete.
  void teardown();

 private:
  void build();
  NetemOptions options_;
  std::string id_;
  std::string bridge_ns_;
  std::vector<std::string> host_ns_;
  std::vector<std::string> created_;  ///< namespaces to delete, in creation order
};

/// A child process whose network namespace is one of a cluster's. RAII: the destructor
/// kills (SIGKILL) and reaps it if it still runs. While alive, its pid is registered so
/// the SIGINT/SIGTERM handler kills it before deleting namespaces. A comm::Process, so
/// comm::run_launch supervises it (its spawn hook: netns_spawner).
class NetnsProcess final : public comm::Process {
 public:
  /// Forks; the child enters `netns` (setns) and execs argv[0] (PATH lookup) with
  /// stdout and stderr appended to `log_path` (empty: inherited). Throws NetemError.
  static NetnsProcess exec(const std::string& netns, const std::vector<std::string>& argv,
                           const std::string& log_path = "");
  /// Forks; the child enters `netns` and returns fn() as its exit status via _exit
  /// (exceptions: status 111). Call only while this process has a single thread.
  static NetnsProcess run(const std::string& netns, const std::function<int()>& fn);

  NetnsProcess(NetnsProcess&& other) noexcept;
  NetnsProcess& operator=(NetnsProcess&& other) noexcept;
  NetnsProcess(const NetnsProcess&) = delete;
  NetnsProcess& operator=(const NetnsProcess&) = delete;
  ~NetnsProcess();

  pid_t pid() const { return pid_; }
  /// Waits up to timeout_s for exit; returns the exit status (128+signal when killed by
  /// a signal). On timeout kills the child and throws NetemError.
  int wait(double timeout_s);
  /// Sends SIGKILL (if running) and reaps.
  void kill();
  /// comm::Process: non-blocking reap, signal, exit status once reaped.
  bool running() override;
  void signal(int sig) override;
  int exit_code() const override { return exit_code_; }

 private:
  explicit NetnsProcess(pid_t pid);
  /// Reaps the child if it exited (or waits when `block`); true once reaped.
  bool reap(bool block);
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
};

/// comm::run_launch's spawn hook for a cluster: process `slot` runs in the namespace of
/// host `slot` (so shards 0..M-1 are hosts 0..M-1 and workers follow).
comm::SpawnFn netns_spawner(const NetemCluster& cluster);

/// Deletes namespaces named "gz<pid36>-..." whose owner process no longer exists (left by
/// a run killed with SIGKILL). Returns how many were removed.
std::size_t remove_stale_netem();

}  // namespace gradzip::experiments
