// ZeroMQ parameter server end to end: shard processes (gradzip-ps) and least-squares
// worker processes (lsq_worker) on loopback TCP, ports chosen by the OS; plus an
// in-process ShardServer fed hostile input. Every wait is bounded in time. CURVE and
// worker binding over TCP: zmq_security_test.cc.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "comm/cluster.h"
#include "comm/launch.h"
#include "comm/optimizer.h"
#include "tests/comm/zmq_helpers.h"

namespace gradzip::comm {
namespace {

using namespace testing;  // NOLINT: the helpers of these tests

TEST(ZmqProcesses, SyncIdentityFourWorkersTwoShardsEqualsReference) {
  TempDir dir;
  const std::uint64_t steps = 6;
  Shards shards(dir, 2,
                {"--workers=4", "--bucket-bytes=160", "--lr=0.3", "--momentum=0.9", "--nesterov", "--wd=0.001"});
  std::vector<ChildProcess> workers;
  for (std::uint32_t w = 0; w < 4; ++w) {
    workers.push_back(start_worker(dir, w, shards.joined(), {"--steps=6", "--bucket-bytes=160"}));
  }
  for (auto& w : workers) {
    ASSERT_TRUE(w.wait_for(60s)) << w.name() << " hung";
    EXPECT_EQ(w.exit_code(), 0) << log_text(dir / (w.name() + ".log"));
  }
  for (auto& s : shards.procs) {
    ASSERT_TRUE(s.wait_for(20s)) << s.name() << " did not exit after every worker shut down";
    EXPECT_EQ(s.exit_code(), 0);
  }
  OptimizerOptions o;
  o.lr = 0.3;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 0.001;
  const std::vector<float> x = sync_reference(lsq_signature(), 4, steps, o);
  for (std::uint32_t w = 0; w < 4; ++w) {
    EXPECT_LE(rel_diff(read_floats(dir / ("w" + std::to_string(w) + ".bin")), x), 1e-6) << "worker " << w;
  }
  // Byte accounting: shards saw 4 workers x 6 steps of identity pushes.
  for (std::uint32_t s = 0; s < 2; ++s) {
    const auto st = last_stats(dir / ("shard" + std::to_string(s) + ".stats"));
    ASSERT_FALSE(st.is_null());
    EXPECT_EQ(st["version"], steps);
    EXPECT_EQ(st["refused"], 0);
    EXPECT_GT(st["total"]["up"]["payload_bytes"].get<std::uint64_t>(), 4 * steps * 4 * 50);
    EXPECT_GT(st["total"]["up"]["tcpip_bytes"].get<std::uint64_t>(), 0u);
  }
}

// Real processes: two lsq_worker processes whose requests and replies are dropped,
// duplicated, reordered across the two shards and delayed; the shard processes end
// with exactly the parameters of the fault-free single-process reference.
TEST(ZmqProcesses, DroppedDuplicatedReorderedDelayedRequestsAndRepliesOfWorkerProcessesGiveTheFaultFreeParams) {
  TempDir dir;
  const std::uint64_t steps = 8;
  Shards shards(dir, 2, {"--workers=2", "--bucket-bytes=160"});
  std::vector<ChildProcess> workers;
  for (std::uint32_t w = 0; w < 2; ++w) {
    workers.push_back(start_worker(dir, w, shards.joined(),
                                   {"--steps=8", "--bucket-bytes=160", "--request-timeout=0.05",
                                    "--fault-drop=0.1", "--fault-dup=0.1", "--fault-reorder=0.2", "--fault-delay=0.1",
                                    "--fault-delay-s=0.08", "--fault-seed=" + std::to_string(w + 1),
                                    "--faults-out=" + dir / ("faults" + std::to_string(w) + ".json")}));
  }
  for (auto& w : workers) {
    ASSERT_TRUE(w.wait_for(60s)) << w.name() << " hung";
    EXPECT_EQ(w.exit_code(), 0) << log_text(dir / (w.name() + ".log"));
  }
  for (auto& s : shards.procs) ASSERT_TRUE(s.wait_for(20s));
  const std::vector<float> x = sync_reference(lsq_signature(), 2, steps, OptimizerOptions{});
  for (std::uint32_t w = 0; w < 2; ++w) EXPECT_EQ(read_floats(dir / ("w" + std::to_string(w) + ".bin")), x) << w;
  for (const char* direction : {"requests", "replies"}) {
    for (const char* kind : {"dropped", "duplicated", "reordered", "delayed"}) {
      std::uint64_t n = 0;
      for (std::uint32_t w = 0; w < 2; ++w) {
        std::ifstream f(dir / ("faults" + std::to_string(w) + ".json"));
        n += nlohmann::json::parse(f)[direction][kind].get<std::uint64_t>();
      }
      EXPECT_GT(n, 0u) << direction << " " << kind;
    }
  }
  std::uint64_t duplicates = 0;
  for (std::uint32_t s = 0; s < 2; ++s) {
    const auto st = last_stats(dir / ("shard" + std::to_string(s) + ".stats"));
    EXPECT_EQ(st["version"], steps);
    duplicates += st["duplicates"].get<std::uint64_t>();
  }
  EXPECT_GT(duplicates, 0u) << "duplicated and retried pushes reach the shards and are applied once";
}

TEST(ZmqProcesses, KillDashNineOfAWorkerMidRunAndItsRestartFinishTheRun) {
  TempDir dir;
  Shards shards(dir, 2, {"--workers=3", "--bucket-bytes=160", "--worker-timeout=1.0", "--lr=2"});
  const std::vector<std::string> flags = {"--steps=25", "--bucket-bytes=160", "--step-sleep-ms=20",
                                          "--request-timeout=0.5"};
  std::vector<ChildProcess> workers;
  for (std::uint32_t w = 0; w < 3; ++w) workers.push_back(start_worker(dir, w, shards.joined(), flags));
  kill_after(workers[2], 300ms);
  EXPECT_EQ(workers[2].exit_code(), 128 + SIGKILL);
  std::this_thread::sleep_for(1500ms);  // the shards declare it dead and go on
  ChildProcess again = start_worker(dir, 2, shards.joined(), flags);
  for (auto* w : {&workers[0], &workers[1], &again}) {
    ASSERT_TRUE(w->wait_for(60s)) << w->name() << " hung";
    EXPECT_EQ(w->exit_code(), 0) << log_text(dir / (w->name() + ".log"));
  }
  for (auto& s : shards.procs) ASSERT_TRUE(s.wait_for(20s));
  const auto st = last_stats(dir / "shard0.stats");
  EXPECT_EQ(st["version"], 25);
  EXPECT_GE(st["workers_declared_dead"].get<int>(), 1);
  EXPECT_GE(st["timeout_completions"].get<int>(), 1);
  EXPECT_NE(log_text(dir / "shard0.log").find("rejoined"), std::string::npos);
}

// SSP has no step timeout: without heartbeats the survivors would wait for the killed
// worker's clock until their request timeout. With heartbeats announced, its silence
// declares it dead and the bounded-staleness pulls stop waiting for it.
TEST(ZmqProcesses, KillDashNineOfAnSspWorkerIsDeclaredDeadByHeartbeatsAndTheOthersFinish) {
  TempDir dir;
  Shards shards(dir, 2, {"--workers=3", "--bucket-bytes=160", "--mode=ssp", "--slack=1", "--worker-timeout=0.8"});
  const std::vector<std::string> flags = {"--steps=40", "--bucket-bytes=160", "--step-sleep-ms=20", "--heartbeat=0.1",
                                          "--op-timeout=120"};
  std::vector<ChildProcess> workers;
  for (std::uint32_t w = 0; w < 3; ++w) workers.push_back(start_worker(dir, w, shards.joined(), flags));
  kill_after(workers[2], 300ms);
  for (std::uint32_t w = 0; w < 2; ++w) {
    ASSERT_TRUE(workers[w].wait_for(60s)) << workers[w].name() << " hung";
    EXPECT_EQ(workers[w].exit_code(), 0) << log_text(dir / (workers[w].name() + ".log"));
  }
  // The dead worker never shut down: stop the shards.
  for (auto& s : shards.procs) s.signal(SIGTERM);
  for (auto& s : shards.procs) ASSERT_TRUE(s.wait_for(20s));
  for (std::uint32_t s = 0; s < 2; ++s) {
    const auto st = last_stats(dir / ("shard" + std::to_string(s) + ".stats"));
    EXPECT_EQ(st["workers_declared_dead"], 1) << "shard " << s;
    EXPECT_NE(log_text(dir / ("shard" + std::to_string(s) + ".log")).find("no request or heartbeat"),
              std::string::npos);
  }
}

TEST(ZmqProcesses, KillAndRestoreOfAShardFinishesTheRun) {
  TempDir dir;
  const std::vector<std::string> shard_flags = {"--workers=2", "--bucket-bytes=160", "--checkpoint-dir=" + dir / "ckpt",
                                                "--checkpoint-every=1", "--lr=2"};
  Shards shards(dir, 2, shard_flags);
  const std::vector<std::string> flags = {"--steps=30", "--bucket-bytes=160", "--step-sleep-ms=20",
                                          "--request-timeout=0.3"};
  std::vector<ChildProcess> workers;
  for (std::uint32_t w = 0; w < 2; ++w) workers.push_back(start_worker(dir, w, shards.joined(), flags));
  std::this_thread::sleep_for(400ms);
  shards.procs[1].signal(SIGKILL);
  ASSERT_TRUE(shards.procs[1].wait_for(5s));
  std::this_thread::sleep_for(300ms);
  auto argv = shards.argvs[1];
  argv.push_back("--restore");
  argv.push_back("--bind=" + shards.endpoints[1]);
  fs::remove(dir / "shard1.ep");
  ChildProcess restored("shard1-restored", argv, dir / "shard1-restored.log");
  EXPECT_EQ(wait_endpoint(dir / "shard1.ep", restored), shards.endpoints[1]);
  for (auto& w : workers) {
    ASSERT_TRUE(w.wait_for(60s)) << w.name() << " hung";
    EXPECT_EQ(w.exit_code(), 0) << log_text(dir / (w.name() + ".log"));
  }
  ASSERT_TRUE(restored.wait_for(20s));
  EXPECT_EQ(restored.exit_code(), 0);
  EXPECT_NE(log_text(dir / "shard1-restored.log").find("restored step"), std::string::npos);
  // The restored shard did not know the workers' connections: they said hello again.
  EXPECT_NE(log_text(dir / "worker0.log").find("saying hello again"), std::string::npos);
  EXPECT_EQ(last_stats(dir / "shard1.stats")["version"], 30);
}


TEST(ZmqServer, MalformedBarrageThenAWellBehavedWorkerIsServed) {
  ShardServer server(server_options(1));
  std::thread loop([&] { server.run(); });
  const std::string ep = server.endpoint();
  {
    // Raw ZeroMQ peer: random frames, truncated envelopes, wrong steps, oversized frame.
    zmq::context_t ctx;
    zmq::socket_t junk(ctx, zmq::socket_type::dealer);
    junk.set(zmq::sockopt::linger, 0);
    junk.connect(ep);
    std::mt19937 rng(5);
    for (int i = 0; i < 200; ++i) {
      std::vector<std::uint8_t> bytes(static_cast<std::size_t>(rng() % 120));
      for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
      junk.send(zmq::buffer(bytes), i % 3 == 0 ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
    junk.send(zmq::str_buffer("end"));
    int replies = 0;
    zmq::pollitem_t item{junk.handle(), 0, ZMQ_POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (replies < 100 && std::chrono::steady_clock::now() < deadline) {
      zmq::poll(&item, 1, 100ms);
      zmq::message_t m;
      while (junk.recv(m, zmq::recv_flags::dontwait)) replies += m.more() ? 0 : 1;
    }
    EXPECT_GE(replies, 100) << "every malformed message gets an error reply";
    // Oversized: a frame larger than ZMQ_MAXMSGSIZE makes libzmq drop this connection.
    std::vector<std::uint8_t> huge(8 << 20, 0x55);
    junk.send(zmq::buffer(huge));
    // Not ZMTP at all: raw TCP garbage.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(ep.substr(ep.rfind(':') + 1))));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const char garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\xff\xfe\x00\x01";
    EXPECT_GT(::send(fd, garbage, sizeof(garbage), 0), 0);
    ::close(fd);
    std::this_thread::sleep_for(100ms);
  }
  {
    // A signature mismatch over TCP is refused with the difference.
    auto c = client_options(ep);
    ZmqWorkerTransport bad(c);
    auto sig = lsq_signature({37, 5, 100, 1, 64, 14});
    std::vector<float> x(sig.total_numel());
    try {
      bad.connect(sig, 0, x.data());
      ADD_FAILURE() << "mismatched signature accepted";
    } catch (const CommError& e) {
      EXPECT_EQ(e.kind(), CommError::Kind::kRefused);
      EXPECT_NE(std::string(e.what()).find("shape [14] vs [13]"), std::string::npos) << e.what();
    }
  }
  ZmqWorkerTransport good(client_options(ep));
  train_steps(good, 0, 3);
  good.shutdown();
  loop.join();
  const auto st = server.stats();
  EXPECT_EQ(st.version, 3u);
  EXPECT_GE(st.refused, 100u);
  EXPECT_GE(st.refused_by_reason.at("malformed"), 100u);
  EXPECT_EQ(st.refused_by_reason.at("signature_mismatch"), 1u);
  const auto c = good.counters();
  EXPECT_GT(c.up.payload_bytes, 3u * 4 * 220);
  EXPECT_GT(c.down.payload_bytes, 3u * 4 * 220);
  EXPECT_GT(c.up.framing_bytes, 0u);
}

TEST(Cluster, FileAndLauncherEnvironment) {
  const auto c = parse_cluster_json(R"({"ps": ["127.0.0.1:5000", "h2:6000"], "worker": ["w1:0"]})");
  EXPECT_EQ(c.shard_endpoints()[1], "tcp://h2:6000");
  EXPECT_THROW(parse_cluster_json(R"({"ps": ["nohost"], "worker": []})"), std::runtime_error);
  EXPECT_THROW(parse_cluster_json(R"({"ps": ["h:99999"], "worker": []})"), std::runtime_error);
  EXPECT_THROW(parse_cluster_json(R"({"worker": []})"), std::runtime_error);
  // No shards (workers that aggregate among themselves): parsed; asking for shard
  // endpoints names the file.
  const auto peers = parse_cluster_json(R"({"ps": [], "worker": ["10.0.0.3:0", "[::1]:7"]})", "cluster file c.json");
  EXPECT_EQ(host_of(peers.workers[0]), "10.0.0.3");
  EXPECT_EQ(host_of(peers.workers[1]), "::1");
  try {
    peers.shard_endpoints();
    ADD_FAILURE() << "no shards, no endpoints";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cluster file c.json"), std::string::npos) << e.what();
  }
  ::setenv("OMPI_COMM_WORLD_RANK", "3", 1);
  ::setenv("OMPI_COMM_WORLD_SIZE", "6", 1);
  ::setenv("SLURM_PROCID", "x", 1);
  ::setenv("SLURM_NTASKS", "6", 1);
  const auto r = rank_from_environment();
  EXPECT_TRUE(r.found);
  EXPECT_EQ(r.source, "openmpi");
  EXPECT_EQ(r.rank, 3u);
  const Role role = role_of_rank(r.rank, 2);
  EXPECT_FALSE(role.is_shard);
  EXPECT_EQ(role.index, 1u);
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"}) ::unsetenv(v);
}

TEST(Launch, AFailingWorkerTearsEverythingDownAndIsNamed) {
  LaunchOptions o;
  o.shard_commands = {{"sleep", "30"}};
  o.worker_commands = {{"true"}, {"sh", "-c", "exit 3"}};
  o.timeout_s = 20;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(run_launch(o), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s) << "the sleeping shard must have been killed";
  LaunchOptions ok;
  ok.worker_commands = {{"true"}, {"true"}};
  EXPECT_EQ(run_launch(ok), 0);
}

}  // namespace
}  // namespace gradzip::comm
