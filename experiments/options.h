// Option groups shared by several commands (train, ps, worker, launch). Plain structs
// with their defaults in-class: no Boost, no torch, so any layer may read them. The
// `bind_*` functions register a group's fields with a command's cli::OptionTable; the
// struct must outlive the table.
#pragma once

#include <cstdint>
#include <string>

#include "comm/optimizer.h"
#include "comm/shard.h"
#include "experiments/cli.h"

namespace gradzip::cli {

/// The CLI's optimizer defaults: lr 0.1, momentum 0.9, weight decay 5e-4, cosine schedule
/// (Loshchilov & Hutter, 2017, SGDR without restarts), gamma 0.1.
comm::OptimizerOptions cli_default_sgd();

/// SGD on the PS shards' flat parameter partitions, as the user states it: the per-step
/// optimizer of comm/optimizer.h (lr, momentum, Nesterov, weight decay, schedule, step
/// factor) with the CLI's defaults, plus the two settings given in epochs, which the
/// training-config builder turns into steps (experiments/train/config.h).
struct OptimizerOptions {
  /// lr, momentum, nesterov, weight_decay, schedule and gamma are options; warmup_steps,
  /// step_size and total_steps are derived from the epoch settings below.
  comm::OptimizerOptions sgd = cli_default_sgd();
  std::string lr_milestones = "";  ///< comma-separated epochs for the step schedule, e.g. "30,60"
  double warmup_epochs = 0.0;      ///< linear warm-up from lr/10 over this many epochs (Goyal et al., 2017)
};
void bind_optimizer_options(OptionTable* table, OptimizerOptions* opt);

/// What goes on the wire and how gradients are cut into buckets.
struct CompressionOptions {
  std::string compressor = "identity";  ///< uplink spec "[memory+]codec[:k=v,...]", see `gradzip compressors`
  std::string memory = "";              ///< overrides the spec's memory part when not empty
  std::string compressor_rules = "";    ///< per-tensor rules (quant/rules.h): FILE, or inline "glob=spec;..."
  std::string downlink = "dense";       ///< "dense" (fp32 parameters) or a codec spec for the parameter delta
  double bucket_mb = 25.0;              ///< gradient bucket size in MiB (2^20 bytes of fp32)
  double first_bucket_mb = 0.0;         ///< size of the bucket of the last layers (backward's first); 0 = bucket_mb
  std::uint64_t min_compress_numel = 1024;  ///< tensors with fewer elements are sent dense (identity)
  std::int64_t downlink_resync = 0;     ///< compressed downlink: dense resync every N steps; 0 = never
};
void bind_compression_options(OptionTable* table, CompressionOptions* opt);

/// Workers, shards and how parameters are placed on shards.
struct TopologyOptions {
  int workers = 2;                       ///< number of worker processes/threads
  int shards = 1;                        ///< number of parameter-server shards
  std::string placement = "balanced";    ///< balanced | round-robin (placement_strategy)
  comm::SyncMode mode = comm::SyncMode::kSync;
  int slack = 0;                         ///< max steps a worker may lead the slowest (ssp only)
  double worker_timeout_s = 60.0;        ///< a worker silent this long is declared dead (seconds)
  /// Workers send a heartbeat to every shard they sent nothing to for this long, and
  /// announce it in their hello: a shard then declares a silent worker dead after
  /// worker_timeout_s even with no step pending (a killed async/SSP worker). 0 = off.
  double heartbeat_interval_s = 0.0;
  std::string straggler = "";            ///< "W:FACTOR": worker W's compute is FACTOR times slower; "" = none
};

/// --straggler W:FACTOR, parsed. Throws UsageError naming the expected form.
struct Straggler {
  int worker = -1;      ///< -1: none
  double factor = 1.0;  ///< >= 1
};
Straggler parse_straggler(const std::string& text, int workers);
void bind_topology_options(OptionTable* table, TopologyOptions* opt);

/// comm/layout.h's strategy of a CLI placement name: balanced (largest tensor to the
/// least-loaded shard), round-robin, partitioned. Throws UsageError naming the allowed
/// names.
comm::PlacementStrategy placement_strategy(const std::string& name);

/// Model and data for a worker.
struct ModelDataOptions {
  std::string model = "resnet20";  ///< model name (trainer/models)
  std::string dataset = "fashion-mnist";
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  int batch_size = 128;            ///< samples per worker per step
  int loader_threads = 2;          ///< data-loader threads per worker
  std::string device = "cpu";      ///< cpu | cuda | cuda:N | auto
};
void bind_model_data_options(OptionTable* table, ModelDataOptions* opt);

/// Where a run writes, and how it logs.
struct RunOptions {
  std::string run_dir = "";        ///< empty: runs/<UTC timestamp>-<command>
  std::string log_level = "info";  ///< trace | debug | info | warn | error
  std::uint64_t seed = 42;         ///< master seed (Philox keys derive from it)
  int checkpoint_every = 0;        ///< epochs between checkpoints; 0 = never
  std::string checkpoint_dir = ""; ///< empty: <run dir>/checkpoints
  std::uint64_t resume_step = 0;   ///< > 0: restore the checkpoints of this step (set by train --resume)
};
void bind_run_options(OptionTable* table, RunOptions* opt);

/// True for "cpu", "cuda", "cuda:N" (N a non-negative integer) and "auto".
bool valid_device(const std::string& device);

}  // namespace gradzip::cli
