// Codec microbenchmarks: every registered codec (default params) at n = 1M, 11.2M
// (ResNet-18) and 25.6M (ResNet-50) fp32 elements of N(0, 1) data, one core, with a
// memcpy of the same 4n bytes as the baseline measured in the same run.
//
//   codec/memcpy/n=N            memcpy of 4n bytes (baseline)
//   codec/encode+EF/SPEC/n=N    what a worker does per bucket and step: the fused
//                               Memory::encode_step of memory ef (p = g + e, encode(p),
//                               e = p - decode; quant/feedback.h; the unfused path is in
//                               feedback_bench.cc); every iteration starts from the same residual (restored
//                               untimed), the one left by an untimed warm-up step
//   codec/encode/SPEC/n=N       encode alone
//   codec/decode_add/SPEC/n=N   what a server does per message: acc += scale * decode(msg)
// Each reports bytes of fp32 input per second (SetBytesProcessed = 4n per iteration) and
// the compression ratio (4n / message bytes) as a counter. At the end, a summary table
// prints every rate as a fraction of the memcpy rate at the same n (from the same run).
// Goals (one core): fp16, bf16, int8, scaled-sign, onebit >= 0.5 of memcpy; qsgd,
// terngrad, natural >= 0.25 (encode; fused encode+EF reads g and e twice and writes e
// and the message: ~3x the bytes of a memcpy).
//
//   gradzip_bench_quant --benchmark_filter='codec/' --benchmark_min_time=0.1
//
// This file also holds main() of gradzip_bench_quant: other files in bench/quant/
// register their benchmarks with BENCHMARK() or RegisterBenchmark at static init.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quant/memory.h"
#include "quant/registry.h"

namespace gradzip::quant {
namespace {

const std::vector<float>& normal_input(std::size_t n) {
  static std::map<std::size_t, std::vector<float>> cache;
  auto it = cache.find(n);
  if (it == cache.end()) {
    std::mt19937 rng(4321);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> x(n);
    for (auto& v : x) v = d(rng);
    it = cache.emplace(n, std::move(x)).first;
  }
  return it->second;
}

void set_bytes(benchmark::State& state, std::size_t n) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(4 * n));
}

