// lsq_worker: a torch-free worker process for the comm integration tests. It computes
// real least-squares gradients (tests/comm/lsq.h), encodes them with quant codecs and
// talks to shard processes through ZmqWorkerTransport.
//   lsq_worker --rank=R --workers=N --endpoints=tcp://..,tcp://.. --steps=S
//              [--sizes=..] [--compressor=identity] [--strategy=greedy] [--bucket-bytes=N]
//              [--rows=24] [--out=params.bin] [--step-sleep-ms=0] [--op-timeout=60]
//              [--heartbeat=S] [--no-rejoin] [--stop-file=F] [--stats-out=F.json]
//              [--fault-drop=P --fault-dup=P --fault-reorder=P --fault-delay=P
//               --fault-delay-s=S --fault-seed=N --faults-out=F.json]
// Fault probabilities apply to requests and to replies alike (comm/faults.h); the
// counts of both directions go to --faults-out. With --stop-file, the worker stops
// after the step written in that file (a soak driver's way to stop every worker at the
// same step); --stats-out gets the steps done and the message counters.
// Exit code 0 after `steps` steps (and params written to --out); 1 on a CommError.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "comm/zmq_client.h"
#include "tests/comm/flags.h"
#include "tests/comm/lsq.h"

int main(int argc, char** argv) {
  using namespace gradzip::comm;
  try {
    testing::Flags f(argc, argv);
    std::vector<std::uint64_t> sizes;
    for (const auto& s : testing::Flags::split(f.str("sizes", "37,5,100,1,64,13"))) sizes.push_back(std::stoull(s));
    ModelSignature sig = testing::lsq_signature(sizes);
    sig.compressor_spec = f.str("compressor", "identity");
    sig.downlink_spec = f.str("downlink", "dense");
    ZmqClientOptions o;
    o.shard_endpoints = testing::Flags::split(f.str("endpoints"));
    o.client.placement.num_shards = static_cast<std::uint32_t>(o.shard_endpoints.size());
    o.client.placement.strategy = parse_placement_strategy(f.str("strategy", "greedy"));
    o.client.placement.bucket_bytes = static_cast<std::uint64_t>(f.num("bucket-bytes", 4 << 20));
    o.client.placement.min_compress_numel = static_cast<std::uint64_t>(f.num("min-compress", 0));
    o.client.request_timeout_s = f.num("request-timeout", 1.0);
    o.client.op_timeout_s = f.num("op-timeout", 60.0);
    o.client.heartbeat_interval_s = f.num("heartbeat", 0.0);
    o.client.rejoin_when_declared_dead = !f.has("no-rejoin");
    FaultSpec faults;
    faults.drop_probability = f.num("fault-drop", 0.0);
    faults.duplicate_probability = f.num("fault-dup", 0.0);
    faults.reorder_probability = f.num("fault-reorder", 0.0);
    faults.delay_probability = f.num("fault-delay", 0.0);
    faults.delay_s = f.num("fault-delay-s", 0.05);
    o.client.faults.requests = faults;
    o.client.faults.replies = faults;
    o.client.faults.seed = static_cast<std::uint64_t>(f.num("fault-seed", 1));
    const auto rank = static_cast<std::uint32_t>(f.num("rank", 0));
    const auto steps = static_cast<std::uint64_t>(f.num("steps", 10));
    const auto rows = static_cast<std::size_t>(f.num("rows", 24));
    const auto sleep_ms = static_cast<int>(f.num("step-sleep-ms", 0));
    ZmqWorkerTransport t(o);
    const std::size_t d = sig.total_numel();
    testing::LsqProblem prob(d, rows, rank);
    testing::BucketEncoder enc(sig.compressor_spec);
    std::vector<float> x = testing::lsq_initial_params(d), g(d);
    t.connect(sig, rank, x.data());
    const std::uint64_t first = t.resume_step();
    double loss = 0.0;
    std::uint64_t last = steps;
    for (std::uint64_t step = first; step < last; ++step) {
      if (f.has("stop-file")) {  // the soak driver names the last step once it wants to stop
        std::ifstream stop(f.str("stop-file"));
        std::uint64_t stop_at = 0;
        if (stop >> stop_at) last = std::min(last, std::max(stop_at, step + 1));
      }
      loss = prob.gradient(x.data(), g.data());
      auto msgs = enc.encode(t.layout(), g.data(), step, rank);
      std::vector<Handle> hs;
      for (std::uint32_t b = 0; b < msgs.size(); ++b) hs.push_back(t.push(step, b, msgs[b].data(), msgs[b].size()));
      for (auto h : hs) t.wait(h);
      t.wait(t.pull(step, x.data()));
      if (sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    }
    if (f.has("out")) {
      std::ofstream out(f.str("out") + ".tmp", std::ios::binary);
      out.write(reinterpret_cast<const char*>(x.data()), static_cast<std::streamsize>(4 * x.size()));
      out.close();
      std::rename((f.str("out") + ".tmp").c_str(), f.str("out").c_str());
    }
    const auto c = t.counters();
    if (f.has("stats-out")) {
      std::ofstream(f.str("stats-out")) << nlohmann::json{{"first_step", first},
                                                         {"last_step", last},
                                                         {"up_messages", c.up.messages},
                                                         {"down_messages", c.down.messages},
                                                         {"rejoins", t.rejoins()}}
                                                .dump();
    }
    std::printf("worker %u: steps %llu..%llu loss %.6g up %llu+%llu+%llu B down %llu+%llu+%llu B\n", rank,
                static_cast<unsigned long long>(first), static_cast<unsigned long long>(last), loss,
                static_cast<unsigned long long>(c.up.payload_bytes),
                static_cast<unsigned long long>(c.up.framing_bytes), static_cast<unsigned long long>(c.up.tcpip_bytes),
                static_cast<unsigned long long>(c.down.payload_bytes),
                static_cast<unsigned long long>(c.down.framing_bytes),
                static_cast<unsigned long long>(c.down.tcpip_bytes));
    if (f.has("faults-out")) {
      const auto json = [](const FaultCounts& n) {
        return nlohmann::json{{"passed", n.passed},     {"dropped", n.dropped}, {"duplicated", n.duplicated},
                              {"reordered", n.reordered}, {"delayed", n.delayed}};
      };
      std::ofstream(f.str("faults-out")) << nlohmann::json{{"requests", json(t.request_fault_counts())},
                                                           {"replies", json(t.reply_fault_counts())}}
                                                .dump();
    }
    t.shutdown();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lsq_worker: %s\n", e.what());
    return 1;
  }
}
