// --cluster local|netem: this process writes the run directory and starts M shard and N
// worker processes under comm::run_launch, each `gradzip train --config <run>/config.ini
// --role shard|worker --rank R ...` (a fresh exec: no fork of a process that already ran
// torch). Shards serve over ZeroMQ; workers append one JSON line per epoch, with their
// real byte counters, to <run>/procs/worker<R>.jsonl, which this process merges into
// metrics.csv as the epochs complete (WorkerEpochLog, RunRecorder). Under --aggregation
// allreduce|allgather no shard is started: the workers rendezvous in <run>/collective/ and
// aggregate with Gloo collectives (experiments/train/collective.h). netem starts each
// process in its own network namespace (experiments/netem.h, the launcher's spawn hook)
// shaped to --link and records the veth byte counters.
#include <unistd.h>

#include <fstream>
#include <memory>

#include "comm/launch.h"
#include "experiments/curve_keys.h"
#include "experiments/netem.h"
#include "experiments/train/collective.h"
#include "experiments/train/accounting.h"
#include "experiments/train/config.h"
#include "experiments/train/resume.h"
#include "experiments/train/run.h"

namespace gradzip::cli {
namespace fs = std::filesystem;
namespace {

std::string self_executable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("cannot resolve /proc/self/exe");
  return std::string(buf, static_cast<std::size_t>(n));
}

/// The emulated network of --cluster netem and what it applied.
struct Netem {
  std::unique_ptr<experiments::NetemCluster> cluster;
  bool delay_applied = false;
  std::vector<experiments::InterfaceCounters> before;  ///< veth counters at the start
};

Netem make_netem(const TrainOptions& o, const experiments::LinkProfile& link, std::uint32_t hosts) {
  const std::string why = experiments::netem_unavailable_reason();
  if (!why.empty()) throw UsageError("--cluster netem: " + why);
  experiments::NetemOptions no;
  no.num_hosts = hosts;
  no.shaping.rate_bit_per_s = link.bandwidth_bytes_per_s * 8;
  Netem n;
  if (link.latency_s > 0 && o.netem_delay != "off") {
    const std::string no_delay = experiments::netem_delay_unavailable_reason();
    if (no_delay.empty()) {
      no.shaping.delay_s = link.latency_s;
      n.delay_applied = true;
    } else if (o.netem_delay == "on") {
      throw UsageError("--netem-delay on: " + no_delay);
    }
  }
  experiments::remove_stale_netem();
  n.cluster = std::make_unique<experiments::NetemCluster>(no);
  return n;
}

/// summary.json's veth_bytes and counted_over_veth_bytes: what the namespaces' interfaces
/// counted against what the workers counted.
void record_veth(const Netem& n, std::uint32_t shards, std::uint32_t workers, experiments::RunRecorder* recorder) {
  nlohmann::json veth = nlohmann::json::array();
  for (std::uint32_t h = 0; h < n.cluster->size(); ++h) {
    const auto c = n.cluster->counters(h);
    veth.push_back({{"host", h < shards ? "shard" + std::to_string(h) : "worker" + std::to_string(h - shards)},
                    {"tx_bytes", c.tx_bytes - n.before[h].tx_bytes},
                    {"rx_bytes", c.rx_bytes - n.before[h].rx_bytes}});
  }
  double veth_workers = 0;
  for (std::uint32_t w = 0; w < workers; ++w) {
    veth_workers += veth[shards + w]["tx_bytes"].get<double>() + veth[shards + w]["rx_bytes"].get<double>();
  }
  const experiments::EpochRow& last = recorder->last();
  const double counted = last.up.payload_bytes + last.up.framing_bytes + last.up.tcpip_bytes +
                         last.down.payload_bytes + last.down.framing_bytes + last.down.tcpip_bytes;
  recorder->summary()["veth_bytes"] = veth;
  recorder->summary()["counted_over_veth_bytes"] = veth_workers > 0 ? counted / veth_workers : 0.0;
}

/// Every key file the processes will read, before any is started (experiments/curve_keys.h).
void check_curve_keys(const std::string& dir, std::uint32_t workers) {
  try {
    experiments::shard_curve_files(dir);
    for (std::uint32_t w = 0; w < workers; ++w) experiments::worker_curve_keys(dir, w);
  } catch (const experiments::CurveKeyError& e) {
    throw UsageError(e.what());
  }
}

/// A resumed run's procs/: the shards' old endpoint files go (the launcher waits for new
/// ones) and each worker's epoch lines move to worker<R>.segment<N>.jsonl, so the new
/// lines start a file of their own.
void set_aside_previous_processes(const fs::path& procs, std::uint32_t shards, std::uint32_t workers) {
  std::error_code ec;
  for (std::uint32_t s = 0; s < shards; ++s) fs::remove(procs / ("shard" + std::to_string(s) + ".ep"), ec);
  for (std::uint32_t w = 0; w < workers; ++w) {
    const fs::path lines = procs / ("worker" + std::to_string(w) + ".jsonl");
    if (!fs::exists(lines, ec)) continue;
    for (int n = 1;; ++n) {
      const fs::path old = procs / ("worker" + std::to_string(w) + ".segment" + std::to_string(n) + ".jsonl");
      if (fs::exists(old, ec)) continue;
      fs::rename(lines, old);
      break;
    }
  }
}

}  // namespace

