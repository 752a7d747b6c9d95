// Trainer benchmarks, each against a baseline measured in the same run:
//  * data pipeline images/s (Loader: decode + augment + batch) vs the images/s the model
//    consumes (plain libtorch forward + backward + SGD step) — the pipeline should be
//    several times faster so the device never waits for data;
//  * per-step time of the gradzip worker (flat buffers, identity codec, in-process
//    shard, pull into the flat parameter buffer) vs a plain libtorch loop on the same
//    model, batch and loader, interleaved rounds, ratios paired per round (goal: <= 3%
//    overhead);
//  * the overlapped step vs the sequential one on a modeled link, compute-bound (1 Gbit/s)
//    and communication-bound (10 Mbit/s on this 2-core VM) (goal where communication
//    dominates: overlapped <= 1.15 x max(compute, communication)).
// Run: build-*/bench/gradzip_bench_trainer --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "trainer/loader.h"
#include "trainer/model_zoo.h"
#include "trainer/train.h"

namespace gz = gradzip::trainer;

namespace {

struct Setup {
  const char* model;
  int channels, size;
  std::size_t batch;
};
// 0: small CNN on Fashion-MNIST-shaped input; 1: resnet20 on CIFAR-shaped input.
const Setup kSetups[] = {{"cnn", 1, 28, 64}, {"resnet20", 3, 32, 32}};

gz::SyntheticOptions synthetic(const Setup& s) {
  gz::SyntheticOptions o;
  o.channels = s.channels;
  o.height = o.width = s.size;
  o.train_size = 4096;
  o.test_size = 64;
  return o;
}

gz::AugmentOptions standard_augment(const Setup& s) {
  gz::AugmentOptions a;
  a.crop_padding = s.channels == 3 ? 4 : 2;  // He et al. 2016 CIFAR recipe
  a.horizontal_flip = s.channels == 3;
  return a;
}

void BM_LoaderImagesPerSecond(benchmark::State& state) {
  const Setup& s = kSetups[state.range(0)];
  const gz::DataSplit data = gz::make_synthetic(synthetic(s));
  const gz::ChannelStats norm = gz::channel_stats(data.train);
  gz::LoaderOptions lo;
  lo.batch_size = s.batch;
  lo.threads = static_cast<int>(state.range(1));
  lo.augment = standard_augment(s);
  gz::Loader loader(data.train, norm, nullptr, lo);
  int epoch = 0;
  loader.start_epoch(epoch);
  std::int64_t images = 0;
  gz::Batch b;
  for (auto _ : state) {
    if (!loader.next(&b)) {
      loader.start_epoch(++epoch);
      loader.next(&b);
    }
    images += static_cast<std::int64_t>(b.size);
  }
  state.SetItemsProcessed(images);
  state.SetLabel(std::string(s.model) + " input, " + std::to_string(lo.threads) + " threads");
}
BENCHMARK(BM_LoaderImagesPerSecond)->Args({0, 1})->Args({0, 2})->Args({1, 1})->Args({1, 2})->UseRealTime();

/// The plain libtorch model of a setup, seeded, in training mode, with its SGD.
struct PlainModel {
  std::shared_ptr<gz::Net> net;
  std::unique_ptr<torch::optim::SGD> opt;
  explicit PlainModel(const Setup& s) {
    gz::ModelSpec spec;
    spec.name = s.model;
    spec.channels = s.channels;
    spec.height = spec.width = s.size;
    spec.classes = 10;
    torch::manual_seed(1);
    net = gz::make_model(spec);
    opt = std::make_unique<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
    net->train();
  }
  /// One plain training step: forward, backward, torch::optim::SGD step.
  void step(const torch::Tensor& x, const torch::Tensor& y) {
    opt->zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(net->forward(x), y);
    loss.backward();
    opt->step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
};

/// Baseline: plain libtorch training step (forward, backward, torch::optim::SGD step).
void BM_PlainLibtorchStep(benchmark::State& state) {
  const Setup& s = kSetups[state.range(0)];
  torch::set_num_threads(2);
  PlainModel m(s);
  const auto n = static_cast<std::int64_t>(s.batch);
  const torch::Tensor x = torch::randn({n, s.channels, s.size, s.size});
  const torch::Tensor y = torch::randint(0, 10, {n}, torch::kInt64);
  for (auto _ : state) m.step(x, y);
  state.SetItemsProcessed(state.iterations() * n);
  state.SetLabel(std::string(s.model) + " batch " + std::to_string(n) + " (images/s the model consumes)");
}
BENCHMARK(BM_PlainLibtorchStep)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

/// Per-step seconds of worker 0 in a run_training (steps only: no setup, no evaluation).
double step_seconds(const gz::TrainResult& r) { return r.steps ? r.train_seconds / static_cast<double>(r.steps) : 0; }

/// Overhead of the gradzip worker (flat buffers, identity codec, one in-process shard,
/// pull into the flat parameter buffer; overlap on and off) against a plain libtorch
/// loop on the same model, batch, data loader and torch threads, interleaved in each
/// iteration (a round); step times are medians over the rounds, the ratios to the plain
/// loop are paired within a round, with their median, min and max. Goal: <= 3% (issue 11).
void BM_WorkerOverheadVsPlainLoop(benchmark::State& state) {
  const Setup& s = kSetups[state.range(0)];
  constexpr std::size_t kSteps = 16;
  gz::TrainConfig c;
  c.model = s.model;
  c.dataset = "synthetic";
  c.synthetic = synthetic(s);
  c.synthetic.train_size = kSteps * s.batch;
  c.synthetic.test_size = 16;
  c.batch_size = s.batch;
  c.epochs = 1;
  c.compressor = "identity";
  c.optimizer.lr = 0.05;
  c.optimizer.momentum = 0.9;
  c.torch_threads = 2;
  c.loader_threads = 1;
  c.placement.bucket_bytes = 1 << 20;
  const gz::DataSplit data = gz::make_synthetic(c.synthetic);
  const gz::ChannelStats norm = gz::channel_stats(data.train);
  auto plain_loop = [&] {
    torch::set_num_threads(c.torch_threads);
    PlainModel m(s);
    gz::LoaderOptions lo;
    lo.batch_size = s.batch;
    lo.threads = c.loader_threads;
    lo.drop_last = true;
    gz::Loader loader(data.train, norm, nullptr, lo);
    loader.start_epoch(0);
    gz::Batch b;
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t steps = 0;
    while (loader.next(&b)) {
      const auto n = static_cast<std::int64_t>(b.size);
      const torch::Tensor x = torch::from_blob(b.images.data(), {n, s.channels, s.size, s.size}, torch::kFloat32);
      const torch::Tensor y = torch::from_blob(b.labels.data(), {n}, torch::kInt64);
      m.step(x, y);
      ++steps;
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / static_cast<double>(steps);
  };
  std::vector<double> plain, overlap_on, overlap_off;
  int round = 0;
  for (auto _ : state) {
    // Rotate the order so drift of the shared machine's load hits every side alike.
    for (int k = 0; k < 3; ++k) {
      switch ((round + k) % 3) {
        case 0: plain.push_back(plain_loop()); break;
        case 1:
          c.overlap = true;
          overlap_on.push_back(step_seconds(gz::run_training(c)));
          break;
        default:
          c.overlap = false;
          overlap_off.push_back(step_seconds(gz::run_training(c)));
      }
    }
    ++round;
    state.SetIterationTime(overlap_on.back());
  }
  state.counters["plain_ms"] = 1e3 * median(plain);
  state.counters["gradzip_overlap_ms"] = 1e3 * median(overlap_on);
  state.counters["gradzip_sequential_ms"] = 1e3 * median(overlap_off);
  // Ratios paired within a round (the three runs of one round saw about the same load),
  // then their median and spread over the rounds.
  const auto paired = [&](const char* name, const std::vector<double>& runs) {
    std::vector<double> r;
    for (std::size_t i = 0; i < runs.size() && i < plain.size(); ++i) r.push_back(runs[i] / plain[i]);
    state.counters[name] = median(r);
    state.counters[std::string(name) + "_min"] = r.empty() ? 0.0 : *std::min_element(r.begin(), r.end());
    state.counters[std::string(name) + "_max"] = r.empty() ? 0.0 : *std::max_element(r.begin(), r.end());
  };
  paired("overlap_over_plain", overlap_on);
  paired("sequential_over_plain", overlap_off);
  state.SetLabel(std::string(s.model) + " batch " + std::to_string(s.batch) +
                 ", identity, 1 worker, 1 inproc shard, 2 torch threads; per-round ratios, median [min, max] over " +
                 std::to_string(plain.size()) + " interleaved rounds (goal <= 1.03)");
}
BENCHMARK(BM_WorkerOverheadVsPlainLoop)->Arg(0)->Arg(1)->UseManualTime()->Iterations(9)->Unit(benchmark::kMillisecond);

/// Overlap on a communication-bound set-up: resnet20 at width 8 on CIFAR-shaped data, 4
/// workers (threads) over the in-process transport, each behind its own modeled link of
/// state.range(0) Mbit/s (trainer/transport_decorators.h), batch state.range(1). Four
/// runs per iteration, interleaved (the order rotates), per step of worker 0, medians:
///   compute_seq / compute_ovl = the sequential / overlapped step without link delay
///                 (forward, backward, encode, in-process push/pull: the step when the
///                 network costs nothing),
///   comm        = a worker's bytes per step (up + down, counted) / link bandwidth,
///   sequential  = the sequential step with the link (expected: compute_seq + comm),
///   overlapped  = the overlapped step with the link
///                 (goal: <= 1.15 x max(compute_ovl, comm)).
/// Communication-bound means comm > compute: at 1000 Mbit/s this 2-core VM's compute
/// (4 workers on 2 cores) is several times the communication, so the 10 Mbit/s case is the
/// communication-bound one here (comm ~3x compute); both are reported.
void BM_OverlapOnACommunicationBoundLink(benchmark::State& state) {
  const double bytes_per_s = static_cast<double>(state.range(0)) * 1e6 / 8;
  constexpr std::size_t kWorkers = 4, kSteps = 6;
  gz::TrainConfig c;
  c.model = "resnet20";
  c.base_width = 8;
  c.dataset = "synthetic";
  c.synthetic = synthetic(kSetups[1]);
  c.batch_size = static_cast<std::size_t>(state.range(1));
  c.synthetic.train_size = kWorkers * kSteps * c.batch_size;
  c.synthetic.test_size = 16;
  c.epochs = 2;  // bytes per step from the second epoch (the first includes the initial pull)
  c.workers = kWorkers;
  c.compressor = "identity";
  c.optimizer.lr = 0.05;
  c.torch_threads = 1;
  c.loader_threads = 1;
  c.placement.bucket_bytes = 64 << 10;
  c.placement.first_bucket_bytes = 16 << 10;
  c.placement.min_compress_numel = 0;
  // Runs: 0 sequential, no link; 1 overlapped, no link; 2 sequential, link; 3 overlapped, link.
  std::vector<double> runs[4], comm;
  int round = 0;
  for (auto _ : state) {
    for (int k = 0; k < 4; ++k) {
      const int which = (round + k) % 4;
      c.overlap = which % 2 == 1;
      c.sim_link_bytes_per_s = which < 2 ? 0.0 : bytes_per_s;
      const gz::TrainResult r = gz::run_training(c);
      runs[which].push_back(step_seconds(r));
      if (which == 2 && r.epochs.size() == 2) {
        const auto bytes = [](const gz::EpochMetrics& m) {
          return static_cast<double>(m.traffic.up.payload_bytes + m.traffic.up.framing_bytes +
                                     m.traffic.down.payload_bytes + m.traffic.down.framing_bytes);
        };
        const double steps = static_cast<double>(r.epochs[1].steps - r.epochs[0].steps) * kWorkers;
        comm.push_back((bytes(r.epochs[1]) - bytes(r.epochs[0])) / steps / bytes_per_s);
      }
    }
    ++round;
    state.SetIterationTime(runs[3].back());
  }
  const double cs = median(runs[0]), co = median(runs[1]), cm = median(comm);
  const double sq = median(runs[2]), ov = median(runs[3]);
  state.counters["compute_seq_ms"] = 1e3 * cs;
  state.counters["compute_ovl_ms"] = 1e3 * co;
  state.counters["comm_ms"] = 1e3 * cm;
  state.counters["sequential_ms"] = 1e3 * sq;
  state.counters["overlapped_ms"] = 1e3 * ov;
  state.counters["sequential_over_sum"] = sq / (cs + cm);
  state.counters["overlapped_over_max"] = ov / std::max(co, cm);
  state.counters["comm_over_compute"] = cm / co;
  state.SetLabel("resnet20 w8, 4 workers, " + std::to_string(state.range(0)) + " Mbit/s per worker, batch " +
                 std::to_string(state.range(1)) + "; goal overlapped_over_max <= 1.15 where comm_over_compute > 1");
}
BENCHMARK(BM_OverlapOnACommunicationBoundLink)
    ->Args({1000, 2})
    ->Args({10, 2})
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
