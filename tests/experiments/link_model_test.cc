// Link model: profile numbers, spec parsing, the incast formula and time-to-accuracy,
// each checked against numbers computed by hand (arithmetic in the comments).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "experiments/link_model.h"

namespace gradzip::experiments {
namespace {

StepTraffic uniform_traffic(std::size_t workers, std::uint32_t shards, WireBytes up, WireBytes down) {
  StepTraffic t;
  t.up.assign(workers, up);
  t.down.assign(workers, down);
  t.num_shards = shards;
  return t;
}

TEST(LinkProfiles, BuiltinNumbers) {
  // PCIe 3.0 x16: 16 lanes * 8e9 T/s * 128/130 / 8 = 15 753 846 153.8 B/s.
  EXPECT_NEAR(parse_link("pcie3").bandwidth_bytes_per_s, 15753846153.8, 1.0);
  EXPECT_NEAR(parse_link("pcie4").bandwidth_bytes_per_s, 2 * 15753846153.8, 2.0);
  EXPECT_NEAR(parse_link("pcie5").bandwidth_bytes_per_s, 4 * 15753846153.8, 4.0);
  EXPECT_DOUBLE_EQ(parse_link("nvlink").bandwidth_bytes_per_s, 300e9);
  EXPECT_DOUBLE_EQ(parse_link("eth1g").bandwidth_bytes_per_s, 125e6);
  EXPECT_DOUBLE_EQ(parse_link("eth10g").bandwidth_bytes_per_s, 1.25e9);
  EXPECT_DOUBLE_EQ(parse_link("eth25g").bandwidth_bytes_per_s, 3.125e9);
  EXPECT_DOUBLE_EQ(parse_link("ETH100G").bandwidth_bytes_per_s, 12.5e9);
  EXPECT_EQ(parse_link("10gbe").name, "eth10g");
  EXPECT_EQ(parse_link("1GbE").name, "eth1g");
  EXPECT_EQ(builtin_link_profiles().size(), 8u);
  for (const auto& p : builtin_link_profiles()) {
    EXPECT_FALSE(p.source.empty()) << p.name;
    EXPECT_GE(p.frame_overhead_factor, 1.0) << p.name;
  }
}

TEST(LinkProfiles, CustomSpec) {
  const LinkProfile p = parse_link("custom:bw=40gbit,lat=15us");
  EXPECT_DOUBLE_EQ(p.bandwidth_bytes_per_s, 5e9);  // 40e9 / 8
  EXPECT_DOUBLE_EQ(p.latency_s, 15e-6);
  EXPECT_DOUBLE_EQ(p.frame_overhead_factor, 1.0);
  const LinkProfile q = parse_link("custom:bw=2GB,lat=1ms,carries=payload,k=1.25");
  EXPECT_DOUBLE_EQ(q.bandwidth_bytes_per_s, 2e9);
  EXPECT_DOUBLE_EQ(q.latency_s, 1e-3);
  EXPECT_EQ(q.carries, LinkCarries::kPayloadOnly);
  EXPECT_DOUBLE_EQ(q.frame_overhead_factor, 1.25);
}

TEST(LinkProfiles, BadSpecsAreTypedErrors) {
  EXPECT_THROW(parse_link("eth40g"), LinkModelError);
  EXPECT_THROW(parse_link("custom:bw=10gbit"), LinkModelError);           // no latency
  EXPECT_THROW(parse_link("custom:bw=10parsecs,lat=1us"), LinkModelError);
  EXPECT_THROW(parse_link("custom:bw=-1gbit,lat=1us"), LinkModelError);
  EXPECT_THROW(parse_link("custom:bw=1gbit,lat=1fortnight"), LinkModelError);
  EXPECT_THROW(parse_link("custom:bw=1gbit,lat=1us,color=red"), LinkModelError);
  EXPECT_THROW(parse_link("custom:bw=1gbit,lat=1us,k=0.5"), LinkModelError);
  try {
    parse_link("eth40g");
  } catch (const LinkModelError& e) {
    EXPECT_NE(std::string(e.what()).find("eth10g"), std::string::npos) << "error should list allowed names";
  }
}

TEST(LinkProfiles, ListWithCustomCommas) {
  const auto links = parse_link_list("eth1g,custom:bw=1gbit,lat=1ms,eth10g");
  ASSERT_EQ(links.size(), 3u);
  EXPECT_EQ(links[0].name, "eth1g");
  EXPECT_DOUBLE_EQ(links[1].latency_s, 1e-3);
  EXPECT_EQ(links[2].name, "eth10g");
  EXPECT_EQ(parse_link_list("all").size(), builtin_link_profiles().size());
  EXPECT_THROW(parse_link_list(""), LinkModelError);
  EXPECT_THROW(parse_link_list("lat=1ms"), LinkModelError);
}

TEST(LinkModel, IncastAtShardsEth10g) {
  // 4 workers, 2 equal shards. Per worker up: 1 000 000 payload + 1 000 framing + 50 000
  // TCP/IP = 1 051 000 B. Shard port: 4 * 1 051 000 / 2 = 2 102 000 B > worker port
  // 1 051 000 B, so incast dominates. k = 1 (headers are in the counted TCP/IP bytes).
  // T_up = 20e-6 + 2 102 000 / 1.25e9 = 20e-6 + 1.6816e-3 = 1.7016e-3 s.
  // Down per worker 2 000 000 + 100 000 = 2 100 000; shard port 4 200 000 B:
  // T_down = 20e-6 + 4 200 000 / 1.25e9 = 3.38e-3 s.
  const auto t = modeled_step_time(parse_link("eth10g"),
                                   uniform_traffic(4, 2, {1e6, 1e3, 5e4}, {2e6, 0, 1e5}));
  EXPECT_NEAR(t.up_s, 1.7016e-3, 1e-12);
  EXPECT_NEAR(t.down_s, 3.38e-3, 1e-12);
  EXPECT_NEAR(t.total_s, t.up_s + t.down_s, 1e-15);
  EXPECT_TRUE(t.up_shard_bound);
  EXPECT_TRUE(t.down_shard_bound);
}

TEST(LinkModel, WorkerPortBoundWhenShardsOutnumberWorkers) {
  // 2 workers, 4 shards, 8 Gbit/s = 1e9 B/s, 100 us, k = 1. Up 1e6 B per worker:
  // shard port 2e6/4 = 5e5 < worker port 1e6 -> T_up = 100e-6 + 1e6/1e9 = 1.1e-3 s.
  // Down 0 B: T_down = latency = 1e-4 s.
  const auto t = modeled_step_time(parse_link("custom:bw=8gbit,lat=100us"),
                                   uniform_traffic(2, 4, {1e6, 0, 0}, {0, 0, 0}));
  EXPECT_NEAR(t.up_s, 1.1e-3, 1e-15);
  EXPECT_NEAR(t.down_s, 1e-4, 1e-15);
  EXPECT_FALSE(t.up_shard_bound);
}

TEST(LinkModel, CollectiveRingIsFullDuplexPerWorkerPort) {
  // Ring allreduce of 4 workers, 8 Gbit/s = 1e9 B/s, 100 us, k = 1, 2(R-1) = 6 rounds.
  // Each worker sends 1.5e6 B and receives 1.5e6 B at once: the port time is
  // 1.5e6 / 1e9 = 1.5e-3 s (not 3e-3: full duplex), plus 6 * 100e-6 = 6e-4 s of latency.
  StepTraffic t = uniform_traffic(4, 0, {1.5e6, 0, 0}, {1.5e6, 0, 0});
  t.collective_rounds = 6;
  const auto c = modeled_step_time(parse_link("custom:bw=8gbit,lat=100us"), t);
  EXPECT_NEAR(c.total_s, 2.1e-3, 1e-12);
  EXPECT_NEAR(c.up_s, c.total_s, 1e-15);
  EXPECT_EQ(c.down_s, 0.0);
  // The slowest port decides: one worker receiving 3e6 B makes the step 3.6e-3 s.
  t.down[2] = {3e6, 0, 0};
  EXPECT_NEAR(modeled_step_time(parse_link("custom:bw=8gbit,lat=100us"), t).total_s, 3.6e-3, 1e-12);
}

TEST(LinkModel, PcieCarriesPayloadOnly) {
  // Framing and TCP/IP bytes do not cross PCIe: 1e6 payload only, 1 worker, 1 shard.
  // T_up = 1e-6 + 1 093 750 / 15 753 846 153.85 = 1e-6 + 6.94274902e-5 = 7.04274902e-5 s.
  const auto t = modeled_step_time(parse_link("pcie3"), uniform_traffic(1, 1, {1e6, 5e5, 5e5}, {0, 0, 0}));
  EXPECT_NEAR(t.up_s, 7.04274902e-5, 1e-13);
}

TEST(LinkModel, UnequalShardShares) {
  // 3 workers x 1e6 B up, shard shares {0.75, 0.25}, 1 GB/s, no latency:
  // shard 0 port 3e6 * 0.75 = 2.25e6 B -> T_up = 2.25e-3 s.
  StepTraffic t = uniform_traffic(3, 2, {1e6, 0, 0}, {0, 0, 0});
  t.shard_fraction = {0.75, 0.25};
  const auto time = modeled_step_time(parse_link("custom:bw=1GB,lat=0"), t);
  EXPECT_NEAR(time.up_s, 2.25e-3, 1e-15);
  t.shard_fraction = {0.75, 0.5};
  EXPECT_THROW(modeled_step_time(parse_link("eth1g"), t), LinkModelError);
}

TEST(LinkModel, InconsistentTrafficIsTypedError) {
  StepTraffic t;
  EXPECT_THROW(modeled_step_time(parse_link("eth1g"), t), LinkModelError);
  t = uniform_traffic(2, 1, {1, 0, 0}, {1, 0, 0});
  t.down.pop_back();
  EXPECT_THROW(modeled_step_time(parse_link("eth1g"), t), LinkModelError);
  t = uniform_traffic(2, 0, {1, 0, 0}, {1, 0, 0});
  EXPECT_THROW(modeled_step_time(parse_link("eth1g"), t), LinkModelError);
}

TEST(LinkModel, TimelineAndTimeToAccuracy) {
  // 1 worker, 1 shard, 1 GB/s, 1 ms latency, k = 1; 1e6 B up + 1e6 B down per step:
  // T_step = (1e-3 + 1e-3) * 2 = 4e-3 s.
  const LinkProfile link = parse_link("custom:bw=1GB,lat=1ms");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<RunSegment> segs(3);
  for (auto& s : segs) {
    s.steps = 10;
    s.compute_s = 0.5;
    s.measured_comm_s = 0.1;
    s.mean_step_traffic = uniform_traffic(1, 1, {1e6, 0, 0}, {1e6, 0, 0});
  }
  segs[0].test_accuracy = 0.5;
  segs[1].test_accuracy = nan;
  segs[2].test_accuracy = 0.8;
  // Each segment: 0.5 + 10 * 4e-3 = 0.54 s -> 0.54, 1.08, 1.62.
  const auto modeled = modeled_timeline(link, segs);
  ASSERT_EQ(modeled.size(), 3u);
  EXPECT_NEAR(modeled[0], 0.54, 1e-12);
  EXPECT_NEAR(modeled[2], 1.62, 1e-12);
  const auto measured = measured_timeline(segs);
  EXPECT_NEAR(measured[2], 1.8, 1e-12);  // 3 * (0.5 + 0.1)
  EXPECT_NEAR(*time_to_accuracy(segs, modeled, 0.5), 0.54, 1e-12);
  EXPECT_NEAR(*time_to_accuracy(segs, modeled, 0.7), 1.62, 1e-12);  // NaN segment skipped
  EXPECT_FALSE(time_to_accuracy(segs, modeled, 0.9).has_value());
  EXPECT_THROW(time_to_accuracy(segs, {1.0}, 0.5), LinkModelError);
}

TEST(LinkModel, WireBytesBetweenCounters) {
  comm::DirectionCounters a, b;
  a.payload_bytes = 100;
  a.framing_bytes = 10;
  a.tcpip_bytes = 5;
  b.payload_bytes = 1100;
  b.framing_bytes = 30;
  b.tcpip_bytes = 85;
  const WireBytes w = wire_bytes_between(a, b);
  EXPECT_DOUBLE_EQ(w.payload_bytes, 1000);
  EXPECT_DOUBLE_EQ(w.framing_bytes, 20);
  EXPECT_DOUBLE_EQ(w.tcpip_bytes, 80);
  EXPECT_DOUBLE_EQ(w.on(parse_link("eth1g")), 1100);
  EXPECT_DOUBLE_EQ(w.on(parse_link("nvlink")), 1000);
}

TEST(LinkModel, Formatting) {
  EXPECT_EQ(format_bandwidth(1.25e9), "10 Gbit/s");
  EXPECT_EQ(format_seconds(0.0042), "4.20 ms");
  EXPECT_EQ(format_seconds(90), "1.5 min");
}

}  // namespace
}  // namespace gradzip::experiments
