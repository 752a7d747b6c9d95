// Link profiles and the communication-time model (formulas in link_model.h).
#include "experiments/link_model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace gradzip::experiments {
namespace {

// ---- profile numbers --------------------------------------------------------------
// PCIe x16, per direction: lanes * transfer rate * encoding efficiency / 8 bits.
//   gen3:  8 GT/s, 128b/130b  -> 16 *  8e9 * 128/130 / 8 = 15.754 GB/s
//   gen4: 16 GT/s, 128b/130b  -> 31.508 GB/s
//   gen5: 32 GT/s, 128b/130b  -> 63.015 GB/s
// (PCI-SIG, PCI Express Base Specification rev. 3.0 (2010), 4.0 (2017), 5.0 (2019)).
// Transaction-layer overhead: a posted write of 256 bytes (a common Max_Payload_Size)
// carries about 24 bytes of framing, sequence number, 4-DW header and LCRC, so
// k = 280/256 (Neugebauer et al., "Understanding PCIe performance for end host
// networking", SIGCOMM 2018, sec. 2). Latency 1 us: order of magnitude of a DMA
// round trip measured there (hundreds of ns) plus driver/launch cost; an assumption.
constexpr double kPcieLanes = 16;
constexpr double kPcieEncoding = 128.0 / 130.0;
constexpr double kPcieTlpOverhead = 280.0 / 256.0;
constexpr double pcie_bytes_per_s(double gigatransfers) { return kPcieLanes * gigatransfers * 1e9 * kPcieEncoding / 8; }

// NVLink 3 (A100): 12 links x 25 GB/s per direction = 300 GB/s per direction
// (NVIDIA A100 Tensor Core GPU Architecture whitepaper, 2020). Latency 1 us: assumption.
constexpr double kNvlinkBytesPerS = 300e9;

// Ethernet: line rate per direction (IEEE 802.3: 1000BASE-T, 10GBASE, 25GBASE (802.3by),
// 100GBASE (802.3ba)). k = 1: the TCP/IP estimate of comm/accounting.h already charges
// each segment its Ethernet header, FCS, preamble and inter-frame gap, and the ACKs.
// Latency: one-way small-message latency through the kernel TCP stack and one switch;
// 50/20/10/5 us are order-of-magnitude assumptions (not measured here); use
// "custom:bw=...,lat=..." to model a measured network.
constexpr double kEthFrameOverhead = 1.0;

std::vector<LinkProfile> make_builtins() {
  const std::string pcie_src = "PCIe base spec: x16, 128b/130b; TLP overhead 280/256 (Neugebauer et al. 2018); latency assumed";
  const std::string eth_src = "IEEE 802.3 line rate; headers/L1 counted by comm/accounting.h; latency assumed (kernel TCP + 1 switch)";
  return {
      {"pcie3", pcie_bytes_per_s(8), 1e-6, kPcieTlpOverhead, LinkCarries::kPayloadOnly, "gen3 8 GT/s; " + pcie_src},
      {"pcie4", pcie_bytes_per_s(16), 1e-6, kPcieTlpOverhead, LinkCarries::kPayloadOnly, "gen4 16 GT/s; " + pcie_src},
      {"pcie5", pcie_bytes_per_s(32), 1e-6, kPcieTlpOverhead, LinkCarries::kPayloadOnly, "gen5 32 GT/s; " + pcie_src},
      {"nvlink", kNvlinkBytesPerS, 1e-6, 1.0, LinkCarries::kPayloadOnly,
       "NVLink 3 (A100 whitepaper 2020): 12 x 25 GB/s per direction; latency assumed"},
      {"eth1g", 1e9 / 8, 50e-6, kEthFrameOverhead, LinkCarries::kTcpStack, "1 Gbit/s; " + eth_src},
      {"eth10g", 10e9 / 8, 20e-6, kEthFrameOverhead, LinkCarries::kTcpStack, "10 Gbit/s; " + eth_src},
      {"eth25g", 25e9 / 8, 10e-6, kEthFrameOverhead, LinkCarries::kTcpStack, "25 Gbit/s; " + eth_src},
      {"eth100g", 100e9 / 8, 5e-6, kEthFrameOverhead, LinkCarries::kTcpStack, "100 Gbit/s; " + eth_src},
  };
}

std::string builtin_names() {
  std::string names;
  for (const auto& p : builtin_link_profiles()) {
    names += (names.empty() ? "" : "|") + p.name;
  }
  return names;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Splits "40gbit" into 40 and "gbit". Throws LinkModelError when no number leads.
std::pair<double, std::string> split_number_unit(const std::string& spec, const std::string& key,
                                                 const std::string& text) {
  std::size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    throw LinkModelError("link spec '" + spec + "': " + key + "=" + text + " does not start with a number");
  }
  if (!std::isfinite(value) || value <= 0) {
    throw LinkModelError("link spec '" + spec + "': " + key + "=" + text + " must be a positive number");
  }
  return {value, text.substr(pos)};
}

double parse_bandwidth(const std::string& spec, const std::string& text) {
  auto [value, unit] = split_number_unit(spec, "bw", text);
  // Case matters for bytes (GB) vs bits (gbit); bits are spelled out.
  if (unit == "gbit") return value * 1e9 / 8;
  if (unit == "mbit") return value * 1e6 / 8;
  if (unit == "kbit") return value * 1e3 / 8;
  if (unit == "bit") return value / 8;
  if (unit == "GB") return value * 1e9;
  if (unit == "MB") return value * 1e6;
  throw LinkModelError("link spec '" + spec + "': bandwidth unit '" + unit +
                       "' unknown; allowed: gbit|mbit|kbit|bit (per second) or GB|MB (bytes per second)");
}

double parse_latency(const std::string& spec, const std::string& text) {
  if (text == "0") return 0;
  auto [value, unit] = split_number_unit(spec, "lat", text);
  if (unit == "s") return value;
  if (unit == "ms") return value * 1e-3;
  if (unit == "us") return value * 1e-6;
  if (unit == "ns") return value * 1e-9;
  throw LinkModelError("link spec '" + spec + "': latency unit '" + unit + "' unknown; allowed: s|ms|us|ns");
}

// max over shards of sum_w bytes[w] * f_s, and max over workers of bytes[w].
struct PortLoads {
  double shard_port = 0;
  double worker_port = 0;
};

PortLoads port_loads(const std::vector<WireBytes>& dir, const std::vector<double>& fractions,
                     const LinkProfile& link) {
  double sum = 0;
  PortLoads loads;
  for (const auto& w : dir) {
    const double b = w.on(link);
    sum += b;
    loads.worker_port = std::max(loads.worker_port, b);
  }
  const double max_fraction = *std::max_element(fractions.begin(), fractions.end());
  loads.shard_port = sum * max_fraction;
  return loads;
}

// Collective step: each worker's port carries its sent and received bytes at once (full
// duplex, hose model), after `collective_rounds` latency-bound rounds.
CommTime collective_step_time(const LinkProfile& link, const StepTraffic& traffic, double seconds_per_byte) {
  double port = 0;
  for (std::size_t w = 0; w < traffic.up.size(); ++w) {
    port = std::max({port, traffic.up[w].on(link), traffic.down[w].on(link)});
  }
  CommTime t;
  t.up_s = traffic.collective_rounds * link.latency_s + port * seconds_per_byte;
  t.total_s = t.up_s;
  return t;
}

}  // namespace