void bm_memcpy(benchmark::State& state, std::size_t n) {
  const auto& x = normal_input(n);
  std::vector<float> y(n, 0.0f);
  for (auto _ : state) {
    std::memcpy(y.data(), x.data(), 4 * n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n);
}

void bm_encode_ef(benchmark::State& state, std::string spec, std::size_t n) {
  const auto codec = make_codec(spec);
  const auto memory = make_memory("ef");
  const auto& g = normal_input(n);
  MemoryState ef;
  std::vector<std::uint8_t> msg(codec->max_encoded_bytes(n));
  std::size_t bytes = 0;
  const auto step_once = [&]() {
    return memory->encode_step(*codec, g.data(), n, SeedContext{1, 1, 0, 0}, &ef, msg.data(), msg.size(), &bytes);
  };
  // One untimed step sizes the residual and leaves a realistic (non-zero) one; every
  // timed iteration starts again from that residual, so each measures the same work
  // (an accumulating residual would change the data, and so the sparse codecs' work,
  // from one iteration to the next).
  if (const Status st = step_once(); !st.ok()) return state.SkipWithError(st.to_string().c_str());
  const MemoryState start = ef;
  for (auto _ : state) {
    state.PauseTiming();
    std::copy(start.residual.begin(), start.residual.end(), ef.residual.begin());
    ef.steps = start.steps;
    state.ResumeTiming();
    if (const Status st = step_once(); !st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(ef.residual.data());
  }
  set_bytes(state, n);
  state.counters["ratio"] = static_cast<double>(4 * n) / static_cast<double>(bytes);
}

void bm_encode(benchmark::State& state, std::string spec, std::size_t n) {
  const auto codec = make_codec(spec);
  const auto& g = normal_input(n);
  std::vector<std::uint8_t> msg(codec->max_encoded_bytes(n), 0);
  std::size_t bytes = 0;
  std::uint64_t step = 0;
  for (auto _ : state) {
    const Status st = codec->encode(g.data(), n, SeedContext{1, ++step, 0, 0}, msg.data(), msg.size(), &bytes);
    if (!st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(msg.data());
  }
  set_bytes(state, n);
  state.counters["ratio"] = static_cast<double>(4 * n) / static_cast<double>(bytes);
}

void bm_decode_add(benchmark::State& state, std::string spec, std::size_t n) {
  const auto codec = make_codec(spec);
  const auto& g = normal_input(n);
  const auto msg = codec->encode(g.data(), n, SeedContext{1, 1, 0, 0});
  std::vector<float> acc(n, 0.0f);
  for (auto _ : state) {
    const Status st = codec->decode_add(msg.data(), msg.size(), acc.data(), n, 0.25f);
    if (!st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(acc.data());
  }
  set_bytes(state, n);
  state.counters["ratio"] = static_cast<double>(4 * n) / static_cast<double>(msg.size());
}

void register_codec_benchmarks() {
  for (const std::size_t n : {std::size_t{1000000}, std::size_t{11200000}, std::size_t{25600000}}) {
    const std::string ns = "/n=" + std::to_string(n);
    benchmark::RegisterBenchmark(("codec/memcpy" + ns).c_str(), bm_memcpy, n)->Unit(benchmark::kMillisecond);
    for (const auto* e : codec_entries()) {
      const std::string spec = make_codec(e->name)->spec();
      benchmark::RegisterBenchmark(("codec/encode+EF/" + spec + ns).c_str(), bm_encode_ef, spec, n)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("codec/encode/" + spec + ns).c_str(), bm_encode, spec, n)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("codec/decode_add/" + spec + ns).c_str(), bm_decode_add, spec, n)
          ->Unit(benchmark::kMillisecond);
    }
  }
}

/// Console output plus, at the end, each benchmark's bytes/s as a fraction of the memcpy
/// bytes/s at the same n measured in this run ("/memcpy/n=N" entries).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      // One rate per benchmark: the median when repetitions are requested, else the run.
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.error_occurred || !(median || run.run_type == Run::RT_Iteration)) continue;
      const auto it = run.counters.find("bytes_per_second");
      if (it == run.counters.end()) continue;
      const std::string name = run.run_name.str();
      const auto slash = name.rfind("/n=");
      if (slash == std::string::npos) continue;
      const std::string n = name.substr(slash + 3);
      if (name.find("/memcpy/") != std::string::npos) {
        memcpy_rate_[n] = it->second.value;
        continue;
      }
      auto found = std::find_if(rates_.begin(), rates_.end(), [&](const Rate& r) { return r.name == name; });
      if (found == rates_.end()) {
        rates_.push_back({name, n, it->second.value});
      } else if (median) {
        found->rate = it->second.value;
      }
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    if (rates_.empty()) return;
    std::printf("\n%-64s %10s %10s\n", "benchmark", "GB/s", "vs memcpy");
    for (const auto& r : rates_) {
      const auto m = memcpy_rate_.find(r.n);
      std::printf("%-64s %10.3f %10s\n", r.name.c_str(), r.rate / 1e9,
                  m == memcpy_rate_.end() ? "-" : std::to_string(r.rate / m->second).substr(0, 5).c_str());
    }
    for (const auto& [n, rate] : memcpy_rate_) std::printf("memcpy n=%s: %.3f GB/s\n", n.c_str(), rate / 1e9);
  }

 private:
  struct Rate {
    std::string name, n;
    double rate;
  };
  std::vector<Rate> rates_;
  std::map<std::string, double> memcpy_rate_;
};

}  // namespace
}  // namespace gradzip::quant

int main(int argc, char** argv) {
  gradzip::quant::register_codec_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  gradzip::quant::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
