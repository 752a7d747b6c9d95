// The trainer API (no torch in this header): one plain options struct, one call.
//
//   trainer::TrainConfig cfg;                 // defaults in-class; the CLI fills it
//   cfg.model = "resnet20"; cfg.dataset = "cifar10"; cfg.data_dir = "...";
//   cfg.compressor = "ef+qsgd:bits=4"; cfg.workers = 4;
//   trainer::TrainResult r = trainer::run_training(cfg, factory);  // simulation
//
// run_training simulates `workers` data-parallel workers in one process, each on its
// own thread: each has its own model replica (its own BN running statistics), data
// shard, error-feedback residuals and RNG stream (quant::SeedContext{seed, step, worker,
// bucket}); they talk to in-process parameter-server shards (comm/inproc.h) with the
// same wire bytes as the ZeroMQ transport (in sync mode pushes reach the shards in
// worker order, so a run is repeatable: trainer/transport_decorators.h). run_worker drives one real
// worker process over any WorkerTransport (ZeroMQ). Evaluation uses worker 0's model, as
// DDP does.
//
// A worker's step (overlap on, CPU): forward, with each layer waiting only for its own
// buckets of the previous step's pull; backward, during which autograd hooks hand each
// finished bucket to the pipeline (encode on a thread pool, push, then per-bucket pulls
// as soon as the step allows: trainer/pipeline.h). Overlap off, or a CUDA device: the
// sequential step (backward, then encode and push every bucket, then pull).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/layout.h"
#include "comm/optimizer.h"
#include "comm/shard.h"
#include "comm/transport.h"
#include "trainer/augment.h"
#include "trainer/dataset.h"
#include "trainer/models.h"

