// One process of a multi-process run: a shard (comm::run_shard_server over ZeroMQ) or a
// worker (trainer::run_worker over comm::ZmqWorkerTransport, or comm::CollectiveTransport
// under --aggregation allreduce|allgather). Both build their model
// signature and bucket layout from the same options (plan_run), so they agree. With
// --curve-keys both take their CURVE keys from the key directory (experiments/curve_keys.h).
#include <algorithm>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "comm/powersgd_ps_transport.h"
#include "comm/zmq_client.h"
#include "comm/zmq_server.h"
#include "experiments/curve_keys.h"
#include "experiments/train/collective.h"
#include "experiments/train/config.h"
#include "experiments/train/run.h"

namespace gradzip::cli {
namespace fs = std::filesystem;
namespace {

fs::path procs_dir(const TrainOptions& o) { return fs::path(o.run.run_dir) / "procs"; }

nlohmann::json direction_json(const comm::DirectionCounters& c) {
  return {{"messages", c.messages},       {"payload_bytes", c.payload_bytes}, {"framing_bytes", c.framing_bytes},
          {"tcpip_bytes", c.tcpip_bytes}, {"seconds", c.seconds}};
}

nlohmann::json staleness_json(const comm::StalenessCounters& s) {
  return {{"pushes", s.pushes}, {"sum", s.sum}, {"max", s.max}};
}

}  // namespace

std::vector<std::string> split_endpoints(const std::string& list, const std::string& option, std::uint32_t shards) {
  std::vector<std::string> endpoints;
  std::stringstream ss(list);
  for (std::string ep; std::getline(ss, ep, ',');) {
    if (!ep.empty()) endpoints.push_back(ep);
  }
  if (endpoints.size() != shards) {
    throw UsageError(option + " lists " + std::to_string(endpoints.size()) + " shards, --shards is " +
                     std::to_string(shards));
  }
  return endpoints;
}

int run_shard_role(const TrainOptions& o) {
  const RunPlan plan = plan_run(o);
  comm::ShardServerOptions so;
  so.shard.shard_id = static_cast<std::uint32_t>(o.rank);
  so.shard.num_workers = plan.cfg.workers;
  so.shard.mode = plan.cfg.mode;
  so.shard.ssp_slack = plan.cfg.ssp_slack;
  so.shard.optimizer = plan.cfg.optimizer;
  so.shard.powersgd_spec = plan.cfg.ps_powersgd;
  so.shard.worker_timeout_s = o.topology.worker_timeout_s;
  trainer::set_shard_checkpoints(plan.cfg, steps_per_epoch(plan.train_images, o.topology.workers, o.data.batch_size),
                                 &so.shard);
  so.signature = plan.signature;
  so.placement = plan.cfg.placement;
  so.bind = o.bind.empty() ? "tcp://127.0.0.1:0" : o.bind;
  if (!o.run.run_dir.empty()) {  // `gradzip ps` started by hand may have no run directory
    fs::create_directories(procs_dir(o));
    so.endpoint_file = (procs_dir(o) / ("shard" + std::to_string(o.rank) + ".ep")).string();
    so.stats_file = (procs_dir(o) / ("shard" + std::to_string(o.rank) + ".stats.jsonl")).string();
  }
  so.idle_exit_s = std::max(60.0, o.topology.worker_timeout_s * 2);
  if (!o.curve_keys.empty()) {
    try {
      const experiments::ShardCurveFiles keys = experiments::shard_curve_files(o.curve_keys);
      so.curve_key_file = keys.key_pair;
      so.curve_authorized_keys_file = keys.authorized_keys;
    } catch (const experiments::CurveKeyError& e) {
      throw UsageError(e.what());
    }
    spdlog::info("shard {}: CURVE on, keys from {}", o.rank, o.curve_keys);
  }
  return comm::run_shard_server(so);
}

WorkerOutcome run_worker_process(const TrainingOptions& o, std::uint32_t rank, const std::vector<std::string>& endpoints,
                                 const WorkerEpochFn& on_epoch) {
  const RunPlan plan = plan_run(o);
  if (uses_collective(o)) {  // no shards: the workers aggregate among themselves
    comm::CollectiveTransport transport(collective_transport_options(o, plan, rank));
    WorkerOutcome out;
    out.result = trainer::run_worker(plan.cfg, transport, rank, [&](const trainer::EpochMetrics& m) {
      if (on_epoch) on_epoch(m, transport.counters());
    });
    out.traffic = transport.counters();
    transport.barrier();  // nobody tears its connections down while a peer still reads
    return out;
  }
  comm::ZmqClientOptions zo;
  zo.client.placement = plan.cfg.placement;
  zo.client.op_timeout_s = std::max(60.0, o.topology.worker_timeout_s);
  zo.client.heartbeat_interval_s = o.topology.heartbeat_interval_s;
  zo.shard_endpoints = endpoints;
  if (!o.curve_keys.empty()) {
    try {
      const experiments::WorkerCurveKeys keys = experiments::worker_curve_keys(o.curve_keys, rank);
      zo.curve_server_public_key = keys.server_public_key;
      zo.curve_key_file = keys.key_pair;
    } catch (const experiments::CurveKeyError& e) {
      throw UsageError(e.what());
    }
  }
  comm::ZmqWorkerTransport transport(zo);
  std::unique_ptr<comm::PowerSgdPsTransport> powersgd;  // --aggregation ps --compressor powersgd
  if (!plan.cfg.ps_powersgd.empty()) {
    powersgd = std::make_unique<comm::PowerSgdPsTransport>(transport, transport, plan.cfg.ps_powersgd, plan.cfg.seed,
                                                           plan.cfg.workers);
  }
  WorkerOutcome out;
  // m.traffic: the counters as the worker's pipeline saw them at the epoch's end (the
  // transport itself may be busy on the pipeline's thread).
  out.result = trainer::run_worker(plan.cfg, powersgd ? *powersgd : static_cast<comm::WorkerTransport&>(transport), rank,
                                   [&](const trainer::EpochMetrics& m) {
    if (on_epoch) on_epoch(m, m.traffic);
  });
  out.traffic = transport.counters();
  transport.shutdown();
  return out;
}

int run_worker_role(const TrainOptions& o, const std::function<void()>& each_epoch) {
  const auto endpoints = uses_collective(o) ? std::vector<std::string>{}
                                            : split_endpoints(o.endpoints, "--endpoints",
                                                              static_cast<std::uint32_t>(o.topology.shards));
  const fs::path out = procs_dir(o) / ("worker" + std::to_string(o.rank) + ".jsonl");
  std::ofstream lines(out, std::ios::app);
  if (!lines) throw std::runtime_error("cannot write " + out.string());
  auto on_epoch = [&](const trainer::EpochMetrics& m, const comm::TrafficCounters& c) {
    nlohmann::json j = {{"epoch", m.epoch + 1},
                        {"step", m.steps},
                        {"seconds", m.seconds},
                        {"train_loss", m.train_loss},
                        {"train_accuracy", m.train_accuracy},
                        {"up", direction_json(c.up)},
                        {"down", direction_json(c.down)},
                        {"staleness", staleness_json(c.staleness)},
                        {"h2d_bytes", m.h2d_bytes},
                        {"d2h_bytes", m.d2h_bytes}};
    if (o.rank == 0) {
      j["test_loss"] = m.test_loss;
      j["test_accuracy"] = m.test_accuracy;
    }
    lines << j.dump() << std::endl;
    if (each_epoch) each_epoch();
  };
  const WorkerOutcome w = run_worker_process(o, static_cast<std::uint32_t>(o.rank), endpoints, on_epoch);
  const trainer::TrainResult& r = w.result;
  lines << nlohmann::json{{"final", true},
                          {"steps", r.steps},
                          {"parameters", r.parameters},
                          {"stages", stages_json(r.stages)},
                          {"bottleneck", r.bottleneck},
                          {"device_fraction", r.device_fraction},
                          {"up", direction_json(w.traffic.up)},
                          {"down", direction_json(w.traffic.down)},
                          {"staleness", staleness_json(w.traffic.staleness)},
                          {"overlapped", r.overlapped},
                          {"train_seconds", r.train_seconds},
                          {"downlink_resyncs", r.resyncs},
                          {"downlink_resync_max_abs_diff", r.resync_max_abs_diff}}
               .dump()
        << std::endl;
  return kExitOk;
}

}  // namespace gradzip::cli
