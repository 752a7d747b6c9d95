// Options of `gradzip train` (and of `ps` and `launch`, which are train under other
// names) and of `gradzip worker`.
//
// TrainingOptions are what every process of one run must agree on (model, data,
// optimizer, compression, topology, seed): train, ps, launch and worker bind them with
// the same function, and make_train_config (experiments/train/config.h) is the one place
// that turns them into the trainer's config. Adding such an option (e.g. a
// data-augmentation spec) is: a field here, one `t->add` in bind_training_options, one
// line in make_train_config; every command then accepts it in --help, config files and
// the run directory's config.ini.
//
// No torch, no Boost in this header.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "experiments/options.h"

namespace gradzip::cli {

/// How the workers' gradients are aggregated: the parameter server, or a collective among
/// the workers (comm/collective_transport.h, Gloo over TCP; experiments/train/collective.h).
struct AggregationOptions {
  std::string aggregation = "ps";     ///< ps | allreduce | allgather
  double collective_timeout_s = 60.0; ///< every collective call and the rendezvous (seconds)
  std::string collective_dir = "";    ///< rendezvous store shared by the ranks; "" = <run dir>/collective/step-<resume step>
  /// Address this rank listens on for its peers; "" = 127.0.0.1 (sim, local), the
  /// namespace's (netem), the rank's "worker" host (cluster file), this node's hostname
  /// (mpi, slurm).
  std::string collective_host = "";
};

/// What every process of a run shares.
struct TrainingOptions {
  ModelDataOptions data;
  CompressionOptions compression;
  TopologyOptions topology;
  OptimizerOptions optimizer;
  AggregationOptions aggregation;
  RunOptions run;
  int epochs = 10;                ///< passes over the training set
  std::int64_t max_steps = 0;     ///< stop after this many steps per worker; 0 = no limit
  int eval_every = 1;             ///< epochs between test-set evaluations
  // -- data subset and model size (quick runs), execution
  int width = 0;                  ///< model base width (channels); 0 = the published width
  std::int64_t train_subset = 0;  ///< train on the first N training images; 0 = all
  std::int64_t test_subset = 0;   ///< evaluate on the first N test images; 0 = all
  int torch_threads = 0;          ///< intra-op threads per process; 0 = torch's default
  // -- the worker's step pipeline
  std::string overlap = "on";     ///< on: push buckets from autograd during backward (CPU) | off: sequential
  int encode_threads = 2;         ///< threads encoding buckets while backward runs (overlap on)
  std::string inject_fault = "";  ///< testing: "hook:STEP" or "push:STEP" fails worker 0 there; "" = none
  // -- augmentation and evaluation (trainer/augment_spec.h)
  std::string augment = "none";   ///< training-time augmentation spec, e.g. "crop:pad=4,flip"
  bool tta = false;               ///< evaluate over flips and 2-pixel shifts (test-time augmentation)
  // -- transport security
  std::string curve_keys = "";    ///< directory of `gradzip keys` (experiments/curve_keys.h); "" = no CURVE
};

/// --inject-fault, parsed: "hook:STEP" or "push:STEP" ("" = none).
struct InjectedFault {
  std::string kind;        ///< "", "hook" or "push"
  std::uint64_t step = 0;
};
/// Throws UsageError naming the expected form.
InjectedFault parse_inject_fault(const std::string& text);

/// Binds every TrainingOptions field, in --help order: model and data, training,
/// optimizer, compression, topology, then the command's own groups (`command_groups`,
/// may be empty), then quick runs and the run directory.
void bind_training_options(OptionTable* table, TrainingOptions* opt, const std::function<void()>& command_groups = {});

/// `gradzip train` (and ps, launch): the shared options plus how the run is spread.
struct TrainOptions : TrainingOptions {
  std::string link = "10gbe";  ///< link model profile (experiments/link_model.h)
  bool sim_link_delay = false; ///< sim: each worker waits for its bytes to cross --link's bandwidth
  /// sim (one process, modeled links) | local (processes on this host) | netem (network
  /// namespaces with tc shaping; root) | slurm | mpi | path to a cluster file.
  std::string cluster = "sim";
  /// netem: apply the link's latency with sch_netem: on | off | if-available.
  std::string netem_delay = "if-available";
  std::string report_links = "eth1g,eth10g,eth25g,eth100g,pcie3";  ///< profiles modeled in summary.json
  double process_timeout_s = 7200;  ///< local/netem: kill every process after this long (seconds)
  // -- one process of a multi-process run (set by --cluster local/netem for their
  //    children, or by hand / a launcher script for a real cluster)
  std::string role = "";       ///< "" (orchestrate) | shard | worker
  int rank = 0;                ///< shard id or worker rank of this process
  std::string endpoints = "";  ///< comma-separated shard endpoints (tcp://host:port), shard 0 first
  std::string bind = "";       ///< shard: endpoint to bind (default tcp://127.0.0.1:0)
  /// A run directory to continue (experiments/train/resume.h): its config.ini is the
  /// configuration, options given with it override that; "" = a new run.
  std::string resume = "";
};

/// Registers every train option on `table`, bound to `opt`.
void bind_train_options(OptionTable* table, TrainOptions* opt);

/// True when `cluster` is one of the cluster-mode keywords (not a file path).
bool is_cluster_keyword(const std::string& cluster);

/// `gradzip worker`: the shared options plus where the shards are and which worker this is.
struct WorkerOptions : TrainingOptions {
  std::string connect = "tcp://127.0.0.1:5555";  ///< comma-separated shard endpoints, shard 0 first
  std::string cluster_file = "";                 ///< cluster file (overrides --connect)
  int worker_rank = 0;                           ///< this worker's index in [0, workers)
};

/// Registers every worker option on `table`, bound to `opt`.
void bind_worker_options(OptionTable* table, WorkerOptions* opt);

}  // namespace gradzip::cli
