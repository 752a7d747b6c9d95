// lsq_worker: a torch-free worker process for the comm integration tests. It computes
// real least-squares gradients (tests/comm/lsq.h), encodes them with quant codecs and
// talks to shard processes through ZmqWorkerTransport, or to its peers through
// CollectiveTransport (--aggregation=allreduce|allgather, Gloo over loopback).
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
//   collectives: --aggregation=allreduce|allgather --store=DIR [--timeout=S] [--host=ADDR]
//              [--checkpoint-dir=DIR --checkpoint-every=N] [--restore-step=N]
//              [--die-at-step=N] [--hang-at-step=N] (fault injection before that step's pushes)
//              [--throw-in-thread-at-step=N] (a thread of its own throws gloo::EnforceNotMet
//              there, as Gloo's I/O thread does on a broken stream: nothing catches it)
// Exit code 0 after `steps` steps (and params written to --out); 1 on a CommError.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include <gloo/common/logging.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "comm/collective_transport.h"
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
    PlacementOptions placement;
    placement.strategy = parse_placement_strategy(f.str("strategy", "greedy"));
    placement.bucket_bytes = static_cast<std::uint64_t>(f.num("bucket-bytes", 4 << 20));
    placement.min_compress_numel = static_cast<std::uint64_t>(f.num("min-compress", 0));
    const auto rank = static_cast<std::uint32_t>(f.num("rank", 0));
    const auto steps = static_cast<std::uint64_t>(f.num("steps", 10));
    const auto rows = static_cast<std::size_t>(f.num("rows", 24));
    const auto sleep_ms = static_cast<int>(f.num("step-sleep-ms", 0));
    const std::string aggregation = f.str("aggregation", "ps");
    std::unique_ptr<WorkerTransport> transport;
    ZmqWorkerTransport* zmq = nullptr;
    if (aggregation == "ps") {
      ZmqClientOptions o;
      o.shard_endpoints = testing::Flags::split(f.str("endpoints"));
      o.client.placement = placement;
      o.client.placement.num_shards = static_cast<std::uint32_t>(o.shard_endpoints.size());
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
      placement = o.client.placement;
      auto z = std::make_unique<ZmqWorkerTransport>(o);
      zmq = z.get();
      transport = std::move(z);
    } else {
      CollectiveTransportOptions o;
      o.mode = parse_collective_mode(aggregation);
      o.collective.rank = rank;
      o.collective.size = static_cast<std::uint32_t>(f.num("workers", 1));
      o.collective.store_dir = f.str("store");
      o.collective.timeout_s = f.num("timeout", 60.0);
      o.collective.host = f.str("host", "127.0.0.1");
      o.placement = placement;
      o.optimizer.lr = f.num("lr", 0.1);  // gradzip-ps's flags and defaults
      o.optimizer.momentum = f.num("momentum", 0.0);
      o.checkpoint_dir = f.str("checkpoint-dir");
      o.checkpoint_every = static_cast<std::uint64_t>(f.num("checkpoint-every", 0));
      o.restore_step = static_cast<std::uint64_t>(f.num("restore-step", 0));
      transport = std::make_unique<CollectiveTransport>(o);
    }
    WorkerTransport& t = *transport;
    const Layout layout = make_layout(sig, placement);
    const auto die_at = static_cast<std::int64_t>(f.num("die-at-step", -1));
    const auto hang_at = static_cast<std::int64_t>(f.num("hang-at-step", -1));
    const auto throw_at = static_cast<std::int64_t>(f.num("throw-in-thread-at-step", -1));
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
      if (static_cast<std::int64_t>(step) == die_at) _exit(9);  // dies without a goodbye
      if (static_cast<std::int64_t>(step) == hang_at) std::this_thread::sleep_for(std::chrono::hours(1));
      if (static_cast<std::int64_t>(step) == throw_at) {
        std::thread([] { throw gloo::EnforceNotMet(__FILE__, __LINE__, "injected", "a thread's uncaught throw"); })
            .detach();
        std::this_thread::sleep_for(std::chrono::hours(1));  // the handler ends the process
      }
      loss = prob.gradient(x.data(), g.data());
      auto msgs = enc.encode(layout, g.data(), step, rank);
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
                                                         {"rejoins", zmq != nullptr ? zmq->rejoins() : std::uint64_t{0}}}
                                                .dump();
    }
    std::printf("worker %u: steps %llu..%llu loss %.6g up %llu+%llu+%llu B down %llu+%llu+%llu B\n", rank,
                static_cast<unsigned long long>(first), static_cast<unsigned long long>(last), loss,
                static_cast<unsigned long long>(c.up.payload_bytes),
                static_cast<unsigned long long>(c.up.framing_bytes), static_cast<unsigned long long>(c.up.tcpip_bytes),
                static_cast<unsigned long long>(c.down.payload_bytes),
                static_cast<unsigned long long>(c.down.framing_bytes),
                static_cast<unsigned long long>(c.down.tcpip_bytes));
    if (zmq != nullptr && f.has("faults-out")) {
      const auto json = [](const FaultCounts& n) {
        return nlohmann::json{{"passed", n.passed},     {"dropped", n.dropped}, {"duplicated", n.duplicated},
                              {"reordered", n.reordered}, {"delayed", n.delayed}};
      };
      std::ofstream(f.str("faults-out")) << nlohmann::json{{"requests", json(zmq->request_fault_counts())},
                                                           {"replies", json(zmq->reply_fault_counts())}}
                                                .dump();
    }
    if (zmq != nullptr) zmq->shutdown();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lsq_worker: %s\n", e.what());
    return 1;
  }
}
