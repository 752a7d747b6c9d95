// The data-parallel worker loop (torch). See trainer/train.h for the API and
// shared DESIGN.md ("Data flow of one training step") for the stages.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <torch/cuda.h>

#include "comm/checkpoint.h"
#include "comm/inproc.h"
#include "quant/registry.h"
#include "trainer/errors.h"
#include "trainer/flat_model.h"
#include "trainer/loader.h"
#include "trainer/train.h"
#include "trainer/worker_state.h"

namespace gradzip::trainer {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void sync_device(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

/// One worker's state: model replica with flat buffers, data loader, per-bucket
/// error-feedback state and message buffers, transport and counters.
struct WorkerSlot {
  std::uint32_t rank = 0;
  std::unique_ptr<FlatModel> model;
  std::unique_ptr<Loader> loader;
  comm::WorkerTransport* transport = nullptr;
  std::vector<quant::MemoryState> memory;          // per bucket
  std::vector<std::vector<std::uint8_t>> messages;  // per bucket
  std::vector<std::size_t> message_bytes;           // per bucket
  std::vector<comm::Handle> push_handles;
  torch::Tensor staging;                            // pinned batch buffer (CUDA only)
  double loss_sum = 0;
  std::uint64_t correct = 0, seen = 0;
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
  quant::Compressor compressor;
  std::unique_ptr<quant::Codec> identity;
  std::vector<float> compensated, decoded;  // scratch, largest bucket
  std::vector<WorkerSlot> workers;
  StageSeconds stages;
  std::size_t steps_per_epoch = 0;
};

void init_engine(Engine& e, const TrainConfig& cfg) {
  e.cfg = cfg;
  e.device = parse_device(cfg.device);
  if (cfg.workers == 0) throw ConfigError("workers must be at least 1");
  if (cfg.batch_size == 0) throw ConfigError("batch size must be positive");
  if (cfg.epochs <= 0) throw ConfigError("epochs must be positive");
  if (cfg.torch_threads > 0) torch::set_num_threads(cfg.torch_threads);
  e.data = load_config_data(cfg);
  const Dataset& tr = e.data.train;
  e.spec.name = cfg.model;
  e.spec.channels = tr.channels;
  e.spec.height = tr.height;
  e.spec.width = tr.width;
  e.spec.classes = tr.classes;
  e.spec.base_width = cfg.base_width;
  e.norm = channel_stats(tr);
  if (tr.channels == 3) e.pca = compute_rgb_pca(tr);
  e.signature = make_signature(cfg, tr.channels, tr.height, tr.width, tr.classes);
  e.signature_hash = comm::signature_hash(e.signature);
  e.layout = comm::make_layout(e.signature, cfg.placement);
  e.compressor = quant::make_compressor(cfg.compressor, cfg.memory);
  e.identity = quant::make_codec("identity");
  std::uint64_t largest = 0;
  for (const auto& b : e.layout.buckets) largest = std::max(largest, b.numel);
  e.compensated.resize(largest);
  e.decoded.resize(largest);
  const std::size_t shard = tr.size() / cfg.workers;
  e.steps_per_epoch = shard / cfg.batch_size;
  if (e.steps_per_epoch == 0) {
    throw ConfigError("batch size " + std::to_string(cfg.batch_size) + " exceeds a worker's data shard of " +
                      std::to_string(shard) + " images");
  }
  if (cfg.resume_step % e.steps_per_epoch != 0) {
    throw ConfigError("resume step " + std::to_string(cfg.resume_step) + " is not an epoch end (" +
                      std::to_string(e.steps_per_epoch) + " steps per epoch)");
  }
}

/// After connect(): a resumed worker checks that the shards restored its step and takes
/// back its error-feedback memory and BatchNorm statistics.
void resume_worker(Engine& e, WorkerSlot& w) {
  if (e.cfg.resume_step == 0) return;
  if (w.transport->resume_step() != e.cfg.resume_step) {
    throw std::runtime_error("worker " + std::to_string(w.rank) + " resumes at step " +
                             std::to_string(e.cfg.resume_step) + ", the shards are at step " +
                             std::to_string(w.transport->resume_step()));
  }
  restore_worker_state(e.cfg, e.signature_hash, e.layout, w.rank, &w.memory, *w.model->net);
}

void add_worker(Engine& e, std::uint32_t rank, comm::WorkerTransport* transport) {
  WorkerSlot w;
  w.rank = rank;
  torch::manual_seed(e.cfg.seed);  // identical initial replicas (the shards' copy wins anyway)
  w.model = std::make_unique<FlatModel>(e.spec, e.device);
  LoaderOptions lo;
  lo.batch_size = e.cfg.batch_size;
  lo.threads = e.cfg.loader_threads;
  lo.prefetch = e.cfg.prefetch_batches;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.seed = e.cfg.seed;
  lo.worker = rank;
  lo.workers = e.cfg.workers;
  lo.augment = e.cfg.augment;
  w.loader = std::make_unique<Loader>(e.data.train, e.norm, e.data.train.channels == 3 ? &e.pca : nullptr, lo);
  w.transport = transport;
  w.memory.resize(e.layout.buckets.size());
  w.messages.resize(e.layout.buckets.size());
  w.message_bytes.assign(e.layout.buckets.size(), 0);
  for (const auto& b : e.layout.buckets) {
    const quant::Codec& c = b.compressed ? *e.compressor.codec : *e.identity;
    w.messages[b.id].resize(c.max_encoded_bytes(b.numel));
  }
  e.workers.push_back(std::move(w));
}

/// Forward/backward on the next batch, then compensate/encode/update and push every
/// bucket. Returns false when the loader ran dry (end of epoch).
bool compute_and_push(Engine& e, WorkerSlot& w, std::uint64_t step) {
  StageSeconds& st = e.stages;
  auto t0 = Clock::now();
  Batch batch;
  if (!w.loader->next(&batch)) return false;
  st.data_wait += seconds_since(t0);

  t0 = Clock::now();
  const Dataset& tr = e.data.train;
  const auto n = static_cast<std::int64_t>(batch.size);
  torch::Tensor x = torch::from_blob(batch.images.data(), {n, tr.channels, tr.height, tr.width}, torch::kFloat32);
  torch::Tensor y = torch::from_blob(batch.labels.data(), {n}, torch::kInt64);
  if (e.device.is_cuda()) {
    // Pinned staging buffer + asynchronous H2D (the copy engine overlaps host work).
    if (!w.staging.defined() || w.staging.size(0) < n) {
      w.staging = torch::empty({n, tr.channels, tr.height, tr.width}, torch::TensorOptions().pinned_memory(true));
    }
    torch::Tensor s = w.staging.narrow(0, 0, n);
    s.copy_(x);
    x = s.to(e.device, /*non_blocking=*/true);
    y = y.to(e.device);
    sync_device(e.device);
  }
  st.h2d += seconds_since(t0);

  t0 = Clock::now();
  FlatModel& m = *w.model;
  m.net->train();
  m.flat_grads.zero_();
  torch::Tensor logits = m.net->forward(x);
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
  loss.backward();
  const double loss_value = loss.item<double>();
  const std::int64_t correct = logits.argmax(1).eq(y).sum().item<std::int64_t>();
  sync_device(e.device);
  st.compute += seconds_since(t0);
  if (!std::isfinite(loss_value)) {
    throw std::runtime_error("training diverged: loss " + std::to_string(loss_value) + " at step " +
                             std::to_string(step) + " of worker " + std::to_string(w.rank));
  }
  w.loss_sum += loss_value * static_cast<double>(n);
  w.correct += static_cast<std::uint64_t>(correct);
  w.seen += static_cast<std::uint64_t>(n);

  t0 = Clock::now();
  m.grads_to_host();
  st.d2h += seconds_since(t0);

  t0 = Clock::now();
  const float* grads = m.host_grads.data_ptr<float>();
  const quant::Memory& mem = *e.compressor.memory;
  for (const comm::Bucket& b : e.layout.buckets) {
    const float* g = grads + b.offset;
    const quant::SeedContext ctx{e.cfg.seed, step, w.rank, b.id};
    std::uint8_t* out = w.messages[b.id].data();
    const std::size_t cap = w.messages[b.id].size();
    quant::Status s;
    if (b.compressed) {
      // Error feedback (Seide et al. 2014; Karimireddy et al. 2019): encode g + residual,
      // keep what the receiver will not see.
      mem.compensate(g, e.compensated.data(), b.numel, &w.memory[b.id]);
      s = e.compressor.codec->encode(e.compensated.data(), b.numel, ctx, out, cap, &w.message_bytes[b.id]);
      if (s.ok() && mem.needs_decoded()) {
        s = e.compressor.codec->decode(out, w.message_bytes[b.id], e.decoded.data(), b.numel);
      }
      if (s.ok()) mem.update(e.compensated.data(), e.decoded.data(), b.numel, &w.memory[b.id]);
    } else {
      s = e.identity->encode(g, b.numel, ctx, out, cap, &w.message_bytes[b.id]);
    }
    if (!s.ok()) {
      throw std::runtime_error("worker " + std::to_string(w.rank) + " step " + std::to_string(step) + " bucket " +
                               std::to_string(b.id) + ": encode failed: " + s.to_string());
    }
  }
  st.encode += seconds_since(t0);

  t0 = Clock::now();
  w.push_handles.clear();
  for (const comm::Bucket& b : e.layout.buckets) {
    w.push_handles.push_back(w.transport->push(step, b.id, w.messages[b.id].data(), w.message_bytes[b.id]));
  }
  for (comm::Handle h : w.push_handles) w.transport->wait(h);
  st.send += seconds_since(t0);
  return true;
}

void pull_params(Engine& e, WorkerSlot& w, std::uint64_t step) {
  auto t0 = Clock::now();
  const comm::Handle h = w.transport->pull(step, w.model->host_params.data_ptr<float>());
  w.transport->wait(h);
  e.stages.pull_wait += seconds_since(t0);
  t0 = Clock::now();
  w.model->params_to_device();
  sync_device(e.device);
  e.stages.apply += seconds_since(t0);
}

/// Test loss and accuracy of worker 0's replica (eval mode: its BN running statistics).
void evaluate(Engine& e, double* loss_out, double* acc_out) {
  const Dataset& te = e.data.test;
  LoaderOptions lo;
  lo.batch_size = 256;
  lo.threads = e.cfg.loader_threads;
  lo.prefetch = e.cfg.prefetch_batches;
  lo.shuffle = false;
  Loader loader(te, e.norm, nullptr, lo);
  loader.start_epoch(0);
  FlatModel& m = *e.workers.front().model;
  m.net->eval();
  torch::NoGradGuard no_grad;
  double loss_sum = 0;
  std::uint64_t correct = 0, seen = 0;
  Batch batch;
  while (loader.next(&batch)) {
    const auto n = static_cast<std::int64_t>(batch.size);
    torch::Tensor x = torch::from_blob(batch.images.data(), {n, te.channels, te.height, te.width}, torch::kFloat32)
                          .to(e.device);
    torch::Tensor y = torch::from_blob(batch.labels.data(), {n}, torch::kInt64).to(e.device);
    torch::Tensor prob;
    if (e.cfg.tta) {
      // Test-time augmentation: average class probabilities over the image, its mirror
      // and four 2-pixel shifts (zero padding), as in the multi-view testing of
      // Krizhevsky et al. 2012 (sec. 4.1), scaled down to small images.
      std::vector<torch::Tensor> views = {x, x.flip({3})};
      const torch::Tensor padded = torch::constant_pad_nd(x, {2, 2, 2, 2});
      const int shifts[4][2] = {{0, 2}, {4, 2}, {2, 0}, {2, 4}};
      for (const auto& s : shifts) views.push_back(padded.narrow(2, s[0], te.height).narrow(3, s[1], te.width));
      prob = torch::zeros({n, te.classes}, x.options());
      for (const auto& v : views) prob += torch::softmax(m.net->forward(v), 1);
      prob /= static_cast<double>(views.size());
    } else {
      prob = torch::softmax(m.net->forward(x), 1);
    }
    loss_sum += torch::nll_loss(torch::log(prob.clamp_min(1e-12)), y, {}, at::Reduction::Sum).item<double>();
    correct += static_cast<std::uint64_t>(prob.argmax(1).eq(y).sum().item<std::int64_t>());
    seen += static_cast<std::uint64_t>(n);
  }
  *loss_out = seen ? loss_sum / static_cast<double>(seen) : 0;
  *acc_out = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0;
}

/// The epoch loop shared by run_training (all workers here) and run_worker (one).
TrainResult train_loop(Engine& e, bool evaluate_here, const EpochCallback& on_epoch) {
  TrainResult r;
  r.parameters = e.signature.total_numel();
  r.layout_description = e.layout.describe(e.signature);
  const auto start = Clock::now();
  std::uint64_t step = e.cfg.resume_step;  // an epoch end (init_engine)
  std::uint64_t saved = step;              // step of the newest worker checkpoint
  const std::uint64_t checkpoint_steps = static_cast<std::uint64_t>(e.cfg.checkpoint_every) * e.steps_per_epoch;
  bool done = false;
  for (int epoch = static_cast<int>(step / e.steps_per_epoch); epoch < e.cfg.epochs && !done; ++epoch) {
    for (auto& w : e.workers) {
      w.loader->start_epoch(epoch);
      w.loss_sum = 0;
      w.correct = w.seen = 0;
    }
    for (std::size_t i = 0; i < e.steps_per_epoch; ++i) {
      if (e.cfg.max_steps > 0 && step >= e.cfg.max_steps) {
        done = true;
        break;
      }
      for (auto& w : e.workers) {
        if (!compute_and_push(e, w, step)) throw std::logic_error("loader ended before steps_per_epoch");
      }
      for (auto& w : e.workers) pull_params(e, w, step);
      ++step;
    }
    EpochMetrics em;
    em.epoch = epoch;
    em.steps = step;
    const WorkerSlot& w0 = e.workers.front();
    em.train_loss = w0.seen ? w0.loss_sum / static_cast<double>(w0.seen) : 0;
    em.train_accuracy = w0.seen ? static_cast<double>(w0.correct) / static_cast<double>(w0.seen) : 0;
    if (evaluate_here) evaluate(e, &em.test_loss, &em.test_accuracy);
    em.seconds = seconds_since(start);
    for (const auto& w : e.workers) {
      const comm::TrafficCounters c = w.transport->counters();
      em.bytes_up += c.up.payload_bytes;
      em.bytes_down += c.down.payload_bytes;
    }
    r.epochs.push_back(em);
    if (on_epoch) on_epoch(em);
    // After the epoch's record, so a checkpoint's step always has its metrics row.
    if (checkpoint_steps > 0 && !e.cfg.checkpoint_dir.empty() && step > saved && step % checkpoint_steps == 0) {
      for (auto& w : e.workers) save_worker_state(e.cfg, e.signature_hash, w.rank, step, w.memory, *w.model->net);
      saved = step;
    }
  }
  r.steps = step;
  if (!r.epochs.empty()) {
    r.final_test_accuracy = r.epochs.back().test_accuracy;
    r.bytes_up = r.epochs.back().bytes_up;
    r.bytes_down = r.epochs.back().bytes_down;
  }
  r.stages = e.stages;
  r.bottleneck = dominant_stage(e.stages);
  r.device_fraction = e.stages.total() > 0 ? e.stages.compute / e.stages.total() : 0;
  return r;
}

}  // namespace

TrainResult run_training(const TrainConfig& config, const EpochCallback& on_epoch) {
  Engine e;
  init_engine(e, config);
  comm::ShardOptions shard;
  shard.mode = comm::SyncMode::kSync;
  shard.aggregation = comm::Aggregation::kMean;
  shard.optimizer = config.optimizer;
  set_shard_checkpoints(config, e.steps_per_epoch, &shard);
  comm::InprocCluster cluster(e.signature, config.placement, shard, config.workers);
  std::vector<std::unique_ptr<comm::RequestClient>> transports;
  for (std::uint32_t r = 0; r < config.workers; ++r) {
    transports.push_back(cluster.make_worker());
    add_worker(e, r, transports.back().get());
  }
  // Worker 0 connects first: its initial parameters initialise the shards (kInit).
  for (auto& w : e.workers) {
    w.transport->connect(e.signature, w.rank, w.model->host_params.data_ptr<float>());
    w.model->params_to_device();
    resume_worker(e, w);
  }
  return train_loop(e, /*evaluate_here=*/true, on_epoch);
}

TrainResult run_worker(const TrainConfig& config, comm::WorkerTransport& transport, std::uint32_t rank,
                       const EpochCallback& on_epoch) {
  if (rank >= config.workers) throw ConfigError("worker rank " + std::to_string(rank) + " >= workers");
  Engine e;
  init_engine(e, config);
  add_worker(e, rank, &transport);
  transport.connect(e.signature, rank, e.workers.front().model->host_params.data_ptr<float>());
  e.workers.front().model->params_to_device();
  resume_worker(e, e.workers.front());
  return train_loop(e, /*evaluate_here=*/rank == 0, on_epoch);
}

}  // namespace gradzip::trainer
