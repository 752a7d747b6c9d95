// `gradzip train`: options, and the run itself (trainer/train.h for the training, the
// run directory of experiments/runlog/rundir.h, link models of experiments/link_model.h).
#include "experiments/cmd_train.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sstream>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "comm/accounting.h"
#include "comm/cluster.h"
#include "comm/launch.h"
#include "comm/layout.h"
#include "experiments/link_model.h"
#include "comm/protocol.h"
#include "experiments/runlog/rundir.h"
#include "comm/zmq_client.h"
#include "comm/zmq_server.h"
#include "experiments/commands.h"
#include "experiments/netem.h"
#include "quant/registry.h"
#include "trainer/errors.h"
#include "trainer/train.h"

#ifndef GRADZIP_TORCH_VERSION
#define GRADZIP_TORCH_VERSION ""
#endif

namespace gradzip::cli {

bool is_cluster_keyword(const std::string& cluster) {
  return cluster == "sim" || cluster == "local" || cluster == "netem" || cluster == "slurm" || cluster == "mpi";
}

void bind_train_options(OptionTable* t, TrainOptions* o) {
  bind_model_data_options(t, &o->data);
  t->group("Training");
  t->add("epochs", &o->epochs, "passes over the training set", Range{1, 100000});
  t->add("max-steps", &o->max_steps, "stop after this many steps per worker; 0 = no limit", Range{0, 9.0e18});
  t->add("eval-every", &o->eval_every, "epochs between test-set evaluations", Range{1, 100000});
  bind_optimizer_options(t, &o->optimizer);
  bind_compression_options(t, &o->compression);
  bind_topology_options(t, &o->topology);
  t->group("Cluster and links");
  t->add("cluster", &o->cluster, "sim | local | netem | slurm | mpi | path to a cluster file");
  t->add("link", &o->link, "link model (and netem shaping): pcie3|pcie4|pcie5|nvlink|eth1g|eth10g|eth25g|eth100g "
                           "(1gbe.. aliases) or custom:bw=<n>gbit,lat=<n>us");
  t->add_choice("netem-delay", &o->netem_delay, {"on", "off", "if-available"},
                "netem: add the link's latency with sch_netem (if-available: skip with a warning when missing)");
  t->add("report-links", &o->report_links, "link profiles whose modeled step time goes into summary.json");
  t->add("process-timeout", &o->process_timeout_s, "local/netem: kill every process after this many seconds",
         Range{1, 1e7});
  t->group("One process of a multi-process run (set by --cluster local/netem, or by hand)");
  t->add("role", &o->role, "empty: run the whole job; shard | worker: be one process of it");
  t->add("rank", &o->rank, "shard id or worker rank of this process", Range{0, 1 << 20});
  t->add("endpoints", &o->endpoints, "worker: comma-separated shard endpoints tcp://host:port, shard 0 first");
  t->add("bind", &o->bind, "shard: endpoint to bind; empty = tcp://127.0.0.1:0 (port chosen by the OS)");
  t->group("Quick runs");
  t->add("width", &o->width, "model base width in channels; 0 = the published width", Range{0, 4096});
  t->add("train-subset", &o->train_subset, "train on the first N training images; 0 = all", Range{0, 1e9});
  t->add("test-subset", &o->test_subset, "evaluate on the first N test images; 0 = all", Range{0, 1e9});
  t->add("torch-threads", &o->torch_threads, "torch intra-op threads per process; 0 = default", Range{0, 1024});
  bind_run_options(t, &o->run);
  t->add_check([o] {
    try {
      experiments::parse_link(o->link);
      experiments::parse_link_list(o->report_links);
    } catch (const experiments::LinkModelError& e) {
      throw UsageError(e.what());
    }
  });
  t->add_check([o] {
    if (is_cluster_keyword(o->cluster)) return;
    std::ifstream f(o->cluster);
    if (!f) {
      throw UsageError("bad value '" + o->cluster +
                       "' for --cluster: not sim|local|netem|slurm|mpi and not a readable cluster file");
    }
  });
}

namespace {
namespace fs = std::filesystem;

using runlog::MetricColumn;
using runlog::MetricValue;

/// Steps per epoch as the trainer computes them: each worker trains on an equal shard
/// of the training set, `batch` images per step (trainer/worker.cc).
std::uint64_t steps_per_epoch(std::size_t train_images, int workers, int batch) {
  return (train_images / static_cast<std::size_t>(workers)) / static_cast<std::size_t>(batch);
}

comm::PlacementStrategy placement_strategy(const std::string& name) {
  if (name == "balanced") return comm::PlacementStrategy::kGreedyBytes;
  if (name == "round-robin") return comm::PlacementStrategy::kRoundRobin;
  throw UsageError("--placement " + name + " is not supported by the trainer; use balanced or round-robin");
}

/// The trainer's config from the command's options. `train_images` is the size of the
/// (subset of the) training set, for turning epochs into steps in the LR schedule.
trainer::TrainConfig make_config(const TrainOptions& o, std::size_t train_images) {
  if (o.eval_every != 1) throw UsageError("--eval-every: the trainer evaluates after every epoch; use 1");
  if (o.topology.mode != SyncMode::kSync) {
    throw UsageError("--mode " + std::string(sync_mode_name(o.topology.mode)) +
                     ": gradzip train runs synchronous SGD (async/ssp: start `gradzip ps --mode` directly)");
  }
  if (o.compression.downlink != "dense") {
    throw UsageError("--downlink " + o.compression.downlink + ": the trainer pulls dense parameters; use dense");
  }
  trainer::TrainConfig c;
  c.model = o.data.model;
  c.base_width = o.width;
  c.dataset = o.data.dataset;
  c.data_dir = o.data.data_dir;
  c.train_subset = static_cast<std::size_t>(o.train_subset);
  c.test_subset = static_cast<std::size_t>(o.test_subset);
  c.epochs = o.epochs;
  c.max_steps = static_cast<std::uint64_t>(o.max_steps);
  c.batch_size = static_cast<std::size_t>(o.data.batch_size);
  c.workers = static_cast<std::uint32_t>(o.topology.workers);
  c.placement.num_shards = static_cast<std::uint32_t>(o.topology.shards);
  c.placement.strategy = placement_strategy(o.topology.placement);
  c.placement.bucket_bytes = static_cast<std::uint64_t>(o.compression.bucket_mb * 1048576.0);
  c.placement.min_compress_numel = o.compression.min_compress_numel;
  c.compressor = o.compression.compressor;
  c.memory = o.compression.memory;
  c.device = o.data.device;
  c.loader_threads = o.data.loader_threads;
  c.seed = o.run.seed;
  c.torch_threads = o.torch_threads;

  const std::uint64_t spe = steps_per_epoch(train_images, o.topology.workers, o.data.batch_size);
  if (spe == 0) {
    throw UsageError("batch size " + std::to_string(o.data.batch_size) + " x " + std::to_string(o.topology.workers) +
                     " workers exceeds the " + std::to_string(train_images) + " training images");
  }
  std::uint64_t total = spe * static_cast<std::uint64_t>(o.epochs);
  if (o.max_steps > 0) total = std::min<std::uint64_t>(total, static_cast<std::uint64_t>(o.max_steps));
  auto& opt = c.optimizer;
  opt.lr = o.optimizer.lr;
  opt.momentum = o.optimizer.momentum;
  opt.nesterov = o.optimizer.nesterov;
  opt.weight_decay = o.optimizer.weight_decay;
  opt.warmup_steps = static_cast<std::uint64_t>(std::llround(o.optimizer.warmup_epochs * static_cast<double>(spe)));
  opt.total_steps = std::max<std::uint64_t>(1, total);
  opt.gamma = o.optimizer.lr_gamma;
  switch (o.optimizer.schedule) {
    case LrSchedule::kConstant: opt.schedule = comm::LrSchedule::kConstant; break;
    case LrSchedule::kCosine: opt.schedule = comm::LrSchedule::kCosine; break;
    case LrSchedule::kStep: {
      // comm's step schedule decays every step_size steps: milestones must be m, 2m, 3m...
      opt.schedule = comm::LrSchedule::kStep;
      std::stringstream ss(o.optimizer.lr_milestones);
      std::string item;
      std::vector<long> ms;
      while (std::getline(ss, item, ',')) {
        try {
          ms.push_back(std::stol(item));
        } catch (const std::exception&) {
          throw UsageError("--lr-milestones: '" + item + "' is not an epoch number");
        }
      }
      if (ms.empty() || ms[0] <= 0) throw UsageError("--lr-milestones: needs positive epochs, e.g. 30,60");
      for (std::size_t i = 0; i < ms.size(); ++i) {
        if (ms[i] != ms[0] * static_cast<long>(i + 1)) {
          throw UsageError("--lr-milestones: the PS optimizer decays at evenly spaced epochs (m, 2m, 3m, ...)");
        }
      }
      opt.step_size = static_cast<std::uint64_t>(ms[0]) * spe;
      break;
    }
  }
  return c;
}

/// Estimated ZeroMQ framing and TCP/IP bytes for `payload` bytes sent as `messages`
/// multipart messages (one 40-byte envelope frame + one message frame each) plus
/// `bare` envelope-only messages (requests, acknowledgements), with the formulas of
/// comm/accounting.h (the in-process transport counts them the same way, but the
/// trainer's epoch metrics carry payload bytes only).
experiments::WireBytes estimate_wire(double payload, double messages, double bare) {
  experiments::WireBytes w;
  w.payload_bytes = payload;
  if (messages <= 0) return w;
  const auto mean = static_cast<std::uint64_t>(payload / messages);
  const double env = static_cast<double>(comm::kEnvelopeBytes + comm::zmtp_frame_overhead(comm::kEnvelopeBytes));
  const double framing = env + static_cast<double>(comm::zmtp_frame_overhead(mean));
  w.framing_bytes = messages * framing + bare * env;
  w.tcpip_bytes =
      messages * static_cast<double>(comm::estimate_tcpip_bytes(mean + static_cast<std::uint64_t>(framing))) +
      bare * static_cast<double>(comm::estimate_tcpip_bytes(static_cast<std::uint64_t>(env)));
  return w;
}

std::vector<MetricColumn> metric_columns() {
  return {
      {"epoch", "count", "epochs completed (1-based)"},
      {"step", "count", "synchronous steps done so far (each worker pushed once per step)"},
      {"seconds", "s", "wall time since the run started"},
      {"train_loss", "", "worker 0's mean training loss over the epoch"},
      {"train_accuracy", "fraction", "worker 0's training accuracy over the epoch"},
      {"test_loss", "", "test loss of worker 0's model"},
      {"test_accuracy", "fraction", "test accuracy of worker 0's model"},
      {"up_payload_bytes", "bytes", "gradzip messages pushed, all workers, cumulative"},
      {"up_framing_bytes", "bytes", "ZeroMQ envelopes/frame headers pushed, all workers, cumulative (sim: estimated)"},
      {"up_tcpip_bytes", "bytes", "TCP/IP/Ethernet header estimate uplink, all workers, cumulative (sim: estimated)"},
      {"down_payload_bytes", "bytes", "parameters pulled, all workers, cumulative"},
      {"down_framing_bytes", "bytes", "ZeroMQ framing downlink, all workers, cumulative (sim: estimated)"},
      {"down_tcpip_bytes", "bytes", "TCP/IP/Ethernet header estimate downlink, all workers, cumulative (sim: estimated)"},
      {"modeled_comm_s", "s", "modeled communication time on --link, cumulative (experiments/link_model.h)"},
  };
}

nlohmann::json stages_json(const trainer::StageSeconds& s) {
  return {{"data_wait", s.data_wait}, {"h2d", s.h2d},   {"compute", s.compute},     {"d2h", s.d2h},
          {"encode", s.encode},       {"send", s.send}, {"pull_wait", s.pull_wait}, {"apply", s.apply}};
}

// Creates the run directory (--run-dir, or a fresh one under runs/) with its resolved
// config.ini (section [train]: children and re-runs use `gradzip train --config`), host
// info and the declared metrics columns.
std::unique_ptr<runlog::RunDir> open_run_dir(const TrainOptions& o, const OptionTable& table) {
  runlog::RunDirOptions rdo;
  rdo.log_level = o.run.log_level;
  const std::string dir = o.run.run_dir.empty() ? runlog::default_run_dir("train") : o.run.run_dir;
  auto run = runlog::RunDir::create(dir, rdo);
  run->write_config(table.to_ini("train"));
  run->write_host_info(GRADZIP_TORCH_VERSION);
  run->declare_metrics(metric_columns());
  return run;
}

int run_sim(const TrainOptions& o, const OptionTable& table) {
  const experiments::LinkProfile link = experiments::parse_link(o.link);
  const std::vector<experiments::LinkProfile> report_links = experiments::parse_link_list(o.report_links);

  // Size of the training data, for the schedule (loads the data once; cheap for the
  // IDX/CIFAR sets, and errors in data_dir surface before the run directory exists).
  trainer::TrainConfig probe;
  probe.dataset = o.data.dataset;
  probe.data_dir = o.data.data_dir;
  probe.train_subset = static_cast<std::size_t>(o.train_subset);
  probe.test_subset = static_cast<std::size_t>(o.test_subset);
  trainer::DataSplit data;
  try {
    data = trainer::load_config_data(probe);
  } catch (const trainer::DataError& e) {
    throw UsageError(e.what());
  } catch (const trainer::ConfigError& e) {
    throw UsageError(e.what());
  }
  const std::size_t train_images = data.train.size();
  const trainer::TrainConfig cfg = make_config(o, train_images);
  std::string canonical_spec;
  try {
    canonical_spec = quant::make_compressor(cfg.compressor, cfg.memory).spec();
  } catch (const quant::SpecError& e) {
    throw UsageError(std::string("--compressor: ") + e.what());
  }

  // Messages per worker and step for the framing estimate: one push per bucket, one
  // acknowledgement per push, one pull request and one reply per shard.
  std::uint64_t buckets = 0;
  std::vector<double> shard_fraction;
  std::uint64_t parameters = 0;
  try {
    const auto sig = trainer::make_signature(cfg, data.train.channels, data.train.height, data.train.width,
                                             data.train.classes);
    const comm::Layout layout = comm::make_layout(sig, cfg.placement);
    buckets = layout.buckets.size();
    parameters = sig.total_numel();
    for (auto n : layout.shard_numel) shard_fraction.push_back(static_cast<double>(n) / static_cast<double>(parameters));
  } catch (const trainer::ConfigError& e) {
    throw UsageError(e.what());
  }
  data = trainer::DataSplit{};  // the trainer loads its own copy

  auto run = open_run_dir(o, table);
  auto log = run->logger();
  const auto layout_shards = static_cast<std::uint32_t>(o.topology.shards);

  nlohmann::json summary = {{"status", "running"},     {"compressor", canonical_spec},
                            {"workers", cfg.workers},   {"shards", layout_shards},
                            {"cluster", o.cluster},     {"model", cfg.model},
                            {"dataset", cfg.dataset},   {"link", link.name},
                            {"train_images", train_images}, {"parameters", parameters}};
  run->write_summary(summary);
  run->event("start", {{"cluster", o.cluster}, {"compressor", canonical_spec}, {"workers", cfg.workers}});
  log->info("train: {} workers x {} shards, {} on {} ({} training images), compressor {}, run dir {}", cfg.workers,
            layout_shards, cfg.model, cfg.dataset, train_images, canonical_spec, run->path().string());


  double best_acc = 0;
  double modeled_comm = 0;
  std::uint64_t prev_step = 0;
  experiments::WireBytes prev_up, prev_down;
  experiments::StepTraffic last_traffic;
  auto on_epoch = [&](const trainer::EpochMetrics& m) {
    const double steps = static_cast<double>(m.steps);
    const double worker_steps = steps * cfg.workers;
    const experiments::WireBytes up = estimate_wire(static_cast<double>(m.bytes_up), worker_steps * buckets,
                                             worker_steps * layout_shards);
    const experiments::WireBytes down = estimate_wire(static_cast<double>(m.bytes_down), worker_steps * layout_shards,
                                               worker_steps * buckets);
    const double seg_steps = static_cast<double>(m.steps - prev_step);
    if (seg_steps > 0) {
      const double per = 1.0 / (seg_steps * cfg.workers);
      experiments::StepTraffic t;
      t.num_shards = layout_shards;
      t.shard_fraction = shard_fraction;
      t.up.assign(cfg.workers, {(up.payload_bytes - prev_up.payload_bytes) * per,
                                (up.framing_bytes - prev_up.framing_bytes) * per,
                                (up.tcpip_bytes - prev_up.tcpip_bytes) * per});
      t.down.assign(cfg.workers, {(down.payload_bytes - prev_down.payload_bytes) * per,
                                  (down.framing_bytes - prev_down.framing_bytes) * per,
                                  (down.tcpip_bytes - prev_down.tcpip_bytes) * per});
      modeled_comm += seg_steps * experiments::modeled_step_time(link, t).total_s;
      last_traffic = t;
    }
    prev_step = m.steps;
    prev_up = up;
    prev_down = down;
    best_acc = std::max(best_acc, m.test_accuracy);
    run->append_metrics(std::vector<MetricValue>{
        static_cast<std::int64_t>(m.epoch + 1), static_cast<std::int64_t>(m.steps), m.seconds, m.train_loss,
        m.train_accuracy, m.test_loss, m.test_accuracy, up.payload_bytes, up.framing_bytes, up.tcpip_bytes,
        down.payload_bytes, down.framing_bytes, down.tcpip_bytes, modeled_comm});
    run->event("epoch", {{"epoch", m.epoch + 1}, {"step", m.steps}, {"test_accuracy", m.test_accuracy}});
    log->info("epoch {}/{}: step {}, train loss {:.4f}, test accuracy {:.2f}%, {:.1f} s, {:.2f} MB pushed", m.epoch + 1,
              cfg.epochs, m.steps, m.train_loss, 100 * m.test_accuracy, m.seconds, up.payload_bytes / 1e6);
  };

  trainer::TrainResult r;
  try {
    r = trainer::run_training(cfg, on_epoch);
  } catch (const std::exception& e) {
    summary["status"] = "failed";
    summary["error"] = e.what();
    run->write_summary(summary);
    run->event("failed", {{"error", e.what()}});
    throw;
  }
  const double worker_steps = static_cast<double>(r.steps) * cfg.workers;
  const double comm_s = r.stages.send + r.stages.pull_wait;
  summary["status"] = "complete";
  summary["steps"] = r.steps;
  summary["seconds"] = r.epochs.empty() ? 0.0 : r.epochs.back().seconds;
  summary["parameters"] = r.parameters;
  summary["final_test_accuracy"] = r.final_test_accuracy;
  summary["best_test_accuracy"] = best_acc;
  summary["bytes_up"] = r.bytes_up;
  summary["bytes_down"] = r.bytes_down;
  summary["compute_seconds_per_step"] = worker_steps > 0 ? (r.stages.total() - comm_s) / worker_steps : 0.0;
  summary["shard_fraction"] = shard_fraction;
  summary["stages"] = stages_json(r.stages);
  summary["bottleneck"] = r.bottleneck;
  summary["device_fraction"] = r.device_fraction;
  summary["layout"] = r.layout_description;
  summary["framing_bytes_source"] = "estimated from payload (comm/accounting.h formulas)";
  nlohmann::json modeled = nlohmann::json::object();
  if (!last_traffic.up.empty()) {
    for (const auto& l : report_links) modeled[l.name] = experiments::modeled_step_time(l, last_traffic).total_s;
  }
  summary["modeled_step_comm_s"] = modeled;
  run->write_summary(summary);
  run->event("end", {{"steps", r.steps}, {"final_test_accuracy", r.final_test_accuracy}});
  log->info("done: {} steps, final test accuracy {:.2f}% (best {:.2f}%), bottleneck {}; {}", r.steps,
            100 * r.final_test_accuracy, 100 * best_acc, r.bottleneck, run->path().string());
  return kExitOk;
}

// ---- multi-process runs -----------------------------------------------------------
// `--cluster local|netem`: this process writes the run directory and starts M shard and
// N worker processes, each `gradzip train --config <run>/config.ini --role shard|worker
// --rank R ...` (a fresh exec: no fork of a process that already ran torch). Shards
// serve with comm::ShardServer over ZeroMQ; workers run trainer::run_worker over
// comm::ZmqWorkerTransport and append one JSON line per epoch, with their real byte
// counters, to <run>/procs/worker<R>.jsonl; the parent merges those into metrics.csv
// and summary.json. netem puts each process in its own network namespace
// (experiments/netem.h) shaped to --link and records the veth byte counters.

struct Loaded {
  trainer::TrainConfig cfg;
  comm::ModelSignature signature;
  comm::Layout layout;
  std::size_t train_images = 0;
};

Loaded load_for_role(const TrainOptions& o) {
  trainer::TrainConfig probe;
  probe.dataset = o.data.dataset;
  probe.data_dir = o.data.data_dir;
  probe.train_subset = static_cast<std::size_t>(o.train_subset);
  probe.test_subset = static_cast<std::size_t>(o.test_subset);
  Loaded l;
  try {
    const trainer::DataSplit data = trainer::load_config_data(probe);
    l.train_images = data.train.size();
    l.cfg = make_config(o, l.train_images);
    l.signature = trainer::make_signature(l.cfg, data.train.channels, data.train.height, data.train.width,
                                          data.train.classes);
  } catch (const trainer::DataError& e) {
    throw UsageError(e.what());
  } catch (const trainer::ConfigError& e) {
    throw UsageError(e.what());
  }
  l.layout = comm::make_layout(l.signature, l.cfg.placement);
  return l;
}

fs::path procs_dir(const TrainOptions& o) { return fs::path(o.run.run_dir) / "procs"; }

int run_shard_role(const TrainOptions& o) {
  const Loaded l = load_for_role(o);
  comm::ShardServerOptions so;
  so.shard.shard_id = static_cast<std::uint32_t>(o.rank);
  so.shard.num_workers = l.cfg.workers;
  so.shard.mode = comm::SyncMode::kSync;
  so.shard.optimizer = l.cfg.optimizer;
  so.shard.worker_timeout_s = o.topology.worker_timeout_s;
  so.signature = l.signature;
  so.placement = l.cfg.placement;
  so.bind = o.bind.empty() ? "tcp://127.0.0.1:0" : o.bind;
  so.endpoint_file = (procs_dir(o) / ("shard" + std::to_string(o.rank) + ".ep")).string();
  so.stats_file = (procs_dir(o) / ("shard" + std::to_string(o.rank) + ".stats.jsonl")).string();
  so.idle_exit_s = std::max(60.0, o.topology.worker_timeout_s * 2);
  return comm::run_shard_server(so);
}

nlohmann::json direction_json(const comm::DirectionCounters& c) {
  return {{"messages", c.messages},        {"payload_bytes", c.payload_bytes}, {"framing_bytes", c.framing_bytes},
          {"tcpip_bytes", c.tcpip_bytes}, {"seconds", c.seconds}};
}

int run_worker_role(const TrainOptions& o) {
  const Loaded l = load_for_role(o);
  comm::ZmqClientOptions zo;
  zo.client.placement = l.cfg.placement;
  zo.client.op_timeout_s = std::max(60.0, o.topology.worker_timeout_s);
  std::stringstream ss(o.endpoints);
  std::string ep;
  while (std::getline(ss, ep, ',')) {
    if (!ep.empty()) zo.shard_endpoints.push_back(ep);
  }
  if (zo.shard_endpoints.size() != l.cfg.placement.num_shards) {
    throw UsageError("--endpoints lists " + std::to_string(zo.shard_endpoints.size()) + " shards, --shards is " +
                     std::to_string(l.cfg.placement.num_shards));
  }
  comm::ZmqWorkerTransport transport(zo);
  const fs::path out = procs_dir(o) / ("worker" + std::to_string(o.rank) + ".jsonl");
  std::ofstream lines(out, std::ios::app);
  if (!lines) throw std::runtime_error("cannot write " + out.string());
  auto on_epoch = [&](const trainer::EpochMetrics& m) {
    const comm::TrafficCounters c = transport.counters();
    nlohmann::json j = {{"epoch", m.epoch + 1},          {"step", m.steps},
                        {"seconds", m.seconds},          {"train_loss", m.train_loss},
                        {"train_accuracy", m.train_accuracy}, {"up", direction_json(c.up)},
                        {"down", direction_json(c.down)}};
    if (o.rank == 0) {
      j["test_loss"] = m.test_loss;
      j["test_accuracy"] = m.test_accuracy;
    }
    lines << j.dump() << std::endl;
  };
  const trainer::TrainResult r = trainer::run_worker(l.cfg, transport, static_cast<std::uint32_t>(o.rank), on_epoch);
  const comm::TrafficCounters c = transport.counters();
  lines << nlohmann::json{{"final", true},
                          {"steps", r.steps},
                          {"parameters", r.parameters},
                          {"stages", stages_json(r.stages)},
                          {"bottleneck", r.bottleneck},
                          {"device_fraction", r.device_fraction},
                          {"up", direction_json(c.up)},
                          {"down", direction_json(c.down)}}
               .dump()
        << std::endl;
  transport.shutdown();
  return kExitOk;
}

std::string self_executable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("cannot resolve /proc/self/exe");
  return std::string(buf, static_cast<std::size_t>(n));
}

std::vector<nlohmann::json> read_lines(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream f(p);
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

double num(const nlohmann::json& j, const char* dir, const char* key) {
  return j.contains(dir) && j[dir].contains(key) ? j[dir][key].get<double>() : 0.0;
}

// One started process: a plain child (local) or one inside a namespace (netem).
struct Proc {
  std::string name;
  std::unique_ptr<comm::ChildProcess> local;
  std::unique_ptr<experiments::NetnsProcess> netns;
  bool running() { return local ? local->running() : netns->pid() > 0; }
};

int run_multi(const TrainOptions& o, const OptionTable& table) {
  const bool netem = o.cluster == "netem";
  const experiments::LinkProfile link = experiments::parse_link(o.link);
  const std::vector<experiments::LinkProfile> report_links = experiments::parse_link_list(o.report_links);
  const Loaded l = load_for_role(o);
  std::string canonical_spec;
  try {
    canonical_spec = quant::make_compressor(l.cfg.compressor, l.cfg.memory).spec();
  } catch (const quant::SpecError& e) {
    throw UsageError(std::string("--compressor: ") + e.what());
  }
  const std::uint32_t n_workers = l.cfg.workers;
  const std::uint32_t n_shards = l.cfg.placement.num_shards;
  const std::uint64_t parameters = l.signature.total_numel();
  std::vector<double> shard_fraction;
  for (auto n : l.layout.shard_numel) shard_fraction.push_back(static_cast<double>(n) / static_cast<double>(parameters));

  std::unique_ptr<experiments::NetemCluster> cluster;
  bool delay_applied = false;
  if (netem) {
    const std::string why = experiments::netem_unavailable_reason();
    if (!why.empty()) throw UsageError("--cluster netem: " + why);
    experiments::NetemOptions no;
    no.num_hosts = n_shards + n_workers;
    no.shaping.rate_bit_per_s = link.bandwidth_bytes_per_s * 8;
    if (link.latency_s > 0 && o.netem_delay != "off") {
      const std::string no_delay = experiments::netem_delay_unavailable_reason();
      if (no_delay.empty()) {
        no.shaping.delay_s = link.latency_s;
        delay_applied = true;
      } else if (o.netem_delay == "on") {
        throw UsageError("--netem-delay on: " + no_delay);
      }
    }
    experiments::remove_stale_netem();
    cluster = std::make_unique<experiments::NetemCluster>(no);
  }

  auto run = open_run_dir(o, table);
  auto log = run->logger();
  const fs::path procs = run->path() / "procs";
  fs::create_directories(procs);
  nlohmann::json summary = {{"status", "running"},   {"compressor", canonical_spec}, {"workers", n_workers},
                            {"shards", n_shards},     {"cluster", o.cluster},         {"model", l.cfg.model},
                            {"dataset", l.cfg.dataset}, {"link", link.name},          {"parameters", parameters},
                            {"train_images", l.train_images}};
  if (netem) {
    summary["netem"] = {{"rate_bit_per_s", link.bandwidth_bytes_per_s * 8},
                        {"delay_s", delay_applied ? link.latency_s : 0.0},
                        {"delay_applied", delay_applied},
                        {"cluster_id", cluster->id()}};
    if (link.latency_s > 0 && !delay_applied) {
      log->warn("netem: link latency {} not applied (sch_netem unavailable or --netem-delay off); rate only",
                experiments::format_seconds(link.latency_s));
    }
  }
  run->write_summary(summary);
  run->event("start", {{"cluster", o.cluster}, {"compressor", canonical_spec}, {"workers", n_workers}});
  log->info("train: {} worker + {} shard processes ({}), {} on {}, compressor {}, run dir {}", n_workers, n_shards,
            netem ? "netem namespaces, " + experiments::format_bandwidth(link.bandwidth_bytes_per_s) : "loopback",
            l.cfg.model, l.cfg.dataset, canonical_spec, run->path().string());

  const std::string self = self_executable();
  const std::string config = (run->path() / "config.ini").string();
  auto base_args = [&](const std::string& role, std::uint32_t rank) {
    return std::vector<std::string>{self,     "train",   "--config", config, "--role", role, "--rank",
                                    std::to_string(rank), "--run-dir", run->path().string(), "--log-level",
                                    o.run.log_level};
  };
  std::vector<experiments::InterfaceCounters> veth_before;
  if (netem) {
    for (std::uint32_t h = 0; h < cluster->size(); ++h) veth_before.push_back(cluster->counters(h));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.process_timeout_s);
  std::vector<Proc> shards, workers;
  auto start = [&](const std::string& name, std::vector<std::string> argv, std::uint32_t host) {
    Proc p;
    p.name = name;
    const std::string logf = (procs / (name + ".log")).string();
    if (netem) {
      p.netns = std::make_unique<experiments::NetnsProcess>(
          experiments::NetnsProcess::exec(cluster->netns(host), argv, logf));
    } else {
      p.local = std::make_unique<comm::ChildProcess>(name, argv, logf);
    }
    return p;
  };
  std::vector<std::string> endpoints;
  for (std::uint32_t s = 0; s < n_shards; ++s) {
    auto argv = base_args("shard", s);
    argv.push_back("--bind");
    argv.push_back(netem ? "tcp://" + cluster->address(s) + ":5555" : "tcp://127.0.0.1:0");
    shards.push_back(start("shard" + std::to_string(s), argv, s));
  }
  for (std::uint32_t s = 0; s < n_shards; ++s) {
    const fs::path ep = procs / ("shard" + std::to_string(s) + ".ep");
    std::string text;
    for (int i = 0; i < 1200 && text.empty(); ++i) {  // up to 60 s (torch + data load)
      std::ifstream f(ep);
      if (f) std::getline(f, text);
      if (text.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (text.empty()) throw std::runtime_error("shard " + std::to_string(s) + " did not start; see " + procs.string());
    endpoints.push_back(text);
  }
  std::string endpoint_list;
  for (const auto& e : endpoints) endpoint_list += (endpoint_list.empty() ? "" : ",") + e;
  for (std::uint32_t w = 0; w < n_workers; ++w) {
    auto argv = base_args("worker", w);
    argv.push_back("--endpoints");
    argv.push_back(endpoint_list);
    workers.push_back(start("worker" + std::to_string(w), argv, n_shards + w));
  }
  auto remaining = [&] {
    return std::max(1.0, std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count());
  };
  std::string failure;
  for (auto& p : workers) {
    int rc = -1;
    if (p.netns) {
      try {
        rc = p.netns->wait(remaining());
      } catch (const experiments::NetemError& e) {
        failure = p.name + ": " + e.what();
        break;
      }
    } else {
      if (!p.local->wait_for(std::chrono::milliseconds(static_cast<long>(remaining() * 1000)))) {
        failure = p.name + ": still running after --process-timeout";
        break;
      }
      rc = p.local->exit_code();
    }
    if (rc != 0) {
      failure = p.name + " exited with status " + std::to_string(rc) + "; see " + (procs / (p.name + ".log")).string();
      break;
    }
  }
  // Shards exit once every worker said shutdown; give them a moment, then stop them.
  for (auto& p : shards) {
    if (p.netns) {
      try {
        p.netns->wait(failure.empty() ? 30 : 1);
      } catch (const experiments::NetemError&) {
      }
    } else if (!p.local->wait_for(std::chrono::seconds(failure.empty() ? 30 : 1))) {
      p.local->signal(SIGTERM);
      p.local->wait_for(std::chrono::seconds(5));
    }
  }
  workers.clear();  // kills anything still running
  shards.clear();

  // Merge the workers' epoch lines into metrics.csv.
  std::vector<std::vector<nlohmann::json>> lines(n_workers);
  nlohmann::json final0;
  for (std::uint32_t w = 0; w < n_workers; ++w) {
    for (auto& j : read_lines(procs / ("worker" + std::to_string(w) + ".jsonl"))) {
      if (j.contains("final")) {
        if (w == 0) final0 = j;
      } else {
        lines[w].push_back(j);
      }
    }
  }
  std::size_t epochs_done = std::numeric_limits<std::size_t>::max();
  for (const auto& lw : lines) epochs_done = std::min(epochs_done, lw.size());
  if (lines.empty()) epochs_done = 0;
  double best_acc = 0, final_acc = 0, modeled_comm = 0;
  std::uint64_t prev_step = 0;
  experiments::WireBytes prev_up, prev_down;
  experiments::StepTraffic last_traffic;
  double total_up[3] = {0, 0, 0}, total_down[3] = {0, 0, 0};
  for (std::size_t e = 0; e < epochs_done; ++e) {
    const nlohmann::json& j0 = lines[0][e];
    experiments::WireBytes up, down;
    experiments::StepTraffic t;
    const auto step = j0["step"].get<std::uint64_t>();
    const double seg = static_cast<double>(step - prev_step);
    t.num_shards = n_shards;
    t.shard_fraction = shard_fraction;
    for (std::uint32_t w = 0; w < n_workers; ++w) {
      const nlohmann::json& j = lines[w][e];
      const experiments::WireBytes wu{num(j, "up", "payload_bytes"), num(j, "up", "framing_bytes"), num(j, "up", "tcpip_bytes")};
      const experiments::WireBytes wd{num(j, "down", "payload_bytes"), num(j, "down", "framing_bytes"),
                               num(j, "down", "tcpip_bytes")};
      up.payload_bytes += wu.payload_bytes;
      up.framing_bytes += wu.framing_bytes;
      up.tcpip_bytes += wu.tcpip_bytes;
      down.payload_bytes += wd.payload_bytes;
      down.framing_bytes += wd.framing_bytes;
      down.tcpip_bytes += wd.tcpip_bytes;
    }
    if (seg > 0) {
      const double per = 1.0 / (seg * n_workers);
      t.up.assign(n_workers, {(up.payload_bytes - prev_up.payload_bytes) * per,
                              (up.framing_bytes - prev_up.framing_bytes) * per,
                              (up.tcpip_bytes - prev_up.tcpip_bytes) * per});
      t.down.assign(n_workers, {(down.payload_bytes - prev_down.payload_bytes) * per,
                                (down.framing_bytes - prev_down.framing_bytes) * per,
                                (down.tcpip_bytes - prev_down.tcpip_bytes) * per});
      modeled_comm += seg * experiments::modeled_step_time(link, t).total_s;
      last_traffic = t;
    }
    prev_step = step;
    prev_up = up;
    prev_down = down;
    const double acc = j0.value("test_accuracy", 0.0);
    best_acc = std::max(best_acc, acc);
    final_acc = acc;
    run->append_metrics(std::vector<MetricValue>{
        static_cast<std::int64_t>(e + 1), static_cast<std::int64_t>(step), j0["seconds"].get<double>(),
        j0.value("train_loss", 0.0), j0.value("train_accuracy", 0.0), j0.value("test_loss", 0.0), acc,
        up.payload_bytes, up.framing_bytes, up.tcpip_bytes, down.payload_bytes, down.framing_bytes, down.tcpip_bytes,
        modeled_comm});
    total_up[0] = up.payload_bytes;
    total_up[1] = up.framing_bytes;
    total_up[2] = up.tcpip_bytes;
    total_down[0] = down.payload_bytes;
    total_down[1] = down.framing_bytes;
    total_down[2] = down.tcpip_bytes;
  }
  if (netem) {
    nlohmann::json veth = nlohmann::json::array();
    for (std::uint32_t h = 0; h < cluster->size(); ++h) {
      const auto c = cluster->counters(h);
      veth.push_back({{"host", h < n_shards ? "shard" + std::to_string(h) : "worker" + std::to_string(h - n_shards)},
                      {"tx_bytes", c.tx_bytes - veth_before[h].tx_bytes},
                      {"rx_bytes", c.rx_bytes - veth_before[h].rx_bytes}});
    }
    summary["veth_bytes"] = veth;
    double veth_workers = 0;
    for (std::uint32_t w = 0; w < n_workers; ++w) {
      veth_workers += veth[n_shards + w]["tx_bytes"].get<double>() + veth[n_shards + w]["rx_bytes"].get<double>();
    }
    const double counted = total_up[0] + total_up[1] + total_up[2] + total_down[0] + total_down[1] + total_down[2];
    summary["counted_over_veth_bytes"] = veth_workers > 0 ? counted / veth_workers : 0.0;
    cluster->teardown();
  }
  if (!failure.empty() || epochs_done == 0) {
    summary["status"] = "failed";
    summary["error"] = failure.empty() ? "no epoch completed" : failure;
    run->write_summary(summary);
    run->event("failed", {{"error", summary["error"]}});
    throw std::runtime_error(summary["error"].get<std::string>());
  }
  const nlohmann::json& last0 = lines[0][epochs_done - 1];
  const double steps = last0["step"].get<double>();
  double compute_per_step = 0;
  if (final0.contains("stages") && steps > 0) {
    double total = 0;
    for (const auto& [k, v] : final0["stages"].items()) total += v.get<double>();
    const double comm_s = final0["stages"].value("send", 0.0) + final0["stages"].value("pull_wait", 0.0);
    compute_per_step = (total - comm_s) / steps;  // one worker's stages: its own steps
  }
  summary["status"] = "complete";
  summary["steps"] = last0["step"];
  summary["seconds"] = last0["seconds"];
  summary["final_test_accuracy"] = final_acc;
  summary["best_test_accuracy"] = best_acc;
  summary["bytes_up"] = total_up[0];
  summary["bytes_down"] = total_down[0];
  summary["compute_seconds_per_step"] = compute_per_step;
  summary["shard_fraction"] = shard_fraction;
  if (final0.contains("stages")) summary["stages"] = final0["stages"];
  summary["bottleneck"] = final0.value("bottleneck", std::string("n/a"));
  summary["framing_bytes_source"] = "counted by each worker's ZeroMQ transport (comm/accounting.h)";
  nlohmann::json modeled = nlohmann::json::object();
  if (!last_traffic.up.empty()) {
    for (const auto& rl : report_links) modeled[rl.name] = experiments::modeled_step_time(rl, last_traffic).total_s;
  }
  summary["modeled_step_comm_s"] = modeled;
  run->write_summary(summary);
  run->event("end", {{"steps", summary["steps"]}, {"final_test_accuracy", final_acc}});
  log->info("done: {} steps, final test accuracy {:.2f}% (best {:.2f}%), bottleneck {}; {}", steps, 100 * final_acc,
            100 * best_acc, summary["bottleneck"].get<std::string>(), run->path().string());
  return kExitOk;
}

// A process of a cluster described by a file or a launcher (srun, mpirun): its global
// rank (comm/cluster.h) decides whether it is a shard or a worker.
int run_cluster_rank(TrainOptions o) {
  const comm::LauncherRank lr = comm::rank_from_environment();
  if (!lr.found) {
    throw UsageError("--cluster " + o.cluster + ": no launcher rank (run under srun/mpirun), or start each process "
                     "with --role shard|worker --rank R");
  }
  std::vector<std::string> endpoints;
  if (o.cluster == "slurm" || o.cluster == "mpi") {
    if (o.endpoints.empty()) throw UsageError("--cluster " + o.cluster + " needs --endpoints (the shards' tcp://host:port)");
    std::stringstream ss(o.endpoints);
    std::string e;
    while (std::getline(ss, e, ',')) endpoints.push_back(e);
  } else {
    try {
      endpoints = comm::load_cluster_file(o.cluster).shard_endpoints();
    } catch (const std::runtime_error& e) {
      throw UsageError(e.what());
    }
  }
  o.topology.shards = static_cast<int>(endpoints.size());
  if (o.run.run_dir.empty()) throw UsageError("--cluster " + o.cluster + " needs --run-dir (shared by all ranks)");
  fs::create_directories(procs_dir(o));
  const comm::Role role = comm::role_of_rank(lr.rank, static_cast<std::uint32_t>(endpoints.size()));
  o.rank = static_cast<int>(role.index);
  std::string list;
  for (const auto& e : endpoints) list += (list.empty() ? "" : ",") + e;
  o.endpoints = list;
  if (role.is_shard) {
    const auto colon = endpoints[role.index].rfind(':');
    o.bind = "tcp://*:" + endpoints[role.index].substr(colon + 1);
    return run_shard_role(o);
  }
  return run_worker_role(o);
}

}  // namespace

int run_train(const TrainOptions& o, const OptionTable& table) {
  if (o.role == "shard") return run_shard_role(o);
  if (o.role == "worker") return run_worker_role(o);
  if (!o.role.empty()) throw UsageError("--role " + o.role + ": allowed shard | worker (or empty)");
  if (o.cluster == "sim") return run_sim(o, table);
  if (o.cluster == "local" || o.cluster == "netem") return run_multi(o, table);
  return run_cluster_rank(o);
}

int cmd_train(int argc, char** argv) {
  TrainOptions opt;
  OptionTable table("train", "Train a model with compressed gradient communication and write a run directory.");
  bind_train_options(&table, &opt);
  return run_command(table, argc, argv, [&] { return run_train(opt, table); });
}

}  // namespace gradzip::cli
