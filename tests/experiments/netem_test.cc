// The netem harness: namespaces and links are built, shaped, counted and always torn
// down (normal exit, failed build, SIGINT, stale leftovers). Needs root and iproute2;
// skips with the reason otherwise.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "experiments/netem.h"

namespace gradzip::experiments {
namespace {

bool netns_exists(const std::string& name) {
  struct stat st {};
  return ::stat(("/run/netns/" + name).c_str(), &st) == 0;
}

#define SKIP_WITHOUT_NETEM()                                   \
  do {                                                         \
    const std::string reason = netem_unavailable_reason();     \
    if (!reason.empty()) GTEST_SKIP() << "netem: " << reason;  \
  } while (0)

// A plain TCP sink: accepts one connection on addr:port, reads until EOF, returns 0 if
// exactly `expect` bytes arrived. Bounded: SO_RCVTIMEO 20 s.
int tcp_sink(const std::string& addr, int port, std::size_t expect) {
  const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
  if (bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(ls, 1) != 0) return 2;
  timeval tv{20, 0};
  setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const int c = accept(ls, nullptr, nullptr);
  if (c < 0) return 3;
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::vector<char> buf(1 << 16);
  std::size_t got = 0;
  ssize_t r;
  while ((r = ::read(c, buf.data(), buf.size())) > 0) got += static_cast<std::size_t>(r);
  ::close(c);
  ::close(ls);
  return got == expect ? 0 : 4;
}

// Connects to addr:port (retrying for up to 10 s while the sink starts) and writes n bytes.
int tcp_source(const std::string& addr, int port, std::size_t n) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
  int s = -1;
  for (int attempt = 0; attempt < 200; ++attempt) {
    s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) break;
    ::close(s);
    s = -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (s < 0) return 5;
  std::vector<char> buf(1 << 16, 'x');
  std::size_t sent = 0;
  while (sent < n) {
    const ssize_t w = ::write(s, buf.data(), std::min(buf.size(), n - sent));
    if (w <= 0) return 6;
    sent += static_cast<std::size_t>(w);
  }
  ::close(s);
  return 0;
}

TEST(Netem, BuildCountShapeTeardown) {
  SKIP_WITHOUT_NETEM();
  std::string id;
  {
    NetemOptions opt;
    opt.num_hosts = 3;
    opt.shaping.rate_bit_per_s = 40e6;  // 5 MB/s per direction per host
    NetemCluster cluster(opt);
    id = cluster.id();
    ASSERT_TRUE(netns_exists(cluster.netns(0)));
    ASSERT_TRUE(netns_exists(id + "-br"));
    EXPECT_EQ(cluster.address(2), "10.77.0.3");

    const std::size_t n = 4'000'000;
    const auto before0 = cluster.counters(0);
    const auto before1 = cluster.counters(1);
    auto sink = NetnsProcess::run(cluster.netns(1), [&] { return tcp_sink(cluster.address(1), 7000, n); });
    const auto t0 = std::chrono::steady_clock::now();
    auto source = NetnsProcess::run(cluster.netns(0), [&] { return tcp_source(cluster.address(1), 7000, n); });
    EXPECT_EQ(source.wait(60), 0);
    EXPECT_EQ(sink.wait(60), 0);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto after0 = cluster.counters(0);
    const auto after1 = cluster.counters(1);

    // Shaping is on: the bytes cannot pass faster than the rate allows after the
    // initial bucket (burst 32 KiB): t >= (n - burst) / rate.
    EXPECT_GE(seconds, (n - 32768) / 5e6) << "tbf did not limit the rate";
    // Every payload byte crossed host 0's port, plus one TCP/IP/Ethernet header per
    // MSS-sized segment (gso disabled): at most ~5% more.
    const double tx = static_cast<double>(after0.tx_bytes - before0.tx_bytes);
    EXPECT_GE(tx, n);
    EXPECT_LE(tx, n * 1.06);
    // What host 0 sent is what host 1 received (bridge forwards, no loss configured).
    const double rx = static_cast<double>(after1.rx_bytes - before1.rx_bytes);
    EXPECT_NEAR(rx, tx, tx * 0.001 + 200);
  }
  EXPECT_FALSE(netns_exists(id + "-br"));
  EXPECT_FALSE(netns_exists(id + "-h0"));
  EXPECT_FALSE(netns_exists(id + "-h2"));
}

TEST(Netem, BadOptionsAreTypedErrorsAndLeaveNothing) {
  SKIP_WITHOUT_NETEM();
  NetemOptions opt;
  opt.num_hosts = 0;
  EXPECT_THROW(NetemCluster{opt}, NetemError);
  opt.num_hosts = 2;
  opt.shaping.loss_fraction = 1.5;
  EXPECT_THROW(NetemCluster{opt}, NetemError);
  // A build that fails half-way (an address tc/ip rejects) removes what it created.
  opt.shaping.loss_fraction = 0;
  opt.subnet_prefix = "10.77.not-an-address";
  try {
    NetemCluster cluster(opt);
    FAIL() << "build with a bad subnet should throw";
  } catch (const NetemError& e) {
    EXPECT_NE(std::string(e.what()).find("addr"), std::string::npos) << e.what();
  }
  // No namespace of this process is left ("gz<base-36 pid>-...").
  std::string self_prefix;
  for (unsigned long v = static_cast<unsigned long>(getpid()); v; v /= 36) {
    self_prefix.insert(self_prefix.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36]);
  }
  self_prefix = "gz" + self_prefix + "-";
  if (DIR* d = opendir("/run/netns")) {
    while (dirent* e = readdir(d)) {
      EXPECT_NE(std::string(e->d_name).rfind(self_prefix, 0), 0u) << "left behind: " << e->d_name;
    }
    closedir(d);
  }
}

