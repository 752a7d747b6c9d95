// --cluster slurm|mpi|FILE: a process of a cluster started by a launcher (srun, mpirun)
// or by hand with the launcher's rank variables. Its global rank (comm/cluster.h) makes
// it a shard (ranks [0, M)) or a worker (ranks [M, M + N)); under a collective
// aggregation (--aggregation allreduce etc.) there are no shards and rank R is worker R.
// Worker 0 also records the run: it writes --run-dir's config.ini, host.json,
// metrics.csv (one row per epoch, as epochs complete), events.jsonl and summary.json,
// merging every worker's procs/worker<R>.jsonl; so --run-dir must be a directory every
// rank can write and worker 0 can read (a shared file system, or one host).
//
// Collective ranks meet in a fresh store that rank 0 opens under the run's rendezvous
// directory (comm/collective_store.h: no launcher clears it for them), each listening on
// its "worker" host of the cluster file, or on this node's hostname under mpi/slurm
// (--collective-host overrides both).
#include <chrono>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "comm/cluster.h"
#include "comm/collective_store.h"
#include "experiments/train/accounting.h"
#include "experiments/train/config.h"
#include "experiments/train/collective.h"
#include "experiments/train/run.h"

namespace gradzip::cli {
namespace fs = std::filesystem;
namespace {

/// Worker 0's recording of a cluster run into --run-dir.
class ClusterRecord {
 public:
  ClusterRecord(const TrainOptions& o, const OptionTable& table)
      : plan_(plan_run(o)),
        link_(experiments::parse_link(o.link)),
        run_(open_run_dir(o, table, /*allow_existing=*/true)),
        lines_(run_->path() / "procs", plan_.cfg.workers),
        recorder_(run_.get(),
                  {link_, experiments::parse_link_list(o.report_links), plan_.cfg.workers,
                   plan_.cfg.placement.num_shards, plan_.shard_fraction, plan_.cfg.epochs},
                  summary_facts(o, plan_, link_.name)),
        wait_s_(std::max(60.0, o.topology.worker_timeout_s)) {
    recorder_.begin("train: " + std::to_string(plan_.cfg.workers) + " workers + " +
                    std::to_string(uses_collective(o) ? 0 : plan_.cfg.placement.num_shards) + " shards (" +
                    o.cluster + " ranks" +
                    (uses_collective(o) ? ", --aggregation " + o.aggregation.aggregation : std::string()) + "), " +
                    plan_.cfg.model + " on " + plan_.cfg.dataset + ", compressor " + plan_.compressor_spec +
                    ", run dir " + run_->path().string() + " (recorded by worker 0)");
  }

  /// After each of worker 0's epochs: records every epoch all workers reported so far.
  void epoch() {
    lines_.poll();
    lines_.record_new(&recorder_);
  }

