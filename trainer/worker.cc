// The data-parallel worker loop (torch): the epoch loop of one worker, the simulation
// (every worker on its own thread over in-process shards) and one real worker process.
// See trainer/train.h for the API and shared DESIGN.md ("Data flow of one training
// step") for the stages; the step itself is trainer/worker_step.cc.
#include <algorithm>
#include <cmath>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "comm/checkpoint.h"
#include "comm/inproc.h"
#include "comm/powersgd_ps_transport.h"
#include "trainer/engine.h"
#include "trainer/errors.h"
#include "trainer/transport_decorators.h"
#include "trainer/worker_state.h"

namespace gradzip::trainer {
namespace {

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

void add_traffic(comm::TrafficCounters* sum, const comm::TrafficCounters& c) {
  for (auto [to, from] : {std::pair{&sum->up, &c.up}, std::pair{&sum->down, &c.down}}) {
    to->messages += from->messages;
    to->payload_bytes += from->payload_bytes;
    to->framing_bytes += from->framing_bytes;
    to->tcpip_bytes += from->tcpip_bytes;
    to->seconds += from->seconds;
  }
  sum->staleness.pushes += c.staleness.pushes;
  sum->staleness.sum += c.staleness.sum;
  sum->staleness.max = std::max(sum->staleness.max, c.staleness.max);
}

/// Collects each worker's epoch metrics; once every worker of the process reported epoch
/// e, emits it (worker 0's loss, accuracy and time; bytes summed over the workers), as
/// the multi-process runs merge their workers' lines. Thread-safe.
class EpochBoard {
 public:
  EpochBoard(std::uint32_t workers, const EpochCallback& on_epoch) : per_worker_(workers), on_epoch_(on_epoch) {}
  void report(std::uint32_t rank, const EpochMetrics& m) {
    std::lock_guard<std::mutex> lock(mu_);
    per_worker_[rank].push_back(m);
    for (;;) {
      const std::size_t e = emitted_.size();
      for (const auto& w : per_worker_) {
        if (w.size() <= e) return;
      }
      EpochMetrics sum = per_worker_[0][e];
      sum.traffic = {};
      sum.h2d_bytes = sum.d2h_bytes = 0;
      for (const auto& w : per_worker_) {
        add_traffic(&sum.traffic, w[e].traffic);
        sum.h2d_bytes += w[e].h2d_bytes;
        sum.d2h_bytes += w[e].d2h_bytes;
      }
      sum.bytes_up = sum.traffic.up.payload_bytes;
      sum.bytes_down = sum.traffic.down.payload_bytes;
      emitted_.push_back(sum);
      if (on_epoch_) on_epoch_(sum);
    }
  }
  std::vector<EpochMetrics> epochs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return emitted_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::vector<EpochMetrics>> per_worker_;
  std::vector<EpochMetrics> emitted_;
  const EpochCallback& on_epoch_;
};

/// The epochs of worker `w`, the board's worker `slot` (on its own thread in the
/// simulation); worker 0 evaluates (as DDP does).
void worker_epochs(Engine& e, WorkerSlot& w, std::uint32_t slot, EpochBoard& board, Clock::time_point start) {
  std::uint64_t step = e.cfg.resume_step;  // an epoch end (init_engine)
  std::uint64_t saved = step;              // step of the newest worker checkpoint
  const std::uint64_t checkpoint_steps = static_cast<std::uint64_t>(e.cfg.checkpoint_every) * e.steps_per_epoch;
  bool done = false;
  for (int epoch = static_cast<int>(step / e.steps_per_epoch); epoch < e.cfg.epochs && !done; ++epoch) {
    w.loader->start_epoch(epoch);
    w.loss_sum = 0;
    w.correct = w.seen = 0;
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < e.steps_per_epoch; ++i) {
      if (e.cfg.max_steps > 0 && step >= e.cfg.max_steps) {
        done = true;
        break;
      }
      if (!train_step(e, w, step)) throw std::logic_error("loader ended before steps_per_epoch");
      ++step;
    }
    finish_steps(e, w);
    w.train_seconds += seconds_since(t0);
    EpochMetrics em;
    em.epoch = epoch;
    em.steps = step;
    em.train_loss = w.seen ? w.loss_sum / static_cast<double>(w.seen) : 0;
    em.train_accuracy = w.seen ? static_cast<double>(w.correct) / static_cast<double>(w.seen) : 0;
    if (w.rank == 0) evaluate(e, &em.test_loss, &em.test_accuracy);
    em.seconds = seconds_since(start);
    em.traffic = worker_counters(w);
    em.h2d_bytes = w.h2d_bytes;
    em.d2h_bytes = w.d2h_bytes;
    board.report(slot, em);
    // After the epoch's record, so a checkpoint's step always has its metrics row. The
    // pipeline is drained (finish_steps): no encode touches the memory now.
    if (checkpoint_steps > 0 && !e.cfg.checkpoint_dir.empty() && step > saved && step % checkpoint_steps == 0) {
      save_worker_state(e.cfg, e.signature_hash, w.rank, step, w.encoder->memory(), *w.model->net, *w.transport);
      saved = step;
    }
  }
}

/// After connect(), before the pipeline starts: a resumed worker checks that the shards
/// restored its step and takes back its error-feedback memory and BatchNorm statistics.
void resume_worker(Engine& e, WorkerSlot& w) {
  if (e.cfg.resume_step == 0) return;
  if (w.transport->resume_step() != e.cfg.resume_step) {
    throw std::runtime_error("worker " + std::to_string(w.rank) + " resumes at step " +
                             std::to_string(e.cfg.resume_step) + ", the shards are at step " +
                             std::to_string(w.transport->resume_step()));
  }
  restore_worker_state(e.cfg, e.signature_hash, e.layout, w.rank, w.encoder->mutable_memory(), *w.model->net,
                       *w.transport);
}

/// Runs every worker of `e` on its own thread; the first failure stops the others
/// (`stop` aborts their transports) and is rethrown once all threads are joined.
void run_workers(Engine& e, EpochBoard& board, const std::function<void()>& stop) {
  const auto start = Clock::now();
  if (e.workers.size() == 1) {
    worker_epochs(e, e.workers.front(), 0, board, start);
    return;
  }
  const int threads = e.cfg.torch_threads > 0 ? e.cfg.torch_threads : torch::get_num_threads();
  std::mutex mu;
  std::exception_ptr first;
  std::vector<std::thread> pool;
  for (std::uint32_t i = 0; i < e.workers.size(); ++i) {
    pool.emplace_back([&, i, threads] {
      torch::set_num_threads(threads);  // OpenMP: the thread count is per thread
      try {
        worker_epochs(e, e.workers[i], i, board, start);
      } catch (...) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!first) first = std::current_exception();
        }
        stop();
      }
    });
  }
  for (auto& t : pool) t.join();
  if (first) std::rethrow_exception(first);
}