const std::vector<LinkProfile>& builtin_link_profiles() {
  static const std::vector<LinkProfile> profiles = make_builtins();
  return profiles;
}

LinkProfile parse_link(const std::string& spec) {
  std::string name = lower(spec);
  // Aliases "1gbe", "10gbe", ... for "eth1g", "eth10g", ...
  if (name.size() > 3 && name.compare(name.size() - 3, 3, "gbe") == 0) {
    name = "eth" + name.substr(0, name.size() - 2);
  }
  for (const auto& p : builtin_link_profiles()) {
    if (p.name == name) return p;
  }
  const std::string prefix = "custom:";
  if (spec.rfind(prefix, 0) != 0) {
    throw LinkModelError("unknown link '" + spec + "'; allowed: " + builtin_names() +
                         " or custom:bw=<n>gbit,lat=<n>us");
  }
  LinkProfile p;
  p.name = spec;
  p.source = "user-defined";
  bool have_bw = false;
  bool have_lat = false;
  std::stringstream ss(spec.substr(prefix.size()));
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw LinkModelError("link spec '" + spec + "': '" + item + "' is not key=value");
    const std::string key = item.substr(0, eq);
    const std::string value = item.substr(eq + 1);
    if (key == "bw") {
      p.bandwidth_bytes_per_s = parse_bandwidth(spec, value);
      have_bw = true;
    } else if (key == "lat") {
      p.latency_s = parse_latency(spec, value);
      have_lat = true;
    } else if (key == "carries") {
      if (value == "tcp") {
        p.carries = LinkCarries::kTcpStack;
      } else if (value == "payload") {
        p.carries = LinkCarries::kPayloadOnly;
      } else {
        throw LinkModelError("link spec '" + spec + "': carries=" + value + " unknown; allowed: tcp|payload");
      }
    } else if (key == "k") {
      auto [k, rest] = split_number_unit(spec, "k", value);
      if (!rest.empty() || k < 1) throw LinkModelError("link spec '" + spec + "': k=" + value + " must be a number >= 1");
      p.frame_overhead_factor = k;
    } else {
      throw LinkModelError("link spec '" + spec + "': key '" + key + "' unknown; allowed: bw|lat|carries|k");
    }
  }
  if (!have_bw || !have_lat) throw LinkModelError("link spec '" + spec + "': needs both bw= and lat=");
  return p;
}