TEST(Netem, SigintTearsDown) {
  SKIP_WITHOUT_NETEM();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    try {
      NetemOptions opt;
      opt.num_hosts = 2;
      NetemCluster cluster(opt);
      const std::string id = cluster.id() + "\n";
      (void)!::write(fds[1], id.data(), id.size());
      ::close(fds[1]);
      for (int i = 0; i < 600; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } catch (...) {
    }
    _exit(0);
  }
  ::close(fds[1]);
  char buf[128] = {};
  std::size_t got = 0;
  ssize_t r;
  while (got < sizeof buf - 1 && (r = ::read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) {
    got += static_cast<std::size_t>(r);
    if (std::memchr(buf, '\n', got)) break;
  }
  ::close(fds[0]);
  std::string id(buf, got);
  ASSERT_FALSE(id.empty()) << "child did not build a cluster";
  id.pop_back();
  ASSERT_TRUE(netns_exists(id + "-br"));
  ::kill(child, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) << "status " << status;
  EXPECT_FALSE(netns_exists(id + "-br"));
  EXPECT_FALSE(netns_exists(id + "-h0"));
  EXPECT_FALSE(netns_exists(id + "-h1"));
}

TEST(Netem, StaleNamespacesOfDeadOwnersAreRemoved) {
  SKIP_WITHOUT_NETEM();
  // A child builds a cluster and is killed with SIGKILL: no handler runs.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    NetemOptions opt;
    opt.num_hosts = 1;
    try {
      NetemCluster cluster(opt);
      const std::string id = cluster.id() + "\n";
      (void)!::write(fds[1], id.data(), id.size());
      for (int i = 0; i < 600; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } catch (...) {
    }
    _exit(0);
  }
  ::close(fds[1]);
  char buf[128] = {};
  const ssize_t r = ::read(fds[0], buf, sizeof buf - 1);
  ::close(fds[0]);
  ASSERT_GT(r, 1);
  std::string id(buf, static_cast<std::size_t>(r));
  id.pop_back();
  ::kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_TRUE(netns_exists(id + "-br")) << "SIGKILL should leave the namespaces behind";
  EXPECT_GE(remove_stale_netem(), 2u);
  EXPECT_FALSE(netns_exists(id + "-br"));
  EXPECT_FALSE(netns_exists(id + "-h0"));
}

TEST(Netem, DelayNeedsNetemModule) {
  SKIP_WITHOUT_NETEM();
  NetemOptions opt;
  opt.num_hosts = 1;
  opt.shaping.delay_s = 0.001;
  const std::string reason = netem_delay_unavailable_reason();
  if (reason.empty()) {
    NetemCluster cluster(opt);  // builds with the netem child qdisc
    EXPECT_TRUE(netns_exists(cluster.netns(0)));
  } else {
    // Without sch_netem the request is refused with a message that says why.
    try {
      NetemCluster cluster(opt);
      FAIL() << "delay without sch_netem should throw";
    } catch (const NetemError& e) {
      EXPECT_NE(std::string(e.what()).find("netem"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace gradzip::experiments
