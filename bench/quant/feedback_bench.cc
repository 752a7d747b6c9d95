// Error feedback on the CPU (issue 11, point 3): the fused path (Memory::encode_step,
// quant/feedback.h) against the unfused reference and a memcpy of the gradient, at
// n = 25.6M fp32 elements (ResNet-50) of N(0, 1) data, memory "ef" as make_compressor
// builds it (scale=auto: 1/(1+omega) over the unbiased codecs qsgd, terngrad, natural,
// zipml, 1 otherwise), every registered codec with its defaults; then the thread pool (quant/encode_pool.h) with 1 and 2 threads.
//
//   feedback/memcpy/n=N              memcpy of 4n bytes (the baseline)
//   feedback/unfused/SPEC/n=N        compensate -> encode -> decode -> update (two n-float temporaries)
//   feedback/fused/SPEC/n=N          Memory::encode_step
//   feedback/pool/memcpy/threads=T   the memcpy split into 16 chunks, T threads: the
//                                    ceiling of a memory-bound pool's vs_1_thread
//   feedback/pool/SPEC/threads=T     the same n split into 16 buckets, EncodePool(T)
// Every stateful benchmark runs one untimed step first (sizes the residual: a first touch
// of 100 MB costs ~350 ms on these VMs and would otherwise be measured) and restores that
// residual, untimed, before each timed step, so every iteration does the same work.
// Counters, from times measured in the same run (each benchmark >= 2 s):
//   x_memcpy       time / memcpy time             (goal for dense codecs, fused: <= 3)
//   fused_speedup  unfused time / fused time      (on the fused entries)
//   vs_1_thread    1-thread time / T-thread time  (goal at T = 2: >= 1.6)
//   cpu_x_memcpy, cpu_fused_speedup: the same ratios of this thread's CPU time, which a
//   loaded shared machine disturbs less than wall-clock time (single-thread entries).
//
//   gradzip_bench_quant --benchmark_filter='feedback/'
#include <benchmark/benchmark.h>

#include <time.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "quant/encode_pool.h"
#include "quant/registry.h"

namespace gradzip::quant {
namespace {

constexpr std::size_t kN = 25600000;
constexpr double kMinSeconds = 2.0;
constexpr std::size_t kPoolBuckets = 16;

const std::vector<float>& gradient() {
  static const std::vector<float> g = [] {
    std::mt19937 rng(4321);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> x(kN);
    for (auto& v : x) v = d(rng);
    return x;
  }();
  return g;
}

/// Wall-clock and this thread's CPU seconds.
struct Times {
  double real = 0, cpu = 0;
};
Times now() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return {std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(),
          static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec)};
}
void add_since(const Times& t0, Times* total) {
  const Times t1 = now();
  total->real += t1.real - t0.real;
  total->cpu += t1.cpu - t0.cpu;
}

/// Times per iteration of the benchmarks run so far (name -> times), for the ratios.
std::map<std::string, Times>& per_iter() {
  static std::map<std::string, Times> m;
  return m;
}
/// Records this benchmark's times per iteration and its ratios to memcpy and, when
/// `baseline` ran, baseline / this as counter `name` (cpu_`name` for CPU time).
void record(benchmark::State& state, const std::string& key, const Times& total, const std::string& baseline = "",
            const std::string& name = "") {
  if (state.iterations() == 0) return;
  const auto iters = static_cast<double>(state.iterations());
  const Times per{total.real / iters, total.cpu / iters};
  per_iter()[key] = per;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(4 * kN));
  const auto m = per_iter().find("memcpy");
  if (m != per_iter().end()) {
    state.counters["x_memcpy"] = per.real / m->second.real;
    state.counters["cpu_x_memcpy"] = per.cpu / m->second.cpu;
  }
  const auto b = per_iter().find(baseline);
  if (!baseline.empty() && b != per_iter().end()) {
    state.counters[name] = b->second.real / per.real;
    state.counters["cpu_" + name] = b->second.cpu / per.cpu;
  }
}

void bm_memcpy(benchmark::State& state) {
  const auto& g = gradient();
  std::vector<float> y(kN, 0.0f);
  Times total;
  for (auto _ : state) {
    const Times t0 = now();
    std::memcpy(y.data(), g.data(), 4 * kN);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    add_since(t0, &total);
  }
  record(state, "memcpy", total);
}

