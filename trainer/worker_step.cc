// One worker's training step, sequential or overlapped (see trainer/train.h), and the
// engine and worker set-up they share.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>

#include <torch/cuda.h>

#include "comm/checkpoint.h"
#include "comm/describe_exception.h"
#include "trainer/downlink_resync.h"
#include "trainer/engine.h"
#include "trainer/errors.h"

namespace gradzip::trainer {
namespace {

void sync_device(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

/// The batch as tensors on the worker's device (pinned staging + asynchronous H2D on CUDA).
std::pair<torch::Tensor, torch::Tensor> batch_tensors(Engine& e, WorkerSlot& w, Batch& batch) {
  const Dataset& tr = e.data.train;
  const auto n = static_cast<std::int64_t>(batch.size);
  torch::Tensor x = torch::from_blob(batch.images.data(), {n, tr.channels, tr.height, tr.width}, torch::kFloat32);
  torch::Tensor y = torch::from_blob(batch.labels.data(), {n}, torch::kInt64);
  if (e.device.is_cuda()) {
    if (!w.staging.defined() || w.staging.size(0) < n) {
      w.staging = torch::empty({n, tr.channels, tr.height, tr.width}, torch::TensorOptions().pinned_memory(true));
    }
    torch::Tensor s = w.staging.narrow(0, 0, n);
    s.copy_(x);
    x = s.to(e.device, /*non_blocking=*/true);
    y = y.to(e.device);
    sync_device(e.device);
    w.h2d_bytes += static_cast<std::uint64_t>(x.numel()) * sizeof(float) + static_cast<std::uint64_t>(n) * 8;
  }
  return {x, y};
}

/// Loss bookkeeping after backward; throws when the loss is not finite.
void record_loss(WorkerSlot& w, const torch::Tensor& loss, const torch::Tensor& logits, const torch::Tensor& y,
                 std::uint64_t step) {
  const double loss_value = loss.item<double>();
  if (!std::isfinite(loss_value)) {
    throw std::runtime_error("training diverged: loss " + std::to_string(loss_value) + " at step " +
                             std::to_string(step) + " of worker " + std::to_string(w.rank));
  }
  const auto n = y.size(0);
  w.loss_sum += loss_value * static_cast<double>(n);
  w.correct += static_cast<std::uint64_t>(logits.argmax(1).eq(y).sum().item<std::int64_t>());
  w.seen += static_cast<std::uint64_t>(n);
}

/// --straggler: this worker's compute is `factor` times slower.
void straggle(const Engine& e, const WorkerSlot& w, double compute_s) {
  if (static_cast<std::int64_t>(w.rank) != e.cfg.straggler_worker || e.cfg.straggler_factor <= 1.0) return;
  std::this_thread::sleep_for(std::chrono::duration<double>((e.cfg.straggler_factor - 1.0) * compute_s));
}

bool resync_due(const Engine& e, std::uint64_t step) {
  return e.cfg.downlink != "dense" && e.cfg.downlink_resync_steps > 0 && (step + 1) % e.cfg.downlink_resync_steps == 0;
}

/// The next batch into *batch and as tensors on the device (timed: data_wait, h2d);
/// false when the epoch is over.
bool next_batch(Engine& e, WorkerSlot& w, Batch* batch, torch::Tensor* x, torch::Tensor* y) {
  auto t0 = Clock::now();
  if (!w.loader->next(batch)) return false;
  w.stages.data_wait += seconds_since(t0);
  t0 = Clock::now();
  std::tie(*x, *y) = batch_tensors(e, w, *batch);
  w.stages.h2d += seconds_since(t0);
  return true;
}

/// Backward, then compensate/encode/update and push every bucket, then pull.
bool sequential_step(Engine& e, WorkerSlot& w, std::uint64_t step) {
  StageSeconds& st = w.stages;
  Batch batch;
  torch::Tensor x, y;
  if (!next_batch(e, w, &batch, &x, &y)) return false;

  auto t0 = Clock::now();
  FlatModel& m = *w.model;
  m.net->train();
  m.flat_grads.zero_();
  torch::Tensor logits = m.net->forward(x);
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
  loss.backward();
  record_loss(w, loss, logits, y, step);
  sync_device(e.device);
  const double compute_s = seconds_since(t0);
  straggle(e, w, compute_s);
  st.compute += seconds_since(t0);

  t0 = Clock::now();
  m.grads_to_host();
  if (e.device.is_cuda()) w.d2h_bytes += static_cast<std::uint64_t>(m.total_numel) * sizeof(float);
  st.d2h += seconds_since(t0);

  t0 = Clock::now();
  const float* grads = m.host_grads.data_ptr<float>();
  for (const comm::Bucket& b : e.layout.buckets) w.encoder->encode(b.id, step, grads);
  st.encode += seconds_since(t0);

  t0 = Clock::now();
  std::vector<comm::Handle> pushes;
  for (const comm::Bucket& b : e.layout.buckets) {
    pushes.push_back(w.transport->push(step, b.id, w.encoder->message(b.id), w.encoder->message_bytes(b.id)));
  }
  for (comm::Handle h : pushes) w.transport->wait(h);
  st.send += seconds_since(t0);

  t0 = Clock::now();
  float* params = m.host_params.data_ptr<float>();
  w.transport->wait(w.transport->pull(step, params));
  if (resync_due(e, step)) {
    w.resync_diff = std::max(w.resync_diff, resync_all(*w.transport, e.layout, step, params, &w.resync_scratch));
    ++w.resyncs;
  }
  st.pull_wait += seconds_since(t0);
  t0 = Clock::now();
  m.params_to_device();
  if (e.device.is_cuda()) w.h2d_bytes += static_cast<std::uint64_t>(m.total_numel) * sizeof(float);
  sync_device(e.device);
  st.apply += seconds_since(t0);
  return true;
}

/// Forward gated per layer on the previous step's pulls, backward firing buckets into
/// the pipeline from autograd (CPU: parameters and gradients are the host buffers).
bool overlapped_step(Engine& e, WorkerSlot& w, std::uint64_t step) {
  StageSeconds& st = w.stages;
  Batch batch;
  torch::Tensor x, y;
  if (!next_batch(e, w, &batch, &x, &y)) return false;

  FlatModel& m = *w.model;
  BucketPipeline& p = *w.pipeline;
  auto t0 = Clock::now();
  p.begin_step(step, m.flat_grads.data_ptr<float>(), m.flat_params.data_ptr<float>());
  st.pull_wait += seconds_since(t0);
  w.schedule->begin_step();

  const double gated_before = w.gate_seconds;
  t0 = Clock::now();
  m.net->train();
  const auto last = static_cast<std::uint32_t>(e.layout.buckets.size() - 1);
  auto wait_all = [&] {
    const auto w0 = Clock::now();
    p.wait_params(0, last, step);
    w.gate_seconds += seconds_since(w0);
  };
  if (!m.net->gates_parameters()) wait_all();
  torch::Tensor logits = m.net->forward(x);
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
  wait_all();  // backward reads every layer's parameters
  loss.backward();
  const double waited = w.gate_seconds - gated_before;
  const double compute_s = seconds_since(t0) - waited;
  straggle(e, w, compute_s);
  st.compute += seconds_since(t0) - waited;
  st.pull_wait += waited;
  for (std::uint32_t b : w.schedule->fire_remaining()) p.bucket_ready(b);
  p.end_backward();
  record_loss(w, loss, logits, y, step);
  return true;
}

}  // namespace

void init_engine(Engine& e, const TrainConfig& cfg) {
  e.cfg = cfg;
  e.device = parse_device(cfg.device);
  if (cfg.workers == 0) throw ConfigError("workers must be at least 1");
  if (cfg.batch_size == 0) throw ConfigError("batch size must be positive");
  if (cfg.epochs <= 0) throw ConfigError("epochs must be positive");
  if (cfg.encode_threads < 1) throw ConfigError("encode threads must be at least 1");
  if (cfg.straggler_factor < 1.0) throw ConfigError("a straggler factor must be >= 1");
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
  for (const auto& spec : e.layout.specs) e.compressors.push_back(quant::make_compressor(spec));
  e.identity = quant::make_codec("identity");
  // The overlapped pipeline encodes on the host from the gradient buffer autograd writes:
  // CPU only (on CUDA it would need per-bucket device-to-host copies; not built yet).
  e.overlap = cfg.overlap && !e.device.is_cuda();
  if (e.overlap) e.encode_pool = std::make_unique<TaskPool>(cfg.encode_threads);
  if (cfg.fault == TrainConfig::Fault::kHook && !e.overlap) {
    throw ConfigError("an injected hook fault needs the overlapped pipeline (overlap on, CPU device)");
  }
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
  w.encoder = std::make_unique<BucketEncoder>(e.layout, e.compressors, *e.identity, e.cfg.seed, rank);
  if (e.overlap) w.schedule = std::make_unique<BucketSchedule>(e.signature.tensors, e.layout);
  e.workers.push_back(std::move(w));
}

void start_pipeline(Engine& e, WorkerSlot& w) {
  if (!e.overlap) return;
  PipelineOptions po;
  po.compressed_downlink = e.cfg.downlink != "dense";
  po.resync_every = e.cfg.downlink_resync_steps;
  w.pipeline = std::make_unique<BucketPipeline>(e.layout, *w.encoder, *w.transport, *e.encode_pool, po,
                                                w.transport->resume_step());
  // `e` and `w` outlive the hooks and the gate (the workers are added before any starts).
  Engine* engine = &e;
  WorkerSlot* slot = &w;
  auto on_grad = [engine, slot](std::size_t tensor) {
    const TrainConfig& c = engine->cfg;
    if (c.fault == TrainConfig::Fault::kHook && slot->rank == 0 && slot->step == c.fault_step) {
      throw std::runtime_error("injected fault (--inject-fault hook:" + std::to_string(c.fault_step) + ")");
    }
    thread_local std::vector<std::uint32_t> fired;
    fired.clear();
    slot->schedule->tensor_ready(tensor, &fired);
    for (std::uint32_t b : fired) slot->pipeline->bucket_ready(b);
  };
  auto on_error = [slot](std::exception_ptr error) {
    const std::string what = comm::describe_exception(error, "unknown error");
    slot->pipeline->fail(std::make_exception_ptr(PipelineError(
        PipelineError::Stage::kHook, "worker " + std::to_string(slot->rank) + " step " + std::to_string(slot->step) +
                                         ": gradient hook failed: " + what)));
  };
  w.hooks = std::make_unique<GradHooks>(w.model->params, on_grad, on_error);
  // The parameter gate: a layer waits for the buckets holding its parameters (their
  // range is looked up once per layer).
  const float* base = w.model->flat_params.data_ptr<float>();
  auto ranges = std::make_shared<std::unordered_map<const torch::nn::Module*, std::pair<std::uint32_t, std::uint32_t>>>();
  w.model->net->set_parameter_gate([slot, base, ranges](const torch::nn::Module& layer) {
    auto it = ranges->find(&layer);
    if (it == ranges->end()) {
      std::pair<std::uint32_t, std::uint32_t> r{~0u, 0};
      for (const auto& t : layer.parameters()) {
        const auto off = static_cast<std::uint64_t>(t.data_ptr<float>() - base);
        const auto [first, last] = slot->schedule->buckets_in(off, off + static_cast<std::uint64_t>(t.numel()));
        r = {std::min(r.first, first), std::max(r.second, last)};
      }
      it = ranges->emplace(&layer, r).first;
    }
    if (it->second.first > it->second.second) return;  // a layer without parameters
    const auto t0 = Clock::now();
    slot->pipeline->wait_params(it->second.first, it->second.second, slot->step);
    slot->gate_seconds += seconds_since(t0);
  });
}

bool train_step(Engine& e, WorkerSlot& w, std::uint64_t step) {
  w.step = step;
  return e.overlap ? overlapped_step(e, w, step) : sequential_step(e, w, step);
}

void finish_steps(Engine& e, WorkerSlot& w) {
  if (!e.overlap || !w.pipeline) return;
  const auto t0 = Clock::now();
  w.pipeline->drain();
  w.stages.pull_wait += seconds_since(t0);
}

comm::TrafficCounters worker_counters(const WorkerSlot& w) {
  return w.pipeline ? w.pipeline->counters() : w.transport->counters();
}

}  // namespace gradzip::trainer