std::vector<LinkProfile> parse_link_list(const std::string& specs) {
  if (specs == "all") return builtin_link_profiles();
  // Custom specs contain commas themselves: a piece of the form key=value continues the
  // custom spec before it; any other piece starts a new spec.
  std::vector<std::string> texts;
  std::stringstream ss(specs);
  std::string piece;
  while (std::getline(ss, piece, ',')) {
    if (piece.empty()) continue;
    const bool continues = piece.find('=') != std::string::npos && piece.rfind("custom:", 0) != 0;
    if (continues) {
      if (texts.empty()) throw LinkModelError("link list '" + specs + "': '" + piece + "' has no custom: before it");
      texts.back() += "," + piece;
    } else {
      texts.push_back(piece);
    }
  }
  if (texts.empty()) throw LinkModelError("empty link list '" + specs + "'");
  std::vector<LinkProfile> out;
  for (const auto& t : texts) out.push_back(parse_link(t));
  return out;
}

double WireBytes::on(const LinkProfile& link) const {
  if (link.carries == LinkCarries::kPayloadOnly) return payload_bytes;
  return payload_bytes + framing_bytes + tcpip_bytes;
}

WireBytes wire_bytes_between(const comm::DirectionCounters& earlier, const comm::DirectionCounters& later) {
  WireBytes w;
  w.payload_bytes = static_cast<double>(later.payload_bytes) - static_cast<double>(earlier.payload_bytes);
  w.framing_bytes = static_cast<double>(later.framing_bytes) - static_cast<double>(earlier.framing_bytes);
  w.tcpip_bytes = static_cast<double>(later.tcpip_bytes) - static_cast<double>(earlier.tcpip_bytes);
  return w;
}

