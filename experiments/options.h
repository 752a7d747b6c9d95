// Option groups shared by several commands (train, ps, worker, launch). Plain structs
// with their defaults in-class: no Boost, no torch, so any layer may read them. The
// `bind_*` functions register a group's fields with a command's cli::OptionTable; the
// struct must outlive the table.
#pragma once

#include <cstdint>
#include <string>

#include "experiments/cli.h"

namespace gradzip::cli {

/// How the parameter-server shards aggregate pushes.
enum class SyncMode {
  kSync,   ///< a step completes when every live worker pushed it
  kAsync,  ///< apply each push at once (Hogwild-style PS)
  kSsp,    ///< stale-synchronous parallel: a worker may run `slack` steps ahead (Ho et al., 2013)
};
const char* sync_mode_name(SyncMode mode);

/// Learning-rate schedule applied per step.
enum class LrSchedule {
  kConstant,
  kStep,    ///< multiply by lr_gamma at each epoch in lr_milestones
  kCosine,  ///< cosine decay to 0 over the run (Loshchilov & Hutter, 2017, SGDR without restarts)
};
const char* lr_schedule_name(LrSchedule schedule);

/// SGD on the PS shards' flat parameter partitions.
struct OptimizerOptions {
  double lr = 0.1;                ///< base learning rate (after warm-up)
  double momentum = 0.9;          ///< heavy-ball coefficient; 0 = plain SGD
  bool nesterov = false;          ///< Nesterov momentum (Sutskever et al., 2013)
  double weight_decay = 5e-4;     ///< L2 coefficient added to the gradient
  LrSchedule schedule = LrSchedule::kCosine;
  std::string lr_milestones = "";  ///< comma-separated epochs for kStep, e.g. "30,60"
  double lr_gamma = 0.1;          ///< factor at each milestone for kStep
  double warmup_epochs = 0.0;     ///< linear warm-up from lr/10 over this many epochs (Goyal et al., 2017)
};
void bind_optimizer_options(OptionTable* table, OptimizerOptions* opt);

/// What goes on the wire and how gradients are cut into buckets.
struct CompressionOptions {
  std::string compressor = "identity";  ///< uplink spec "[memory+]codec[:k=v,...]", see `gradzip compressors`
  std::string memory = "";              ///< overrides the spec's memory part when not empty
  std::string compressor_rules = "";    ///< per-tensor rules (quant/rules.h): FILE, or inline "glob=spec;..."
  std::string downlink = "dense";       ///< "dense" (fp32 parameters) or a codec spec for the parameter delta
  double bucket_mb = 25.0;              ///< gradient bucket size in MiB (2^20 bytes of fp32)
  std::uint64_t min_compress_numel = 1024;  ///< tensors with fewer elements are sent dense (identity)
};
void bind_compression_options(OptionTable* table, CompressionOptions* opt);

/// Workers, shards and how parameters are placed on shards.
struct TopologyOptions {
  int workers = 2;                       ///< number of worker processes/threads
  int shards = 1;                        ///< number of parameter-server shards
  std::string placement = "balanced";    ///< balanced | round-robin | hash (comm/placement)
  SyncMode mode = SyncMode::kSync;
  int slack = 0;                         ///< max steps a worker may lead the slowest (ssp only)
  double worker_timeout_s = 60.0;        ///< a worker silent this long is declared dead (seconds)
};
void bind_topology_options(OptionTable* table, TopologyOptions* opt);

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
};
void bind_run_options(OptionTable* table, RunOptions* opt);

/// True for "cpu", "cuda", "cuda:N" (N a non-negative integer) and "auto".
bool valid_device(const std::string& device);

}  // namespace gradzip::cli