/// Stops the workers' pipelines and hooks before the transports they use are destroyed
/// (declare it after them).
struct PipelineStop {
  Engine& e;
  ~PipelineStop() {
    for (auto& w : e.workers) {
      w.hooks.reset();
      w.pipeline.reset();
    }
  }
};

TrainResult collect(Engine& e, const EpochBoard& board) {
  TrainResult r;
  r.parameters = e.signature.total_numel();
  r.layout_description = e.layout.describe(e.signature);
  r.epochs = board.epochs();
  r.overlapped = e.overlap;
  for (auto& w : e.workers) {
    const StageSeconds& s = w.stages;
    for (auto [to, from] : {std::pair{&r.stages.data_wait, s.data_wait}, std::pair{&r.stages.h2d, s.h2d},
                            std::pair{&r.stages.compute, s.compute}, std::pair{&r.stages.d2h, s.d2h},
                            std::pair{&r.stages.send, s.send}, std::pair{&r.stages.pull_wait, s.pull_wait},
                            std::pair{&r.stages.apply, s.apply}, std::pair{&r.stages.encode, s.encode}}) {
      *to += from;
    }
    if (w.pipeline) {
      r.stages.encode += w.pipeline->seconds().encode;
      r.stages.send += w.pipeline->seconds().push;
      r.resync_max_abs_diff = std::max(r.resync_max_abs_diff, w.pipeline->resync_max_abs_diff());
      r.resyncs += w.pipeline->resyncs();
    }
    r.resync_max_abs_diff = std::max(r.resync_max_abs_diff, w.resync_diff);
    r.resyncs += w.resyncs;
  }
  r.train_seconds = e.workers.front().train_seconds;
  const torch::Tensor p0 = e.workers.front().model->host_params;
  r.final_params.assign(p0.data_ptr<float>(), p0.data_ptr<float>() + p0.numel());
  if (!r.epochs.empty()) {
    r.steps = r.epochs.back().steps;
    r.final_test_accuracy = r.epochs.back().test_accuracy;
    r.bytes_up = r.epochs.back().bytes_up;
    r.bytes_down = r.epochs.back().bytes_down;
  }
  r.bottleneck = dominant_stage(r.stages);
  r.device_fraction = r.stages.total() > 0 ? r.stages.compute / r.stages.total() : 0;
  return r;
}

}  // namespace