int run_local_cluster(const TrainOptions& o, const OptionTable& table, const ResumeState* resume) {
  const bool netem = o.cluster == "netem";
  const experiments::LinkProfile link = experiments::parse_link(o.link);
  const RunPlan plan = plan_run(o);
  const std::uint32_t n_workers = plan.cfg.workers;
  const bool collective = uses_collective(o);  // no shards: the workers aggregate among themselves
  const std::uint32_t n_shards = collective ? 0 : plan.cfg.placement.num_shards;
  if (!o.curve_keys.empty()) check_curve_keys(o.curve_keys, n_workers);
  Netem net;
  if (netem) net = make_netem(o, link, n_shards + n_workers);

  auto run = resume ? reopen_run_dir(o, table, *resume) : open_run_dir(o, table);
  const fs::path procs = run->path() / "procs";
  fs::create_directories(procs);
  if (resume) set_aside_previous_processes(procs, n_shards, n_workers);
  experiments::RunShape shape{link, experiments::parse_link_list(o.report_links), n_workers,
                              plan.cfg.placement.num_shards, plan.shard_fraction, plan.cfg.epochs};
  experiments::RunRecorder recorder(run.get(), shape, summary_facts(o, plan, link.name));
  if (netem) {
    recorder.summary()["netem"] = {{"rate_bit_per_s", link.bandwidth_bytes_per_s * 8},
                                   {"delay_s", net.delay_applied ? link.latency_s : 0.0},
                                   {"delay_applied", net.delay_applied},
                                   {"cluster_id", net.cluster->id()}};
    if (link.latency_s > 0 && !net.delay_applied) {
      run->logger()->warn("netem: link latency {} not applied (sch_netem unavailable or --netem-delay off); rate only",
                          experiments::format_seconds(link.latency_s));
    }
  }
  recorder.begin("train: " + std::to_string(n_workers) + " worker + " + std::to_string(n_shards) +
                 " shard processes" + (collective ? " (--aggregation " + o.aggregation.aggregation + ")" : "") + " (" +
                 (netem ? "netem namespaces, " + experiments::format_bandwidth(link.bandwidth_bytes_per_s)
                        : std::string("loopback")) +
                 "), " + plan.cfg.model + " on " + plan.cfg.dataset + ", compressor " + plan.compressor_spec +
                 ", run dir " + run->path().string());
  if (resume) continue_recording(*resume, run.get(), &recorder);

  comm::LaunchOptions lo;
  const std::string self = self_executable();
  // --compressor auto: the children use this process's choice (a rule file in the run
  // directory), not a measurement of their own.
  std::vector<std::string> auto_args;
  if (plan.compressor_facts.contains("auto")) {
    const fs::path rules = run->path() / "auto_rules.txt";
    std::ofstream(rules) << plan.cfg.compressor_rules;
    auto_args = {"--compressor", "identity", "--compressor-rules", rules.string()};
  }
  auto base_args = [&](const std::string& role, std::uint32_t rank) {
    std::vector<std::string> argv{self,     "train",   "--config", (run->path() / "config.ini").string(),
                                  "--role", role,      "--rank",   std::to_string(rank),
                                  "--run-dir", run->path().string(), "--log-level", o.run.log_level,
                                  "--resume-step", std::to_string(o.run.resume_step)};
    argv.insert(argv.end(), auto_args.begin(), auto_args.end());
    return argv;
  };
  for (std::uint32_t s = 0; s < n_shards; ++s) {
    auto argv = base_args("shard", s);
    argv.insert(argv.end(), {"--bind", netem ? "tcp://" + net.cluster->address(s) + ":5555" : "tcp://127.0.0.1:0"});
    lo.shard_commands.push_back(argv);
    lo.shard_endpoint_files.push_back((procs / ("shard" + std::to_string(s) + ".ep")).string());
  }
  for (std::uint32_t w = 0; w < n_workers; ++w) {
    lo.worker_commands.push_back(base_args("worker", w));
    if (collective && netem) lo.worker_commands.back().insert(lo.worker_commands.back().end(), {"--collective-host", net.cluster->address(w)});
  }
  if (collective) {
    // A fresh rendezvous store for this start (a stale one would pair dead addresses).
    std::error_code ec;
    fs::remove_all(collective_store_dir(o), ec);
  }
  lo.on_shards_ready = [](const std::vector<std::string>& endpoints, std::vector<std::vector<std::string>>* workers) {
    std::string list;
    for (const auto& e : endpoints) list += (list.empty() ? "" : ",") + e;
    for (auto& argv : *workers) argv.insert(argv.end(), {"--endpoints", list});
  };
  lo.log_dir = procs.string();
  lo.timeout_s = o.process_timeout_s;
  lo.shard_start_timeout_s = 60;  // torch + data load
  lo.shard_exit_grace_s = 30;     // shards exit once every worker said goodbye
  if (netem) {
    lo.spawn = experiments::netns_spawner(*net.cluster);
    for (std::uint32_t h = 0; h < net.cluster->size(); ++h) net.before.push_back(net.cluster->counters(h));
  }
  experiments::WorkerEpochLog lines(procs, n_workers, resume ? resume->kept.size() : 0);
  lo.on_progress = [&] {
    lines.poll();
    lines.record_new(&recorder);
  };
  std::string failure;
  comm::run_launch(lo, &failure);
  lines.poll();
  lines.record_new(&recorder);
  if (netem) {
    record_veth(net, n_shards, n_workers, &recorder);
    net.cluster->teardown();
  }
  if (!failure.empty() || recorder.epochs_recorded() == 0) {
    const std::string error = failure.empty() ? "no epoch completed" : failure;
    recorder.fail(error);
    throw std::runtime_error(error);
  }
  recorder.complete(lines.results(recorder));
  return kExitOk;
}

}  // namespace gradzip::cli