CommTime modeled_step_time(const LinkProfile& link, const StepTraffic& traffic) {
  if (!(link.bandwidth_bytes_per_s > 0)) throw LinkModelError("link '" + link.name + "' has no positive bandwidth");
  if (link.frame_overhead_factor < 1) throw LinkModelError("link '" + link.name + "' has frame overhead factor < 1");
  if (traffic.up.empty()) throw LinkModelError("step traffic has no workers");
  if (traffic.up.size() != traffic.down.size()) {
    throw LinkModelError("step traffic: " + std::to_string(traffic.up.size()) + " uplink entries but " +
                         std::to_string(traffic.down.size()) + " downlink entries");
  }
  const double seconds_per_byte = link.frame_overhead_factor / link.bandwidth_bytes_per_s;
  if (traffic.collective_rounds > 0) return collective_step_time(link, traffic, seconds_per_byte);
  std::vector<double> fractions = traffic.shard_fraction;
  if (fractions.empty()) {
    if (traffic.num_shards == 0) throw LinkModelError("step traffic: zero shards");
    fractions.assign(traffic.num_shards, 1.0 / traffic.num_shards);
  }
  double sum = 0;
  for (double f : fractions) {
    if (!(f >= 0)) throw LinkModelError("step traffic: negative or NaN shard fraction");
    sum += f;
  }
  if (std::fabs(sum - 1.0) > 1e-6) throw LinkModelError("step traffic: shard fractions sum to " + std::to_string(sum));

  const PortLoads up = port_loads(traffic.up, fractions, link);
  const PortLoads down = port_loads(traffic.down, fractions, link);
  CommTime t;
  t.up_s = link.latency_s + std::max(up.shard_port, up.worker_port) * seconds_per_byte;
  t.down_s = link.latency_s + std::max(down.shard_port, down.worker_port) * seconds_per_byte;
  t.total_s = t.up_s + t.down_s;
  t.up_shard_bound = up.shard_port > up.worker_port;
  t.down_shard_bound = down.shard_port > down.worker_port;
  return t;
}

std::vector<double> modeled_timeline(const LinkProfile& link, const std::vector<RunSegment>& segments) {
  std::vector<double> t;
  t.reserve(segments.size());
  double now = 0;
  for (const auto& seg : segments) {
    now += seg.compute_s;
    if (seg.steps > 0) now += static_cast<double>(seg.steps) * modeled_step_time(link, seg.mean_step_traffic).total_s;
    t.push_back(now);
  }
  return t;
}

std::vector<double> measured_timeline(const std::vector<RunSegment>& segments) {
  std::vector<double> t;
  t.reserve(segments.size());
  double now = 0;
  for (const auto& seg : segments) {
    now += seg.compute_s + seg.measured_comm_s;
    t.push_back(now);
  }
  return t;
}

std::optional<double> time_to_accuracy(const std::vector<RunSegment>& segments, const std::vector<double>& timeline,
                                       double target) {
  if (timeline.size() != segments.size()) {
    throw LinkModelError("time_to_accuracy: timeline has " + std::to_string(timeline.size()) + " points for " +
                         std::to_string(segments.size()) + " segments");
  }
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (std::isfinite(segments[i].test_accuracy) && segments[i].test_accuracy >= target) return timeline[i];
  }
  return std::nullopt;
}

std::string format_bandwidth(double bytes_per_s) {
  char buf[64];
  const double bits = bytes_per_s * 8;
  if (bits < 1e11 && std::fabs(bits / 1e9 - std::round(bits / 1e9)) < 1e-9 && bits >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.0f Gbit/s", bits / 1e9);
  } else if (bytes_per_s >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2f GB/s", bytes_per_s / 1e9);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f Mbit/s", bits / 1e6);
  }
  return buf;
}

std::string format_seconds(double seconds) {
  char buf[64];
  if (!std::isfinite(seconds)) return "n/a";
  if (seconds >= 3600) {
    std::snprintf(buf, sizeof buf, "%.2f h", seconds / 3600);
  } else if (seconds >= 60) {
    std::snprintf(buf, sizeof buf, "%.1f min", seconds / 60);
  } else if (seconds >= 1) {
    std::snprintf(buf, sizeof buf, "%.2f s", seconds);
  } else if (seconds >= 1e-3) {
    std::snprintf(buf, sizeof buf, "%.2f ms", seconds * 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f us", seconds * 1e6);
  }
  return buf;
}

}  // namespace gradzip::experiments
