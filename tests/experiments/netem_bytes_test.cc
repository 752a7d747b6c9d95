// Model vs reality on emulated links: one ZeroMQ shard process (gradzip-ps) and two
// least-squares worker processes (lsq_worker, tests/comm), each in its own network
// namespace behind a veth shaped to 400 Mbit/s with tc tbf.
//   bytes: what each process counted (payload + ZeroMQ framing + TCP/IP estimate,
//          comm/accounting.h) must agree with what crossed its veth
//          (/sys/class/net/eth0/statistics/{tx,rx}_bytes) within 5%;
//   time:  the workers' wall time cannot beat the link model's communication time
//          (experiments/link_model.h, same rate, incast at the shard); the ratio is recorded.
// And the collectives' byte formulas (comm/collective.h): four lsq_worker ranks, each in
// its own namespace, allreduce over Gloo; the payload and framing each counted from the
// ring formula must agree within 2% with its veth bytes less 66 header bytes per packet.
// Needs root and iproute2: skips with the reason otherwise.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "experiments/link_model.h"
#include "experiments/netem.h"

namespace gradzip::experiments {
namespace {
namespace fs = std::filesystem;

const std::string kBin = std::string(GRADZIP_BINARY_DIR) + "/tests/comm/";

struct Counted {
  double up = 0;    ///< payload + framing + tcpip, worker -> shard
  double down = 0;  ///< shard -> worker
  double app = 0;   ///< payload + framing, both directions (no TCP/IP estimate)
  bool ok = false;
};

// Parses lsq_worker's last line: "worker R: steps a..b loss L up P+F+T B down P+F+T B".
Counted parse_worker_log(const fs::path& log) {
  std::ifstream f(log);
  std::string line, last;
  while (std::getline(f, line)) {
    if (line.rfind("worker ", 0) == 0) last = line;
  }
  Counted c;
  unsigned long long up[3], down[3];
  const auto pos = last.find(" up ");
  if (pos == std::string::npos) return c;
  if (std::sscanf(last.c_str() + pos, " up %llu+%llu+%llu B down %llu+%llu+%llu B", &up[0], &up[1], &up[2],
                  &down[0], &down[1], &down[2]) != 6) {
    return c;
  }
  c.up = static_cast<double>(up[0] + up[1] + up[2]);
  c.down = static_cast<double>(down[0] + down[1] + down[2]);
  c.app = static_cast<double>(up[0] + up[1] + down[0] + down[1]);
  c.ok = true;
  return c;
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p);
  std::ostringstream os;
  if (f) os << f.rdbuf();
  return os.str();
}

TEST(NetemModelCheck, CountedBytesMatchVethCountersAndTimeRespectsModel) {
  const std::string reason = netem_unavailable_reason();
  if (!reason.empty()) GTEST_SKIP() << "netem: " << reason;
  ASSERT_TRUE(fs::exists(kBin + "gradzip-ps") && fs::exists(kBin + "lsq_worker")) << "helper binaries not built";

  const fs::path dir = fs::temp_directory_path() / ("gz-netem-bytes-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  constexpr int kWorkers = 2;
  constexpr int kSteps = 8;
  constexpr double kRateBits = 400e6;
  const std::string sizes = "200000,62144";  // 262144 fp32 = 1 MiB per push and per pull

  NetemOptions opt;
  opt.num_hosts = 1 + kWorkers;
  opt.shaping.rate_bit_per_s = kRateBits;
  NetemCluster cluster(opt);
  const std::string endpoint = "tcp://" + cluster.address(0) + ":5555";
  std::vector<InterfaceCounters> before;
  for (std::uint32_t h = 0; h < cluster.size(); ++h) before.push_back(cluster.counters(h));

  auto shard = NetnsProcess::exec(cluster.netns(0),
                                  {kBin + "gradzip-ps", "--bind=" + endpoint, "--shards=1", "--shard=0",
                                   "--workers=" + std::to_string(kWorkers), "--sizes=" + sizes, "--idle-exit=30",
                                   "--endpoint-file=" + (dir / "shard.ep").string()},
                                  (dir / "shard.log").string());
  for (int i = 0; i < 200 && !fs::exists(dir / "shard.ep"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(dir / "shard.ep")) << "shard did not start: " << read_all(dir / "shard.log");

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<NetnsProcess> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(NetnsProcess::exec(
        cluster.netns(static_cast<std::uint32_t>(1 + w)),
        {kBin + "lsq_worker", "--rank=" + std::to_string(w), "--workers=" + std::to_string(kWorkers),
         "--endpoints=" + endpoint, "--steps=" + std::to_string(kSteps), "--sizes=" + sizes, "--rows=4"},
        (dir / ("worker" + std::to_string(w) + ".log")).string()));
  }
  for (int w = 0; w < kWorkers; ++w) {
    ASSERT_EQ(workers[static_cast<std::size_t>(w)].wait(120), 0)
        << read_all(dir / ("worker" + std::to_string(w) + ".log"));
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(shard.wait(60), 0) << read_all(dir / "shard.log");

  // Bytes: each worker's count against its own port; the shard's port against the sum.
  double counted_all = 0;
  StepTraffic traffic;
  traffic.num_shards = 1;
  for (int w = 0; w < kWorkers; ++w) {
    const Counted c = parse_worker_log(dir / ("worker" + std::to_string(w) + ".log"));
    ASSERT_TRUE(c.ok) << read_all(dir / ("worker" + std::to_string(w) + ".log"));
    const auto host = static_cast<std::uint32_t>(1 + w);
    const InterfaceCounters after = cluster.counters(host);
    const double veth = static_cast<double>((after.tx_bytes - before[host].tx_bytes) +
                                            (after.rx_bytes - before[host].rx_bytes));
    const double counted = c.up + c.down;
    counted_all += counted;
    EXPECT_NEAR(counted, veth, 0.05 * veth) << "worker " << w << ": counted " << counted << " B, veth " << veth << " B";
    ::testing::Test::RecordProperty("worker" + std::to_string(w) + "_counted_over_veth",
                                    std::to_string(counted / veth));
    traffic.up.push_back({c.up / kSteps, 0, 0});
    traffic.down.push_back({c.down / kSteps, 0, 0});
  }
  const InterfaceCounters shard_after = cluster.counters(0);
  const double shard_veth = static_cast<double>((shard_after.tx_bytes - before[0].tx_bytes) +
                                                (shard_after.rx_bytes - before[0].rx_bytes));
  EXPECT_NEAR(counted_all, shard_veth, 0.05 * shard_veth);

  // Time: the shard's port carries both workers' bytes (incast), so the run needs at
  // least kSteps * T_step on this link; tbf's 32 KiB+ burst allowance is negligible.
  const LinkProfile link = parse_link("custom:bw=400mbit,lat=0");
  const double modeled = kSteps * modeled_step_time(link, traffic).total_s;
  ::testing::Test::RecordProperty("measured_over_modeled_time", std::to_string(elapsed / modeled));
  std::printf("netem model check: measured %.3f s vs modeled comm %.3f s (ratio %.2f); counted/veth bytes at the "
              "shard %.4f\n",
              elapsed, modeled, elapsed / modeled, counted_all / shard_veth);
  EXPECT_GE(elapsed, 0.9 * modeled) << "faster than the shaped link allows: shaping or model broken";
  fs::remove_all(dir);
}

TEST(NetemModelCheck, CollectiveRingFormulaMatchesVethCounters) {
  const std::string reason = netem_unavailable_reason();
  if (!reason.empty()) GTEST_SKIP() << "netem: " << reason;
  ASSERT_TRUE(fs::exists(kBin + "lsq_worker")) << "helper binary not built";
  const fs::path dir = fs::temp_directory_path() / ("gz-netem-coll-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  constexpr int kRanks = 4;
  constexpr int kSteps = 6;
  // One bucket of 3655360 fp32 (13.9 MiB): Gloo's ring cuts it into 16 segments of
  // ceil(S/16) bytes (4 per rank; the formula's other cases are unit-tested).
  const std::string sizes = "400000,255360,3000000";
  NetemOptions opt;
  opt.num_hosts = kRanks;
  opt.shaping.rate_bit_per_s = 2e9;
  NetemCluster cluster(opt);
  std::vector<InterfaceCounters> before;
  for (std::uint32_t h = 0; h < cluster.size(); ++h) before.push_back(cluster.counters(h));
  std::vector<NetnsProcess> ranks;
  for (int r = 0; r < kRanks; ++r) {
    const auto host = static_cast<std::uint32_t>(r);
    ranks.push_back(NetnsProcess::exec(
        cluster.netns(host),
        {kBin + "lsq_worker", "--aggregation=allreduce", "--rank=" + std::to_string(r),
         "--workers=" + std::to_string(kRanks), "--store=" + (dir / "store").string(), "--host=" + cluster.address(host),
         "--steps=" + std::to_string(kSteps), "--sizes=" + sizes, "--rows=4", "--bucket-bytes=16777216"},
        (dir / ("rank" + std::to_string(r) + ".log")).string()));
  }
  for (int r = 0; r < kRanks; ++r) {
    ASSERT_EQ(ranks[static_cast<std::size_t>(r)].wait(120), 0) << read_all(dir / ("rank" + std::to_string(r) + ".log"));
  }
  // The application bytes of the formula against the veth's bytes less its per-packet
  // headers (Ethernet 14 + IPv4 20 + TCP with timestamps 32 = 66 B; with GSO a packet on a
  // veth can carry up to 64 KiB, so the packet count is read, not modeled).
  constexpr double kHeaderBytesPerPacket = 66;
  for (int r = 0; r < kRanks; ++r) {
    const Counted c = parse_worker_log(dir / ("rank" + std::to_string(r) + ".log"));
    ASSERT_TRUE(c.ok) << read_all(dir / ("rank" + std::to_string(r) + ".log"));
    const auto host = static_cast<std::uint32_t>(r);
    const InterfaceCounters after = cluster.counters(host);
    const double veth = static_cast<double>((after.tx_bytes - before[host].tx_bytes) +
                                            (after.rx_bytes - before[host].rx_bytes));
    const double packets = static_cast<double>((after.tx_packets - before[host].tx_packets) +
                                               (after.rx_packets - before[host].rx_packets));
    const double veth_app = veth - kHeaderBytesPerPacket * packets;
    std::printf("rank %d: formula %.0f B, veth %.0f B in %.0f packets (%.0f B without headers), ratio %.4f; with "
                "the TCP/IP estimate %.4f\n",
                r, c.app, veth, packets, veth_app, c.app / veth_app, (c.up + c.down) / veth);
    ::testing::Test::RecordProperty("rank" + std::to_string(r) + "_formula_over_veth", std::to_string(c.app / veth_app));
    EXPECT_NEAR(c.app, veth_app, 0.02 * veth_app) << "rank " << r;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gradzip::experiments