namespace gradzip::trainer {

/// Every setting of a training run. Plain value type; the CLI fills it.
struct TrainConfig {
  // -- model and data
  std::string model = "cnn";              ///< see trainer/models.h
  int base_width = 0;                     ///< 0: the published width
  std::string dataset = "fashion-mnist";  ///< mnist|fashion-mnist|cifar10|cifar100|synthetic|records
  std::string data_dir = "/usr/share/datasets/fashion-mnist";  ///< records: dir with train-*.gzr, test-*.gzr
  std::size_t train_subset = 0;           ///< use the first N training images (0 = all)
  std::size_t test_subset = 0;            ///< evaluate on the first N test images (0 = all)
  SyntheticOptions synthetic;             ///< dataset == "synthetic"
  AugmentOptions augment;                 ///< training-time augmentation
  bool tta = false;                       ///< evaluation averages logits over flips and +-2 px shifts
  // -- optimisation (applied by the parameter-server shards)
  int epochs = 1;
  std::uint64_t max_steps = 0;            ///< stop after this many steps in total (0 = no limit)
  std::size_t batch_size = 64;            ///< samples per worker per step
  comm::OptimizerOptions optimizer;       ///< lr, momentum, schedule (per step)
  // -- data parallelism and compression
  std::uint32_t workers = 1;              ///< logical workers (simulation) / cluster size
  comm::PlacementOptions placement;       ///< shards, bucket size, first bucket, min_compress_numel
  std::string compressor = "identity";    ///< uplink "[memory+]codec[:k=v,...]"
  std::string memory;                     ///< overrides the compressor's memory part when set
  /// Per-tensor compressor rules (quant/rules.h text, or a resolved "rules:..." list);
  /// empty: every bucket uses `compressor`. Tensors no rule names use `compressor`.
  std::string compressor_rules;
  /// "powersgd[:rank=R,...]": PowerSGD over the parameter server (compressor identity,
  /// one shard, sync; comm/powersgd_ps_transport.h); "" = off.
  std::string ps_powersgd;
  std::string downlink = "dense";         ///< "dense" or a codec spec for the parameter delta (sync only)
  std::uint64_t downlink_resync_steps = 0;  ///< compressed downlink: dense resync every N steps (0 = never)
  comm::SyncMode mode = comm::SyncMode::kSync;  ///< the shards' aggregation (simulation)
  std::uint32_t ssp_slack = 0;            ///< ssp: steps a worker may lead the slowest
  // -- pipeline
  bool overlap = true;                    ///< push from autograd hooks during backward (CPU); false: sequential
  int encode_threads = 2;                 ///< threads encoding buckets when overlapping (shared by the workers)
  int straggler_worker = -1;              ///< this worker's compute is slowed (-1: none) ...
  double straggler_factor = 1.0;          ///< ... by this factor (sleeps (factor - 1) x its forward+backward)
  double sim_link_bytes_per_s = 0;        ///< simulation: each worker's modeled link, bytes/s (0: no delay)
  /// Testing: make something fail at step `fault_step` to check a run stops cleanly:
  /// kHook = a gradient hook of worker 0 throws; kPush = worker 0's pushes fail.
  enum class Fault { kNone, kHook, kPush } fault = Fault::kNone;
  std::uint64_t fault_step = 0;
  // -- execution
  std::string device = "cpu";             ///< cpu | cuda | cuda:N
  int loader_threads = 2;
  int prefetch_batches = 4;
  std::uint64_t seed = 1;
  int torch_threads = 0;                  ///< intra-op threads (0: leave torch's default)
  // -- checkpoints (comm/checkpoint.h): shards and workers write theirs at the same steps
  std::string checkpoint_dir;             ///< where; "" = no checkpoints
  int checkpoint_every = 0;               ///< epochs between checkpoints (0 = never)
  std::uint64_t resume_step = 0;          ///< > 0: start from the checkpoints of this step (an epoch end)
};

/// Accuracy and loss after one epoch.
struct EpochMetrics {
  int epoch = 0;
  std::uint64_t steps = 0;           ///< steps done so far (cumulative)
  double train_loss = 0, train_accuracy = 0;  ///< worker 0's running mean over the epoch
  double test_loss = 0, test_accuracy = 0;    ///< worker 0's model on the test set
  double seconds = 0;                ///< wall time since the run started
  std::uint64_t bytes_up = 0;        ///< gradzip message bytes pushed, all workers, cumulative
  std::uint64_t bytes_down = 0;      ///< bytes pulled, all workers, cumulative
  comm::TrafficCounters traffic;     ///< the transports' counters, summed over workers, cumulative
  std::uint64_t h2d_bytes = 0;       ///< host-to-device copies (batches, parameters), all workers; 0 on CPU
  std::uint64_t d2h_bytes = 0;       ///< device-to-host copies (gradients), all workers; 0 on CPU
};

/// Seconds spent per stage of the step, summed over steps and workers. With overlap on,
/// encode (pool CPU time) and send (the communication thread) run beside compute, and
/// pull_wait is the time the worker waited for parameters or for its previous pushes:
/// total() is then not a wall time.
struct StageSeconds {
  double data_wait = 0;  ///< waiting for the loader's next batch
  double h2d = 0;        ///< batch host-to-device copy
  double compute = 0;    ///< forward + backward
  double d2h = 0;        ///< flat gradient device-to-host copy
  double encode = 0;     ///< compensate + encode + (decode) + update, all buckets
  double send = 0;       ///< transport push until its handle completed
  double pull_wait = 0;  ///< waiting for the parameters of the step
  double apply = 0;      ///< writing pulled parameters into the device flat buffer
  double total() const { return data_wait + h2d + compute + d2h + encode + send + pull_wait + apply; }
};

/// Names the largest stage ("data_wait", "compute", ...).
std::string dominant_stage(const StageSeconds& s);

/// What run_training returns.
struct TrainResult {
  std::vector<EpochMetrics> epochs;
  double final_test_accuracy = 0;
  std::uint64_t steps = 0;
  std::uint64_t bytes_up = 0, bytes_down = 0;
  std::uint64_t parameters = 0;     ///< model parameter count
  StageSeconds stages;
  std::string bottleneck;           ///< dominant_stage(stages)
  double device_fraction = 0;       ///< stages.compute / stages.total()
  std::string layout_description;   ///< comm::Layout::describe of the run
  double train_seconds = 0;         ///< worker 0's wall time in training steps (no setup, no evaluation)
  bool overlapped = false;          ///< the overlapped pipeline ran (overlap on, CPU)
  /// Compressed downlink: largest |worker replica - dense replica| found at a resync, and
  /// how many resyncs ran (all workers).
  double resync_max_abs_diff = 0;
  std::uint64_t resyncs = 0;
  /// Simulation in sync mode: largest |worker parameters - what the shards say they hold|
  /// at the end (the shards' replica under a compressed downlink); -1 when not checked.
  double replica_max_abs_diff = -1;
  std::vector<float> final_params;  ///< worker 0's parameters at the end (flat order)
  /// One line per stage with seconds and share, then the dominant stage.
  std::string bottleneck_report() const;
};

/// The usual training augmentation of a data set: CIFAR-10/100 (and 3-channel records or
/// synthetic data): pad-4 random crop + horizontal flip (He et al. 2016, sec. 4.2);
/// MNIST-style 1-channel data: none.
AugmentOptions default_augment(const std::string& dataset, int channels);

/// Called after each epoch's evaluation (e.g. to append to metrics.csv).
using EpochCallback = std::function<void(const EpochMetrics&)>;

/// Sets the checkpoint settings of `shard` from `config`: directory, every
/// checkpoint_every epochs of `steps_per_epoch` steps, and a restore of exactly
/// resume_step when it is set. Shared by the simulation's shards and shard processes.
void set_shard_checkpoints(const TrainConfig& config, std::uint64_t steps_per_epoch, comm::ShardOptions* shard);

/// The model signature of a config (parameters in flat order, compressor spec).
comm::ModelSignature make_signature(const TrainConfig& config, int channels, int height, int width, int classes);

/// Loads the train/test data of a config (subsets applied). Throws DataError/ConfigError.
DataSplit load_config_data(const TrainConfig& config);

/// Simulated data-parallel training in this process (see top of file) over the
/// in-process transport (comm/inproc.h): placement.num_shards synchronous shards that
/// average the workers' gradients and apply `optimizer`. Throws ConfigError, DataError,
/// quant::SpecError, comm::CommError, std::runtime_error (training diverged).
///
/// Checkpoints (here and in run_worker): with checkpoint_every, the shards and every
/// worker write theirs (parameters and optimizer state; error-feedback memory and
/// BatchNorm statistics) after each checkpoint_every-th epoch; with resume_step, the run
/// continues from those of that step and ends bit-identical to a run that was never
/// stopped. A missing or corrupt worker checkpoint throws comm::CheckpointError naming it.
TrainResult run_training(const TrainConfig& config, const EpochCallback& on_epoch = {});

/// One real worker process of rank `rank` over `transport` (already constructed, not yet
/// connected). Evaluates only when rank == 0.
TrainResult run_worker(const TrainConfig& config, comm::WorkerTransport& transport, std::uint32_t rank,
                       const EpochCallback& on_epoch = {});

}  // namespace gradzip::trainer
