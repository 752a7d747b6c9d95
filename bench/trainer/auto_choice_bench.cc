// Start-up cost of `--compressor auto` (comm/auto_choice.h) for a ResNet-50-sized model
// (161 tensors, 25.6M parameters, the torchvision ResNet-50 shapes generated below):
// measuring the default candidates on this machine plus choosing per tensor. Goal: < 2 s.
// Baseline in the same run: one worker step of ef+qsgd:bits=4 over all 25.6M elements
// (what every training step spends on compression), so `steps` = start-up / one step.
//
//   gradzip_bench_trainer --benchmark_filter=auto_choice
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

#include "experiments/auto_choice.h"
#include "quant/registry.h"

namespace gradzip::experiments {
namespace {

/// ResNet-50 (He et al. 2016, Table 1; torchvision layout): stem, 4 stages of bottleneck
/// blocks [3, 4, 6, 3] with widths 64..512 (x4 out), batch-norm weight and bias per conv,
/// a 1x1 downsample conv + bn on each stage's first block, fc 2048 -> 1000.
std::vector<comm::TensorInfo> resnet50_tensors() {
  std::vector<comm::TensorInfo> t;
  auto conv = [&](const std::string& name, std::int64_t out, std::int64_t in, std::int64_t k) {
    t.push_back({name + ".weight", {out, in, k, k}, static_cast<std::uint64_t>(out * in * k * k)});
  };
  auto bn = [&](const std::string& name, std::int64_t c) {
    t.push_back({name + ".weight", {c}, static_cast<std::uint64_t>(c)});
    t.push_back({name + ".bias", {c}, static_cast<std::uint64_t>(c)});
  };
  conv("conv1", 64, 3, 7);
  bn("bn1", 64);
  std::int64_t in = 64;
  const int blocks[] = {3, 4, 6, 3};
  for (int s = 0; s < 4; ++s) {
    const std::int64_t w = 64 << s, out = 4 * w;
    for (int b = 0; b < blocks[s]; ++b) {
      const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(b);
      conv(p + ".conv1", w, in, 1);
      bn(p + ".bn1", w);
      conv(p + ".conv2", w, w, 3);
      bn(p + ".bn2", w);
      conv(p + ".conv3", out, w, 1);
      bn(p + ".bn3", out);
      if (b == 0) {
        conv(p + ".downsample.0", out, in, 1);
        bn(p + ".downsample.1", out);
      }
      in = out;
    }
  }
  t.push_back({"fc.weight", {1000, 2048}, 2048000});
  t.push_back({"fc.bias", {1000}, 1000});
  return t;
}

void bm_auto_startup(benchmark::State& state) {
  const auto tensors = resnet50_tensors();
  std::uint64_t total = 0;
  for (const auto& x : tensors) total += x.numel;
  // Baseline: one ef+qsgd:bits=4 worker step over the whole model (untimed warm-up first).
  const quant::Compressor q = quant::make_compressor("ef+qsgd:bits=4");
  std::vector<float> g(total, 0.5f), x(total), d(total);
  std::vector<std::uint8_t> msg(q.codec->max_encoded_bytes(total));
  quant::MemoryState ef;
  std::size_t bytes = 0;
  auto step = [&] {
    q.memory->compensate(g.data(), x.data(), total, &ef);
    (void)q.codec->encode(x.data(), total, {1, 2, 0, 0}, msg.data(), msg.size(), &bytes);
    (void)q.codec->decode(msg.data(), bytes, d.data(), total);
    q.memory->update(x.data(), d.data(), total, &ef);
  };
  step();
  const auto b0 = std::chrono::steady_clock::now();
  step();
  const double step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - b0).count();
  const AutoSpec spec = parse_auto_spec("auto:link=eth10g");
  double startup = 0.0;
  for (auto _ : state) {
    const AutoPlan plan = choose_compressors(tensors, spec, 8, 2);
    startup = plan.startup_s;
    benchmark::DoNotOptimize(plan.rules.data());
  }
  state.counters["tensors"] = static_cast<double>(tensors.size());
  state.counters["parameters"] = static_cast<double>(total);
  state.counters["startup_s"] = startup;
  state.counters["qsgd4_ef_step_s"] = step_s;
  state.counters["steps"] = startup / step_s;
}

BENCHMARK(bm_auto_startup)->Name("auto_choice/startup/resnet50")->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace gradzip::experiments
