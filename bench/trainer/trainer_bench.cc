// Trainer benchmarks, each against a baseline measured in the same run:
//  * data pipeline images/s (Loader: decode + augment + batch) vs the images/s the model
//    consumes (plain libtorch forward + backward + SGD step) — the pipeline should be
//    several times faster so the device never waits for data;
//  * per-step time of the gradzip worker (flat buffers, identity codec, in-process
//    shard, pull into the flat parameter buffer) vs a plain libtorch loop on the same
//    model and batch (goal: <= 5% overhead).
// Run: build-*/bench/gradzip_bench_trainer --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <torch/torch.h>

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

/// Baseline: plain libtorch training step (forward, backward, torch::optim::SGD step).
void BM_PlainLibtorchStep(benchmark::State& state) {
  const Setup& s = kSetups[state.range(0)];
  torch::set_num_threads(2);
  gz::ModelSpec spec;
  spec.name = s.model;
  spec.channels = s.channels;
  spec.height = spec.width = s.size;
  spec.classes = 10;
  torch::manual_seed(1);
  auto net = gz::make_model(spec);
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  const auto n = static_cast<std::int64_t>(s.batch);
  const torch::Tensor x = torch::randn({n, s.channels, s.size, s.size});
  const torch::Tensor y = torch::randint(0, 10, {n}, torch::kInt64);
  net->train();
  for (auto _ : state) {
    opt.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(net->forward(x), y);
    loss.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetLabel(std::string(s.model) + " batch " + std::to_string(n) + " (images/s the model consumes)");
}
BENCHMARK(BM_PlainLibtorchStep)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

/// The gradzip worker: run_training for `steps` steps (1 worker, identity codec, one
/// in-process shard); the iteration time is the per-step time from the worker's own
/// stage timers (setup and evaluation excluded).
void BM_GradzipWorkerStep(benchmark::State& state) {
  const Setup& s = kSetups[state.range(0)];
  gz::TrainConfig c;
  c.model = s.model;
  c.dataset = "synthetic";
  c.synthetic = synthetic(s);
  c.batch_size = s.batch;
  c.max_steps = 30;
  c.epochs = 1;
  c.compressor = "identity";
  c.optimizer.lr = 0.05;
  c.optimizer.momentum = 0.9;
  c.torch_threads = 2;
  c.loader_threads = 1;
  gz::StageSeconds total;
  std::uint64_t steps = 0;
  for (auto _ : state) {
    const gz::TrainResult r = gz::run_training(c);
    state.SetIterationTime(r.stages.total() / static_cast<double>(r.steps));
    total.compute += r.stages.compute;
    total.data_wait += r.stages.data_wait;
    total.encode += r.stages.encode;
    total.send += r.stages.send;
    total.pull_wait += r.stages.pull_wait;
    steps += r.steps;
  }
  const double st = static_cast<double>(steps);
  state.counters["compute_ms"] = 1e3 * total.compute / st;
  state.counters["data_wait_ms"] = 1e3 * total.data_wait / st;
  state.counters["encode_ms"] = 1e3 * total.encode / st;
  state.counters["send_ms"] = 1e3 * total.send / st;
  state.counters["pull_ms"] = 1e3 * total.pull_wait / st;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * s.batch));  // per-step iteration time
  state.SetLabel(std::string(s.model) + " batch " + std::to_string(s.batch) + " identity, 1 worker, 1 inproc shard");
}
BENCHMARK(BM_GradzipWorkerStep)->Arg(0)->Arg(1)->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
