// Link models: turn the bytes a training step counted into modeled communication time
// on a given interconnect (PCIe, NVLink, Ethernet), and a run's metrics into modeled
// time-to-accuracy per interconnect.
//
// Topology assumed by the model (parameter server, DESIGN.md):
//   every worker and every shard has one full-duplex port of bandwidth B bytes/s and
//   one-way latency L seconds, all ports joined by a non-blocking switch (the "hose"
//   model: only the end ports limit throughput). A step is a sync round:
//     uplink phase   every worker w sends u[w][s] wire bytes to shard s
//     downlink phase every shard s sends d[w][s] wire bytes back to worker w
//   The phases do not overlap each other or the computation (a sync step without
//   pipelining; see time_to_accuracy for the consequence).
//
// Formula (incast at the shards; the bottleneck port of the hose model):
//   T_up   = L + max( max_s sum_w u[w][s],  max_w sum_s u[w][s] ) * k / B
//   T_down = L + max( max_s sum_w d[w][s],  max_w sum_s d[w][s] ) * k / B
//   T_step = T_up + T_down
// where the first term inside max() is a shard's ingress (uplink) or egress (downlink)
// port shared by all N workers (incast: N workers share one shard port), the second is
// a worker's own port, and k >= 1 is the per-byte overhead not visible in counted
// bytes (PCIe transaction-layer packets: 280/256; 1 for Ethernet, whose headers,
// preamble, FCS and gap comm/accounting.h already counts in tcpip_bytes, and NVLink). Max-min fair
// sharing of a single bottleneck port finishes all flows through it after
// (their total bytes) / B, which is what the sums express (Bertsekas & Gallager,
// "Data Networks", 2nd ed., 1992, sec. 6.5.2 on max-min fairness).
// With per-worker totals only (no per-shard split), u[w][s] = u[w] * f_s, where f_s is
// shard s's share of the parameters (placement; uniform 1/M by default). With N workers
// of equal traffic u and M equal shards this reduces to T_up = L + max(N/M, 1) * u * k / B.
//
// Which counted bytes travel: Ethernet profiles carry gradzip payload + ZeroMQ framing +
// TCP/IP/Ethernet headers (DirectionCounters: payload_bytes + framing_bytes +
// tcpip_bytes); PCIe and NVLink profiles carry the payload only (a DMA copy has no
// socket framing).
//
// No torch here; thread-safe (pure functions on values).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/transport.h"

