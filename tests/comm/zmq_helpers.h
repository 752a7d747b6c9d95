// Helpers of the ZeroMQ end-to-end tests: temporary run directories, shard and worker
// processes (gradzip-ps, lsq_worker), their logs and stats, and in-process ShardServer
// settings. Every wait is bounded in time.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/launch.h"
#include "comm/zmq_client.h"
#include "comm/zmq_server.h"
#include "tests/comm/lsq.h"
#include "tests/comm/temp_dir.h"

namespace gradzip::comm::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline const std::string kBin = std::string(GRADZIP_BINARY_DIR) + "/tests/comm/";

using testing::TempDir;

inline std::string wait_endpoint(const std::string& file, ChildProcess& proc,
                                 std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream f(file);
    std::string ep;
    if (f >> ep) return ep;
    if (!proc.running()) break;
    std::this_thread::sleep_for(10ms);
  }
  return "";
}

inline std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string bytes = ss.str();
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), 4 * v.size());
  return v;
}

inline nlohmann::json last_stats(const std::string& path) {
  std::ifstream f(path);
  std::string line, last;
  while (std::getline(f, line)) {
    if (!line.empty()) last = line;
  }
  return last.empty() ? nlohmann::json() : nlohmann::json::parse(last);
}

// A set of shard processes with common flags.
struct Shards {
  std::vector<ChildProcess> procs;
  std::vector<std::string> endpoints;
  std::vector<std::vector<std::string>> argvs;
  Shards(const TempDir& dir, std::uint32_t m, const std::vector<std::string>& flags) {
    for (std::uint32_t s = 0; s < m; ++s) {
      std::vector<std::string> argv = {kBin + "gradzip-ps",
                                       "--shard=" + std::to_string(s),
                                       "--shards=" + std::to_string(m),
                                       "--endpoint-file=" + dir / ("shard" + std::to_string(s) + ".ep"),
                                       "--stats-file=" + dir / ("shard" + std::to_string(s) + ".stats"),
                                       "--stats-interval=0.2",
                                       "--idle-exit=60"};
      argv.insert(argv.end(), flags.begin(), flags.end());
      argvs.push_back(argv);
      procs.emplace_back("shard" + std::to_string(s), argv, dir / ("shard" + std::to_string(s) + ".log"));
      endpoints.push_back(wait_endpoint(dir / ("shard" + std::to_string(s) + ".ep"), procs.back()));
      EXPECT_FALSE(endpoints.back().empty()) << "shard " << s << " did not start";
    }
  }
  std::string joined() const {
    std::string s;
    for (const auto& e : endpoints) s += (s.empty() ? "" : ",") + e;
    return s;
  }
};

inline ChildProcess start_worker(const TempDir& dir, std::uint32_t rank, const std::string& endpoints,
                          const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {kBin + "lsq_worker", "--rank=" + std::to_string(rank), "--endpoints=" + endpoints,
                                   "--out=" + dir / ("w" + std::to_string(rank) + ".bin")};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return ChildProcess("worker" + std::to_string(rank), argv, dir / ("worker" + std::to_string(rank) + ".log"));
}

inline std::string log_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 1e30;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// Kills `worker` with SIGKILL once it has run for `after`, and reaps it.
inline void kill_after(ChildProcess& worker, std::chrono::milliseconds after) {
  std::this_thread::sleep_for(after);
  ASSERT_TRUE(worker.running()) << worker.name() << " ended before it was killed";
  worker.signal(SIGKILL);
  ASSERT_TRUE(worker.wait_for(5s));
}

inline ShardServerOptions server_options(std::uint32_t workers) {
  ShardServerOptions o;
  o.signature = lsq_signature();
  o.placement.bucket_bytes = 160;
  o.shard.num_workers = workers;
  o.shard.step_window = 100;
  o.stats_interval_s = 0.1;
  return o;
}

inline ZmqClientOptions client_options(const std::string& endpoint) {
  ZmqClientOptions c;
  c.shard_endpoints = {endpoint};
  c.client.placement.bucket_bytes = 160;
  c.client.op_timeout_s = 10.0;
  return c;
}

inline void train_steps(ZmqWorkerTransport& t, std::uint32_t rank, std::uint64_t steps) {
  const auto sig = lsq_signature();
  const std::size_t d = sig.total_numel();
  LsqProblem prob(d, 24, rank);
  testing::BucketEncoder enc("identity");
  std::vector<float> x(d, 0.0f), g(d);
  t.connect(sig, rank, x.data());
  for (std::uint64_t step = t.resume_step(); step < steps; ++step) {
    prob.gradient(x.data(), g.data());
    auto msgs = enc.encode(t.layout(), g.data(), step, rank);
    std::vector<Handle> hs;
    for (std::uint32_t b = 0; b < msgs.size(); ++b) hs.push_back(t.push(step, b, msgs[b].data(), msgs[b].size()));
    for (auto h : hs) t.wait(h);
    t.wait(t.pull(step, x.data()));
  }
}

}  // namespace gradzip::comm::testing