  /// After worker 0 finished: waits (bounded) for the other workers' remaining lines,
  /// then writes the final summary, or a failed one naming the missing workers.
  void finish() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s_);
    for (;;) {
      lines_.poll();
      lines_.record_new(&recorder_);
      if (lines_.missing_finals().empty() || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (const std::string missing = lines_.missing_finals(); !missing.empty()) {
      const std::string error = "no final line from " + missing + " in " + lines_.file(0).parent_path().string() +
                                " after " + std::to_string(static_cast<int>(wait_s_)) +
                                " s (is --run-dir on a file system every rank shares?)";
      recorder_.fail(error);
      throw std::runtime_error(error);
    }
    recorder_.complete(lines_.results(recorder_));
  }

  void fail(const std::string& error) { recorder_.fail(error); }

 private:
  RunPlan plan_;
  experiments::LinkProfile link_;
  std::unique_ptr<runlog::RunDir> run_;
  experiments::WorkerEpochLog lines_;
  experiments::RunRecorder recorder_;
  double wait_s_;
};

std::vector<std::string> cluster_endpoints(const TrainOptions& o) {
  if (o.cluster == "slurm" || o.cluster == "mpi") {
    if (o.endpoints.empty()) throw UsageError("--cluster " + o.cluster + " needs --endpoints (the shards' tcp://host:port)");
    std::vector<std::string> endpoints;
    std::stringstream ss(o.endpoints);
    for (std::string e; std::getline(ss, e, ',');) endpoints.push_back(e);
    return endpoints;
  }
  try {
    return comm::load_cluster_file(o.cluster).shard_endpoints();
  } catch (const std::runtime_error& e) {
    throw UsageError(e.what());
  }
}

/// Worker 0 records the run around its own training; the others only train.
int run_recorded_worker(const TrainOptions& o, const OptionTable& table) {
  if (o.rank != 0) return run_worker_role(o);
  ClusterRecord record(o, table);
  try {
    run_worker_role(o, [&record] { record.epoch(); });
  } catch (const std::exception& e) {
    record.fail(e.what());
    throw;
  }
  record.finish();
  return kExitOk;
}

/// The address peers reach this rank at: --collective-host, else the rank's "worker"
/// host in the cluster file, else (mpi, slurm) this node's hostname.
std::string collective_host(const TrainOptions& o, const comm::LauncherRank& lr) {
  if (!o.aggregation.collective_host.empty()) return o.aggregation.collective_host;
  if (o.cluster == "slurm" || o.cluster == "mpi") {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
      throw UsageError("--cluster " + o.cluster + ": cannot read this node's hostname; give --collective-host ADDR");
    }
    return name;
  }
  comm::ClusterSpec spec;
  try {
    spec = comm::load_cluster_file(o.cluster);
  } catch (const std::runtime_error& e) {
    throw UsageError(e.what());
  }
  if (spec.workers.size() != lr.size) {
    throw UsageError(spec.origin + " lists " + std::to_string(spec.workers.size()) + " \"worker\" hosts, but " +
                     std::to_string(lr.size) + " ranks (" + lr.source + ") run --aggregation " +
                     o.aggregation.aggregation + ": one entry per rank");
  }
  return comm::host_of(spec.workers[lr.rank]);
}

/// A rank of a collective run: worker `lr.rank`, no shards.
int run_collective_rank(TrainOptions o, const OptionTable& table, const comm::LauncherRank& lr) {
  if (lr.size != static_cast<std::uint32_t>(o.topology.workers)) {
    throw UsageError("--cluster " + o.cluster + ": " + std::to_string(lr.size) + " ranks (" + lr.source +
                     "), but --aggregation " + o.aggregation.aggregation + " runs one rank per worker: --workers " +
                     std::to_string(o.topology.workers) + " needs " + std::to_string(o.topology.workers) + " ranks");
  }
  o.aggregation.collective_host = collective_host(o, lr);
  o.rank = static_cast<int>(lr.rank);
  fs::create_directories(fs::path(o.run.run_dir) / "procs");
  const std::string base = collective_store_dir(o);
  comm::FreshStore store;  // rank 0's beacon beats for the whole run (the others join once)
  if (lr.rank == 0) {
    store = comm::open_fresh_store(base, 0.5);
  } else {
    store.dir = comm::join_fresh_store(base, 0.5, o.aggregation.collective_timeout_s);
  }
  o.aggregation.collective_dir = store.dir;
  return run_recorded_worker(o, table);
}

}  // namespace

int run_cluster_rank(TrainOptions o, const OptionTable& table) {
  const comm::LauncherRank lr = comm::rank_from_environment();
  if (!lr.found) {
    throw UsageError("--cluster " + o.cluster + ": no launcher rank (run under srun/mpirun), or start each process "
                     "with --role shard|worker --rank R");
  }
  if (o.run.run_dir.empty()) throw UsageError("--cluster " + o.cluster + " needs --run-dir (shared by all ranks)");
  if (uses_collective(o)) return run_collective_rank(o, table, lr);
  const std::vector<std::string> endpoints = cluster_endpoints(o);
  o.topology.shards = static_cast<int>(endpoints.size());
  if (lr.size != endpoints.size() + static_cast<std::size_t>(o.topology.workers)) {
    throw UsageError("--cluster " + o.cluster + ": " + std::to_string(lr.size) + " ranks (" + lr.source + "), but " +
                     std::to_string(endpoints.size()) + " shards + --workers " + std::to_string(o.topology.workers) +
                     " need " + std::to_string(endpoints.size() + static_cast<std::size_t>(o.topology.workers)));
  }
  fs::create_directories(fs::path(o.run.run_dir) / "procs");
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
  return run_recorded_worker(o, table);
}

}  // namespace gradzip::cli