/// One EF step of the whole gradient, fused or not; repeated from the same residual.
void bm_step(benchmark::State& state, const std::string& spec, bool fused) {
  const Compressor c = make_compressor("ef+" + spec);
  const auto& codec = c.codec;
  const auto& memory = c.memory;
  const auto& g = gradient();
  MemoryState ef;
  std::vector<float> p, d;
  std::vector<std::uint8_t> msg(codec->max_encoded_bytes(kN));
  std::size_t bytes = 0;
  const SeedContext ctx{1, 1, 0, 0};
  const auto step_once = [&]() -> Status {
    if (fused) return memory->encode_step(*codec, g.data(), kN, ctx, &ef, msg.data(), msg.size(), &bytes);
    p.resize(kN);
    d.resize(kN);
    memory->compensate(g.data(), p.data(), kN, &ef);
    GZ_RETURN_IF_ERROR(codec->encode(p.data(), kN, ctx, msg.data(), msg.size(), &bytes));
    GZ_RETURN_IF_ERROR(codec->decode(msg.data(), bytes, d.data(), kN));
    memory->update(p.data(), d.data(), kN, &ef);
    return Status::Ok();
  };
  if (const Status st = step_once(); !st.ok()) return state.SkipWithError(st.to_string().c_str());
  const MemoryState start = ef;
  Times total;
  for (auto _ : state) {
    state.PauseTiming();
    std::copy(start.residual.begin(), start.residual.end(), ef.residual.begin());
    state.ResumeTiming();
    const Times t0 = now();
    if (const Status st = step_once(); !st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    add_since(t0, &total);
    benchmark::DoNotOptimize(ef.residual.data());
  }
  record(state, std::string(fused ? "fused/" : "unfused/") + spec, total, fused ? "unfused/" + spec : "",
         "fused_speedup");
  state.counters["ratio"] = static_cast<double>(4 * kN) / static_cast<double>(bytes);
}

/// The ceiling of the thread pool's speed-up on this machine: the memcpy above split into
/// kPoolBuckets chunks, copied by `threads` threads (the caller and threads - 1 started
/// per iteration, ~0.1 ms against a copy of tens of ms). Where one thread already draws
/// most of the memory bandwidth, two threads cannot copy twice as fast, and a
/// memory-bound encode cannot scale further than this copy does.
void bm_memcpy_threads(benchmark::State& state, unsigned threads) {
  const auto& g = gradient();
  std::vector<float> y(kN, 0.0f);
  const std::size_t per = kN / kPoolBuckets;
  const auto copy_share = [&](unsigned t) {
    for (std::size_t b = t; b < kPoolBuckets; b += threads) std::memcpy(&y[b * per], &g[b * per], 4 * per);
  };
  Times total;
  for (auto _ : state) {
    const Times t0 = now();
    std::vector<std::thread> helpers;
    for (unsigned t = 1; t < threads; ++t) helpers.emplace_back(copy_share, t);
    copy_share(0);
    for (auto& h : helpers) h.join();
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    add_since(t0, &total);
  }
  record(state, "memcpy/" + std::to_string(threads), total, threads == 1 ? "" : "memcpy/1", "vs_1_thread");
  state.counters.erase("cpu_x_memcpy");
  state.counters.erase("cpu_vs_1_thread");
}

/// The gradient as kPoolBuckets buckets encoded by EncodePool(threads).
void bm_pool(benchmark::State& state, const std::string& spec, unsigned threads) {
  const Compressor c = make_compressor("ef+" + spec);
  const auto& g = gradient();
  const std::size_t per = kN / kPoolBuckets;
  std::vector<MemoryState> states(kPoolBuckets);
  std::vector<std::vector<std::uint8_t>> out(kPoolBuckets, std::vector<std::uint8_t>(c.codec->max_encoded_bytes(per)));
  std::vector<BucketJob> jobs(kPoolBuckets);
  for (std::size_t b = 0; b < kPoolBuckets; ++b) {
    jobs[b].grad = g.data() + b * per;
    jobs[b].n = per;
    jobs[b].ctx = SeedContext{1, 1, 0, static_cast<std::uint32_t>(b)};
    jobs[b].state = &states[b];
    jobs[b].out = out[b].data();
    jobs[b].out_capacity = out[b].size();
  }
  EncodePool pool(threads);
  if (const Status st = pool.encode(*c.memory, *c.codec, jobs.data(), jobs.size()); !st.ok()) {
    return state.SkipWithError(st.to_string().c_str());
  }
  const std::vector<MemoryState> start = states;
  Times total;
  for (auto _ : state) {
    state.PauseTiming();
    for (std::size_t b = 0; b < kPoolBuckets; ++b) {
      std::copy(start[b].residual.begin(), start[b].residual.end(), states[b].residual.begin());
    }
    state.ResumeTiming();
    const Times t0 = now();
    if (const Status st = pool.encode(*c.memory, *c.codec, jobs.data(), jobs.size()); !st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    add_since(t0, &total);
  }
  // Wall-clock only: this thread's CPU time does not count the helper thread's work.
  record(state, "pool/" + spec + "/" + std::to_string(threads), total, threads == 1 ? "" : "pool/" + spec + "/1",
         "vs_1_thread");
  state.counters.erase("cpu_x_memcpy");
  state.counters.erase("cpu_vs_1_thread");
}

const bool kRegistered = [] {
  const std::string ns = "/n=" + std::to_string(kN);
  benchmark::RegisterBenchmark(("feedback/memcpy" + ns).c_str(), bm_memcpy)
      ->Unit(benchmark::kMillisecond)
      ->MinTime(kMinSeconds)
      ->UseRealTime();
  for (const auto* e : codec_entries()) {
    const std::string spec = make_codec(e->name)->spec();
    for (const bool fused : {false, true}) {
      benchmark::RegisterBenchmark(((fused ? "feedback/fused/" : "feedback/unfused/") + spec + ns).c_str(), bm_step,
                                   spec, fused)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(kMinSeconds)
          ->UseRealTime();
    }
  }
  for (const unsigned threads : {1u, 2u}) {
    benchmark::RegisterBenchmark(("feedback/pool/memcpy/threads=" + std::to_string(threads)).c_str(),
                                 bm_memcpy_threads, threads)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(kMinSeconds)
        ->UseRealTime();
  }
  for (const char* name : {"fp16", "int8", "scaled-sign", "qsgd"}) {
    const std::string spec = make_codec(name)->spec();
    for (const unsigned threads : {1u, 2u}) {
      benchmark::RegisterBenchmark(("feedback/pool/" + spec + "/threads=" + std::to_string(threads)).c_str(), bm_pool,
                                   spec, threads)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(kMinSeconds)
          ->UseRealTime();
    }
  }
  return true;
}();

}  // namespace
}  // namespace gradzip::quant