TrainResult run_training(const TrainConfig& config, const EpochCallback& on_epoch) {
  Engine e;
  init_engine(e, config);
  comm::ShardOptions shard;
  shard.mode = config.mode;
  shard.ssp_slack = config.ssp_slack;
  shard.aggregation = comm::Aggregation::kMean;
  shard.optimizer = config.optimizer;
  shard.powersgd_spec = config.ps_powersgd;
  set_shard_checkpoints(config, e.steps_per_epoch, &shard);
  comm::InprocCluster cluster(e.signature, config.placement, shard, config.workers);
  PushTurns turns(config.workers, e.layout.buckets.size());
  std::vector<std::unique_ptr<comm::RequestClient>> clients;
  std::vector<std::unique_ptr<comm::WorkerTransport>> decorators;
  for (std::uint32_t r = 0; r < config.workers; ++r) {
    clients.push_back(cluster.make_worker());
    comm::WorkerTransport* t = clients.back().get();
    // The turn (shard-side order) sits under the link: a push first crosses this
    // worker's own link (sleeping, holding no turn), then takes its turn to enter the
    // shard. Over it, a worker would hold the turn while its bytes cross its link, and
    // the N links would send each bucket one after another.
    if (config.mode == comm::SyncMode::kSync && config.workers > 2) {
      decorators.push_back(std::make_unique<OrderedPushTransport>(*t, turns, r));
      t = decorators.back().get();
    }
    if (config.sim_link_bytes_per_s > 0) {
      decorators.push_back(std::make_unique<ModeledLinkTransport>(*t, config.sim_link_bytes_per_s));
      t = decorators.back().get();
    }
    if (config.fault == TrainConfig::Fault::kPush && r == 0) {
      decorators.push_back(std::make_unique<FaultyPushTransport>(*t, config.fault_step));
      t = decorators.back().get();
    }
    if (!config.ps_powersgd.empty()) {  // outermost: takes the pushes, sends the rounds through the client
      decorators.push_back(std::make_unique<comm::PowerSgdPsTransport>(*t, *clients.back(), config.ps_powersgd,
                                                                       config.seed, config.workers));
      t = decorators.back().get();
    }
    add_worker(e, r, t);
  }
  PipelineStop stop_pipelines{e};
  // Worker 0 connects first: its initial parameters initialise the shards (kInit).
  for (auto& w : e.workers) {
    w.transport->connect(e.signature, w.rank, w.model->host_params.data_ptr<float>());
    w.model->params_to_device();
    resume_worker(e, w);
    start_pipeline(e, w);
  }
  EpochBoard board(config.workers, on_epoch);
  run_workers(e, board, [&] {
    turns.cancel();
    for (auto& c : clients) c->abort();
  });
  TrainResult r = collect(e, board);
  if (config.mode == comm::SyncMode::kSync) {
    // Every worker now holds what the shards say it holds (their parameters, or the
    // replica under a compressed downlink).
    const std::vector<float> held = config.downlink != "dense" ? cluster.gather_replica() : cluster.gather_params();
    r.replica_max_abs_diff = 0;
    for (auto& w : e.workers) {
      const float* p = w.model->host_params.data_ptr<float>();
      for (std::size_t i = 0; i < held.size(); ++i) {
        r.replica_max_abs_diff = std::max(r.replica_max_abs_diff, static_cast<double>(std::fabs(p[i] - held[i])));
      }
    }
  }
  return r;
}

TrainResult run_worker(const TrainConfig& config, comm::WorkerTransport& transport, std::uint32_t rank,
                       const EpochCallback& on_epoch) {
  if (rank >= config.workers) throw ConfigError("worker rank " + std::to_string(rank) + " >= workers");
  Engine e;
  init_engine(e, config);
  std::unique_ptr<comm::WorkerTransport> faulty;
  comm::WorkerTransport* t = &transport;
  if (config.fault == TrainConfig::Fault::kPush && rank == 0) {
    faulty = std::make_unique<FaultyPushTransport>(transport, config.fault_step);
    t = faulty.get();
  }
  add_worker(e, rank, t);
  PipelineStop stop_pipelines{e};
  WorkerSlot& w = e.workers.front();
  t->connect(e.signature, rank, w.model->host_params.data_ptr<float>());
  w.model->params_to_device();
  resume_worker(e, w);
  start_pipeline(e, w);
  EpochBoard board(1, on_epoch);
  run_workers(e, board, [] {});
  return collect(e, board);
}

}  // namespace gradzip::trainer
