// PowerSGD rank 4 (quant/powersgd.h) on the ResNet-18 layer shapes, one core, against a
// memcpy of the same gradient bytes measured in the same run:
//
//   powersgd/memcpy/n=N                  memcpy of the 4N gradient bytes (baseline)
//   powersgd/compute/ROWSxCOLS/n=N       compute_p, set_reduced_p (orthonormalise),
//                                        compute_q, set_reduced_q: what a rank computes
//                                        around the two reductions (reductions omitted:
//                                        one rank, the buffers pass through)
//   powersgd/finish/ROWSxCOLS/n=N        finish: approx = P Q^T and the residual update
// Shapes: conv 3x3 weights as out x in*9 (512x4608, 256x2304, 128x1152, 64x576) and the
// fc layer 1000x512. SetBytesProcessed = 4N per iteration, so main()'s summary table
// (bench/quant/codec_bench.cc) prints each as a fraction of the memcpy rate at the same N.
// The counter "reduced_floats" is what the rank sends per step, rank * (rows + cols).
//
//   gradzip_bench_quant --benchmark_filter='powersgd/'
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/powersgd.h"

namespace gradzip::quant {
namespace {

std::vector<float> gaussian(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = d(rng);
  return x;
}

void bm_memcpy(benchmark::State& state, std::size_t n) {
  const auto x = gaussian(n, 1);
  std::vector<float> y(n, 0.0f);
  for (auto _ : state) {
    std::memcpy(y.data(), x.data(), 4 * n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(4 * n));
}

/// One PowerSGD step split in the timed part (`finish_timed` picks which) and the rest.
void bm_powersgd(benchmark::State& state, std::size_t rows, std::size_t cols, bool finish_timed) {
  PowerSgdPlan plan;
  if (!plan_powersgd({static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)}, PowerSgdConfig{4, 1}, &plan)
           .ok() ||
      !plan.compressed) {
    return state.SkipWithError("shape is not compressed");
  }
  PowerSgdState s(plan, 1, 0);
  const auto g = gaussian(rows * cols, 2);
  std::vector<float> p(s.p_numel()), q(s.q_numel()), approx(rows * cols, 0.0f);
  const auto compute = [&] {
    Status st = s.compute_p(g.data(), p.data());
    if (st.ok()) st = s.set_reduced_p(p.data());
    if (st.ok()) st = s.compute_q(q.data());
    if (st.ok()) st = s.set_reduced_q(q.data());
    return st;
  };
  // An untimed warm-up step touches the residual and every buffer once.
  if (Status st = compute(); !st.ok() || !(st = s.finish(approx.data())).ok()) {
    return state.SkipWithError(st.to_string().c_str());
  }
  for (auto _ : state) {
    if (finish_timed) state.PauseTiming();
    Status st = compute();
    if (finish_timed) {
      state.ResumeTiming();
    } else {
      state.PauseTiming();
    }
    if (st.ok()) st = s.finish(approx.data());
    if (!finish_timed) state.ResumeTiming();
    if (!st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(approx.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(4 * rows * cols));
  state.counters["reduced_floats"] = static_cast<double>(plan.floats_per_step());
}

int register_powersgd_benchmarks() {
  const std::size_t shapes[][2] = {{512, 4608}, {256, 2304}, {128, 1152}, {64, 576}, {1000, 512}};
  for (const auto& shape : shapes) {
    const std::size_t rows = shape[0], cols = shape[1], n = rows * cols;
    const std::string ns = "/n=" + std::to_string(n);
    const std::string dims = "/" + std::to_string(rows) + "x" + std::to_string(cols);
    benchmark::RegisterBenchmark(("powersgd/memcpy" + ns).c_str(), bm_memcpy, n)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("powersgd/compute" + dims + ns).c_str(), bm_powersgd, rows, cols, false)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("powersgd/finish" + dims + ns).c_str(), bm_powersgd, rows, cols, true)
        ->Unit(benchmark::kMicrosecond);
  }
  return 0;
}
const int kRegistered = register_powersgd_benchmarks();

}  // namespace
}  // namespace gradzip::quant
