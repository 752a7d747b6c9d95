// Sparse codec microbenchmarks: topk, dgc, randk and threshold at 0.1% and 1% density,
// n = 1M, 11.2M (ResNet-18) and 25.6M (ResNet-50) fp32 elements of N(0, 1) data, with a
// memcpy of the same bytes as the baseline measured in the same run.
//
// Reported: bytes of fp32 input per second (SetBytesProcessed), the compression ratio
// (fp32 bytes / message bytes) and the kept density as counters. Compare entries of one
// run only, e.g. time(topk) / time(dgc) at the same n and density (goal: dgc >= 4x
// faster than exact topk at 0.1%), or bytes/s against sparse/memcpy.
//
//   gradzip_bench_quant --benchmark_filter='sparse/' [--benchmark_format=json]
#include <benchmark/benchmark.h>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quant/registry.h"

namespace gradzip::quant {
namespace {

const std::vector<float>& gaussian_input(std::size_t n) {
  static std::map<std::size_t, std::vector<float>> cache;
  auto it = cache.find(n);
  if (it == cache.end()) {
    std::mt19937 rng(1234);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> x(n);
    for (auto& v : x) v = d(rng);
    it = cache.emplace(n, std::move(x)).first;
  }
  return it->second;
}

void bm_memcpy(benchmark::State& state, std::size_t n) {
  const auto& x = gaussian_input(n);
  std::vector<float> y(n);
  for (auto _ : state) {
    std::memcpy(y.data(), x.data(), 4 * n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(4 * n));
}

void bm_encode(benchmark::State& state, std::string spec, std::size_t n) {
  const auto codec = make_codec(spec);
  const auto& x = gaussian_input(n);
  std::vector<std::uint8_t> out(codec->max_encoded_bytes(n));
  std::size_t bytes = 0;
  std::uint64_t step = 0;
  for (auto _ : state) {
    // A new step each iteration (randk/dgc draw new random numbers, as in training).
    const Status st = codec->encode(x.data(), n, SeedContext{1, ++step, 0, 0}, out.data(), out.size(), &bytes);
    if (!st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(4 * n));
  std::vector<float> y(n);
  if (codec->decode(out.data(), bytes, y.data(), n).ok()) {
    std::size_t kept = 0;
    for (float v : y) kept += v != 0.0f;
    state.counters["density"] = static_cast<double>(kept) / static_cast<double>(n);
  }
  state.counters["ratio"] = static_cast<double>(4 * n) / static_cast<double>(bytes);
}

void bm_decode_add(benchmark::State& state, std::string spec, std::size_t n) {
  const auto codec = make_codec(spec);
  const auto& x = gaussian_input(n);
  const auto msg = codec->encode(x.data(), n, SeedContext{1, 1, 0, 0});
  std::vector<float> acc(n, 0.0f);
  for (auto _ : state) {
    const Status st = codec->decode_add(msg.data(), msg.size(), acc.data(), n, 0.5f);
    if (!st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(acc.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(4 * n));
}

/// Thresholds that keep the requested density of N(0, 1) data: P(|x| >= tau) = density.
const char* gaussian_tau(const std::string& density) { return density == "0.001" ? "3.2905" : "2.5758"; }

[[maybe_unused]] const bool kRegistered = [] {
  const std::size_t sizes[] = {1000000, 11200000, 25600000};
  for (const std::size_t n : sizes) {
    const std::string ns = "/n=" + std::to_string(n);
    benchmark::RegisterBenchmark(("sparse/memcpy" + ns).c_str(), bm_memcpy, n)->Unit(benchmark::kMillisecond);
    for (const std::string density : {"0.001", "0.01"}) {
      const std::string specs[] = {"topk:ratio=" + density, "dgc:ratio=" + density, "dgc:sample=0.01,ratio=" + density,
                                   "randk:ratio=" + density, std::string("threshold:tau=") + gaussian_tau(density)};
      for (const auto& spec : specs) {
        benchmark::RegisterBenchmark(("sparse/encode/" + spec + ns).c_str(), bm_encode, spec, n)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("sparse/decode_add/" + spec + ns).c_str(), bm_decode_add, spec, n)
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  return true;
}();

}  // namespace
}  // namespace gradzip::quant
