// `gradzip train`: options, and the run itself (trainer/train.h for the training, the
// run directory of comm/rundir.h, link models of comm/link_model.h).
#include "experiments/cmd_train.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sstream>

#include "comm/accounting.h"
#include "comm/layout.h"
#include "comm/link_model.h"
#include "comm/protocol.h"
#include "comm/rundir.h"
#include "experiments/commands.h"
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
  t->group("Quick runs");
  t->add("width", &o->width, "model base width in channels; 0 = the published width", Range{0, 4096});
  t->add("train-subset", &o->train_subset, "train on the first N training images; 0 = all", Range{0, 1e9});
  t->add("test-subset", &o->test_subset, "evaluate on the first N test images; 0 = all", Range{0, 1e9});
  t->add("torch-threads", &o->torch_threads, "torch intra-op threads per process; 0 = default", Range{0, 1024});
  bind_run_options(t, &o->run);
  t->add_check([o] {
    try {
      comm::parse_link(o->link);
      comm::parse_link_list(o->report_links);
    } catch (const comm::LinkModelError& e) {
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

using comm::MetricColumn;
using comm::MetricValue;

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
comm::WireBytes estimate_wire(double payload, double messages, double bare) {
  comm::WireBytes w;
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
      {"modeled_comm_s", "s", "modeled communication time on --link, cumulative (comm/link_model.h)"},
  };
}

nlohmann::json stages_json(const trainer::StageSeconds& s) {
  return {{"data_wait", s.data_wait}, {"h2d", s.h2d},   {"compute", s.compute},     {"d2h", s.d2h},
          {"encode", s.encode},       {"send", s.send}, {"pull_wait", s.pull_wait}, {"apply", s.apply}};
}

int run_sim(const TrainOptions& o, const OptionTable& table) {
  const comm::LinkProfile link = comm::parse_link(o.link);
  const std::vector<comm::LinkProfile> report_links = comm::parse_link_list(o.report_links);

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

  comm::RunDirOptions rdo;
  rdo.log_level = o.run.log_level;
  const std::string dir = o.run.run_dir.empty() ? comm::default_run_dir("train") : o.run.run_dir;
  auto run = comm::RunDir::create(dir, rdo);
  run->write_config(table.to_ini());
  run->write_host_info(GRADZIP_TORCH_VERSION);
  run->declare_metrics(metric_columns());
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
  comm::WireBytes prev_up, prev_down;
  comm::StepTraffic last_traffic;
  auto on_epoch = [&](const trainer::EpochMetrics& m) {
    const double steps = static_cast<double>(m.steps);
    const double worker_steps = steps * cfg.workers;
    const comm::WireBytes up = estimate_wire(static_cast<double>(m.bytes_up), worker_steps * buckets,
                                             worker_steps * layout_shards);
    const comm::WireBytes down = estimate_wire(static_cast<double>(m.bytes_down), worker_steps * layout_shards,
                                               worker_steps * buckets);
    const double seg_steps = static_cast<double>(m.steps - prev_step);
    if (seg_steps > 0) {
      const double per = 1.0 / (seg_steps * cfg.workers);
      comm::StepTraffic t;
      t.num_shards = layout_shards;
      t.shard_fraction = shard_fraction;
      t.up.assign(cfg.workers, {(up.payload_bytes - prev_up.payload_bytes) * per,
                                (up.framing_bytes - prev_up.framing_bytes) * per,
                                (up.tcpip_bytes - prev_up.tcpip_bytes) * per});
      t.down.assign(cfg.workers, {(down.payload_bytes - prev_down.payload_bytes) * per,
                                  (down.framing_bytes - prev_down.framing_bytes) * per,
                                  (down.tcpip_bytes - prev_down.tcpip_bytes) * per});
      modeled_comm += seg_steps * comm::modeled_step_time(link, t).total_s;
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
    for (const auto& l : report_links) modeled[l.name] = comm::modeled_step_time(l, last_traffic).total_s;
  }
  summary["modeled_step_comm_s"] = modeled;
  run->write_summary(summary);
  run->event("end", {{"steps", r.steps}, {"final_test_accuracy", r.final_test_accuracy}});
  log->info("done: {} steps, final test accuracy {:.2f}% (best {:.2f}%), bottleneck {}; {}", r.steps,
            100 * r.final_test_accuracy, 100 * best_acc, r.bottleneck, run->path().string());
  return kExitOk;
}

int run_train(const TrainOptions& o, const OptionTable& table) {
  if (o.cluster == "sim") return run_sim(o, table);
  throw UsageError("--cluster " + o.cluster + ": not available in this build yet (sim works)");
}

}  // namespace

int cmd_train(int argc, char** argv) {
  TrainOptions opt;
  OptionTable table("train", "Train a model with compressed gradient communication and write a run directory.");
  bind_train_options(&table, &opt);
  return run_command(table, argc, argv, [&] { return run_train(opt, table); });
}

}  // namespace gradzip::cli
