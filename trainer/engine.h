// The engine of one training process: the state of its workers and their step functions
// (torch; internal to trainer/worker*.cc). See trainer/train.h for the API and the two
// step paths, trainer/worker_state.h for a worker's checkpoint.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <vector>

#include "comm/layout.h"
#include "comm/transport.h"
#include "quant/registry.h"
#include "trainer/bucket_encoder.h"
#include "trainer/bucket_schedule.h"
#include "trainer/flat_model.h"
#include "trainer/grad_hooks.h"
#include "trainer/loader.h"
#include "trainer/pipeline.h"
#include "trainer/task_pool.h"
#include "trainer/train.h"

namespace gradzip::trainer {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// One worker: model replica with flat buffers, data loader, uplink encoder, transport,
/// and (overlap) its bucket schedule, autograd hooks and pipeline.
struct WorkerSlot {
  std::uint32_t rank = 0;
  std::unique_ptr<FlatModel> model;
  std::unique_ptr<Loader> loader;
  comm::WorkerTransport* transport = nullptr;
  std::unique_ptr<BucketEncoder> encoder;
  std::unique_ptr<BucketSchedule> schedule;   // overlap only
  std::unique_ptr<BucketPipeline> pipeline;   // overlap only, after connect
  std::unique_ptr<GradHooks> hooks;           // overlap only
  std::uint64_t step = 0;                     // the step in progress
  double gate_seconds = 0;                    // time forward waited for parameters
  torch::Tensor staging;                      // pinned batch buffer (CUDA only)
  std::vector<float> resync_scratch;          // sequential path, compressed downlink
  StageSeconds stages;
  double loss_sum = 0;
  std::uint64_t correct = 0, seen = 0;
  std::uint64_t h2d_bytes = 0, d2h_bytes = 0;
  double resync_diff = 0;
  std::uint64_t resyncs = 0;
  double train_seconds = 0;
};

/// Everything shared by the workers of one process.
struct Engine {
  TrainConfig cfg;
  torch::Device device{torch::kCPU};
  ModelSpec spec;
  DataSplit data;
  ChannelStats norm;
  RgbPca pca;
  comm::ModelSignature signature;
  std::uint64_t signature_hash = 0;  // what checkpoints record (comm/checkpoint.h)
  comm::Layout layout;
  std::vector<quant::Compressor> compressors;  // one per layout.specs entry (Bucket::spec)
  std::unique_ptr<quant::Codec> identity;
  std::unique_ptr<TaskPool> encode_pool;  // overlap only
  std::vector<WorkerSlot> workers;
  std::size_t steps_per_epoch = 0;
  bool overlap = false;                   // cfg.overlap on a CPU device
};

/// Builds the engine: data, signature, layout, compressor (no workers yet).
void init_engine(Engine& e, const TrainConfig& cfg);
/// Adds worker `rank` over `transport` (not yet connected).
void add_worker(Engine& e, std::uint32_t rank, comm::WorkerTransport* transport);
/// After the worker's transport connected: starts its pipeline (overlap).
void start_pipeline(Engine& e, WorkerSlot& w);

/// One training step of worker `w` (either path). Returns false when the loader ran
/// dry. Throws PipelineError, comm::CommError, std::runtime_error (loss diverged).
bool train_step(Engine& e, WorkerSlot& w, std::uint64_t step);
/// Waits until the worker's last step is complete (its parameters are current).
void finish_steps(Engine& e, WorkerSlot& w);
/// The worker's transport counters (the pipeline's snapshot when it runs).
comm::TrafficCounters worker_counters(const WorkerSlot& w);

}  // namespace gradzip::trainer