namespace gradzip::experiments {

/// Bad link name, spec or model input: names the offending text and what is allowed.
class LinkModelError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Which of the counted byte classes cross a link of this kind.
enum class LinkCarries {
  kPayloadOnly,  ///< payload_bytes (PCIe DMA, NVLink: no sockets)
  kTcpStack,     ///< payload_bytes + framing_bytes + tcpip_bytes (Ethernet, veth)
};

/// One interconnect: per-direction bandwidth of one port and one-way latency.
struct LinkProfile {
  std::string name;                   ///< e.g. "eth10g"
  double bandwidth_bytes_per_s = 0;   ///< usable data rate of one port, one direction (bytes/s)
  double latency_s = 0;               ///< one-way latency of a message (seconds)
  double frame_overhead_factor = 1;   ///< k >= 1: wire bytes per counted byte (L1 overhead)
  LinkCarries carries = LinkCarries::kTcpStack;
  std::string source;                 ///< where the numbers come from (one line)
};

/// Built-in profiles, in display order: pcie3, pcie4, pcie5 (x16), nvlink, eth1g,
/// eth10g, eth25g, eth100g. Numbers and sources are documented in link_model.cc and
/// returned in LinkProfile::source.
const std::vector<LinkProfile>& builtin_link_profiles();

/// Parses a link spec: a built-in name ("eth10g"; "10gbe" is an alias) or
///   "custom:bw=<number><unit>,lat=<number><unit>[,carries=tcp|payload][,k=<factor>]"
/// with bandwidth units gbit, mbit, kbit, bit (per second; 1 gbit = 1e9 bit/s), GB, MB
/// (bytes per second, decimal) and latency units s, ms, us, ns.
/// Example: "custom:bw=40gbit,lat=15us". Throws LinkModelError naming the bad part.
LinkProfile parse_link(const std::string& spec);

/// Comma-separated list of link specs ("eth1g,eth10g" or "all" for every built-in).
std::vector<LinkProfile> parse_link_list(const std::string& specs);

/// Counted bytes of one direction of one worker in one step.
struct WireBytes {
  double payload_bytes = 0;  ///< gradzip messages
  double framing_bytes = 0;  ///< ZeroMQ framing
  double tcpip_bytes = 0;    ///< estimated TCP/IP/Ethernet headers
  /// Bytes that cross `link` (per its LinkCarries), before the frame overhead factor.
  double on(const LinkProfile& link) const;
};

/// Difference of two cumulative counters (later - earlier) as WireBytes.
WireBytes wire_bytes_between(const comm::DirectionCounters& earlier, const comm::DirectionCounters& later);

/// Traffic of one sync step, per worker (index = worker rank).
struct StepTraffic {
  std::vector<WireBytes> up;    ///< worker -> shards, one entry per worker
  std::vector<WireBytes> down;  ///< shards -> worker, one entry per worker (same size as up)
  /// Share of each worker's bytes that goes to / comes from shard s (sum 1). Empty:
  /// `num_shards` equal shares.
  std::vector<double> shard_fraction;
  std::uint32_t num_shards = 1;
  /// > 0: a collective among the workers (--aggregation allreduce|allgather|...), no
  /// shards: up[w] is what worker w sends to its peers, down[w] what it receives, both at
  /// once through its full-duplex port, after this many sequential latency-bound rounds
  /// (ring allreduce: 2(R-1); allgather: R-1). See modeled_step_time.
  std::uint32_t collective_rounds = 0;
};

/// Modeled time of one step and where it is limited.
struct CommTime {
  double up_s = 0;        ///< T_up
  double down_s = 0;      ///< T_down
  double total_s = 0;     ///< T_up + T_down
  bool up_shard_bound = false;    ///< uplink limited by a shard port (incast) rather than a worker port
  bool down_shard_bound = false;  ///< downlink limited by a shard port
};

/// T_step of the header formula; for a collective step (collective_rounds > 0) the ring's
/// hose-model time instead: every worker sends and receives at once, so
///   T_step = rounds * L + max_w max(up[w], down[w]) * k / B   (reported as up_s; down_s = 0).
/// Throws LinkModelError on inconsistent input
/// (up/down sizes differ, no workers, fractions negative or not summing to 1 within 1e-6,
/// non-positive bandwidth).
CommTime modeled_step_time(const LinkProfile& link, const StepTraffic& traffic);

/// One stretch of a training run between two evaluations, as read from metrics: the
/// steps it covered, the measured time spent outside communication, the mean traffic
/// of one of its steps, and the test accuracy evaluated at its end (NaN when none).
struct RunSegment {
  std::uint64_t steps = 0;          ///< steps in this segment
  double compute_s = 0;             ///< measured wall time of these steps minus their measured comm time
  double measured_comm_s = 0;       ///< measured comm time of these steps (for the "measured" column)
  StepTraffic mean_step_traffic;    ///< traffic of one average step of this segment
  double test_accuracy = 0;         ///< accuracy at the end of the segment, in [0, 1]; NaN: not evaluated
};

/// Modeled wall time at the end of every segment on `link`:
///   t_k = sum_{i<=k} ( compute_s_i + steps_i * T_step(mean_step_traffic_i) )
/// Communication is not overlapped with compute (sync PS without pipelining), so this
/// is an upper bound for a pipelined implementation.
std::vector<double> modeled_timeline(const LinkProfile& link, const std::vector<RunSegment>& segments);

/// Measured wall time at the end of every segment: sum of compute_s + measured_comm_s.
std::vector<double> measured_timeline(const std::vector<RunSegment>& segments);

/// First time in `timeline` (same indexing as `segments`) at which the test accuracy
/// reaches `target` (in [0, 1]); nullopt if it never does.
std::optional<double> time_to_accuracy(const std::vector<RunSegment>& segments, const std::vector<double>& timeline,
                                       double target);

/// Formats a bandwidth as "10 Gbit/s" / "15.75 GB/s" and a duration with units.
std::string format_bandwidth(double bytes_per_s);
std::string format_seconds(double seconds);

}  // namespace gradzip::experiments
