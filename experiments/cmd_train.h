// `gradzip train`: one whole training run (workers, shards and links simulated in one
// process, or spread over local processes / network namespaces / a cluster), writing a
// run directory (experiments/runlog/rundir.h).
#pragma once

#include <cstdint>
#include <string>

#include "experiments/options.h"

namespace gradzip::cli {

struct TrainOptions {
  ModelDataOptions data;
  CompressionOptions compression;
  TopologyOptions topology;
  OptimizerOptions optimizer;
  RunOptions run;
  int epochs = 10;                ///< passes over the training set
  std::int64_t max_steps = 0;     ///< stop after this many steps per worker; 0 = no limit
  int eval_every = 1;             ///< epochs between test-set evaluations
  std::string link = "10gbe";     ///< link model profile (comm/link): pcie3|pcie4|pcie5|nvlink|1gbe|10gbe|25gbe|100gbe
  /// sim (one process, modeled links) | local (processes on this host) | netem (network
  /// namespaces with tc shaping; root) | slurm | mpi | path to a cluster file.
  std::string cluster = "sim";
  // -- data subset and model size (quick runs), execution
  int width = 0;                   ///< model base width (channels); 0 = the published width
  std::int64_t train_subset = 0;   ///< train on the first N training images; 0 = all
  std::int64_t test_subset = 0;    ///< evaluate on the first N test images; 0 = all
  int torch_threads = 0;           ///< intra-op threads per process; 0 = torch's default
  /// netem: apply the link's latency with sch_netem: on | off | if-available.
  std::string netem_delay = "if-available";
  std::string report_links = "eth1g,eth10g,eth25g,eth100g,pcie3";  ///< profiles modeled in summary.json
  double process_timeout_s = 7200;  ///< local/netem: kill every process after this long (seconds)
  // -- one process of a multi-process run (set by --cluster local/netem for their
  //    children, or by hand / a launcher script for a real cluster)
  std::string role = "";           ///< "" (orchestrate) | shard | worker
  int rank = 0;                    ///< shard id or worker rank of this process
  std::string endpoints = "";      ///< comma-separated shard endpoints (tcp://host:port), shard 0 first
  std::string bind = "";           ///< shard: endpoint to bind (default tcp://127.0.0.1:0)
};

/// Registers every train option on `table`, bound to `opt`.
void bind_train_options(OptionTable* table, TrainOptions* opt);

/// Runs what the resolved options describe: the whole job (role empty: sim, local, netem,
/// or this process's part of a FILE/slurm/mpi cluster) or one shard/worker process.
/// Also the body of `gradzip ps` (role shard) and `gradzip launch` (cluster local/netem).
int run_train(const TrainOptions& opt, const OptionTable& table);

/// True when `cluster` is one of the cluster-mode keywords (not a file path).
bool is_cluster_keyword(const std::string& cluster);

}  // namespace gradzip::cli
