// Homomorphic int8 (quant/homomorphic.h) against the int8 message codec at n = 25.6M
// (ResNet-50) fp32 elements of N(0, 1) data, one core, with a memcpy of the same 4n bytes
// measured in the same run:
//
//   homomorphic/memcpy/n=N                     memcpy of 4n bytes (baseline)
//   homomorphic/codec/SPEC/n=N                 encode + decode of a message codec a worker
//                                              would send instead: int8:bucket=512 (round to
//                                              nearest) and qsgd:bits=8,norm=max (stochastic
//                                              rounding from Philox, like thc)
//   homomorphic/thc/sumT=intB/n=N              one rank's part of a homomorphic allreduce:
//                                              local_max_abs, encode_local<intB> (straight
//                                              into the collective's buffer type), decode_sum
//                                              (the collective itself is not timed)
//   homomorphic/thc+rotate/sumT=int8/n=N       the same with rotate (block 4096) before and
//                                              unrotate after
// CPU time (the VMs are shared). SetBytesProcessed = 4n per iteration; main()'s summary table (bench/quant/codec_bench.cc)
// prints each rate as a fraction of memcpy's. Counter wire_bytes_per_element: what the
// collective moves per element (the sum type), against 4 for fp32 and ~1.008 for int8.
//
//   gradzip_bench_quant --benchmark_filter='homomorphic/'
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/homomorphic.h"
#include "quant/registry.h"
#include "quant/rotation.h"

namespace gradzip::quant {
namespace {

constexpr std::size_t kN = 25600000;

const std::vector<float>& input() {
  static const std::vector<float> x = [] {
    std::mt19937 rng(99);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(kN);
    for (auto& e : v) e = d(rng);
    return v;
  }();
  return x;
}

void set_bytes(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(4 * kN));
}

void bm_memcpy(benchmark::State& state) {
  const auto& x = input();
  std::vector<float> y(kN, 0.0f);
  for (auto _ : state) {
    std::memcpy(y.data(), x.data(), 4 * kN);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

void bm_codec(benchmark::State& state, const std::string& spec) {
  const auto codec = make_codec(spec);
  const auto& x = input();
  std::vector<std::uint8_t> msg(codec->max_encoded_bytes(kN), 0);
  std::vector<float> out(kN, 0.0f);
  std::size_t bytes = 0;
  for (auto _ : state) {
    Status st = codec->encode(x.data(), kN, SeedContext{1, 1, 0, 0}, msg.data(), msg.size(), &bytes);
    if (st.ok()) st = codec->decode(msg.data(), bytes, out.data(), kN);
    if (!st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  set_bytes(state);
  state.counters["wire_bytes_per_element"] = static_cast<double>(bytes) / static_cast<double>(kN);
}

template <typename T>
void bm_thc(benchmark::State& state, bool rotate) {
  const auto& x = input();
  std::vector<float> work(kN, 0.0f), out(kN, 0.0f);
  std::vector<T> codes(kN, 0);
  const SeedContext shared{1, 1, 0, 0};
  for (auto _ : state) {
    const float* src = x.data();
    Status st;
    if (rotate) {  // rotation works in place: on a copy, as the engine would on its bucket
      std::memcpy(work.data(), x.data(), 4 * kN);
      st = quant::rotate(work.data(), kN, homomorphic::kDefaultBlock, shared);
      src = work.data();
    }
    float scale = 0.0f;
    if (st.ok()) st = homomorphic::local_max_abs(src, kN, &scale);
    if (st.ok()) st = homomorphic::encode_local<T>(src, kN, scale, 127, shared, codes.data());
    if (st.ok()) st = homomorphic::decode_sum<T>(codes.data(), kN, scale, 127, 1.0f, out.data());
    if (st.ok() && rotate) st = unrotate(out.data(), kN, homomorphic::kDefaultBlock, shared);
    if (!st.ok()) {
      state.SkipWithError(st.to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  set_bytes(state);
  state.counters["wire_bytes_per_element"] = static_cast<double>(sizeof(T));
}

int register_homomorphic_benchmarks() {
  const std::string ns = "/n=" + std::to_string(kN);
  const auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->Unit(benchmark::kMillisecond);
  };
  reg("homomorphic/memcpy" + ns, bm_memcpy);
  for (const std::string spec : {"int8:bucket=512", "qsgd:bits=8,bucket=512,norm=max"}) {
    reg("homomorphic/codec/" + spec + ns, [spec](benchmark::State& s) { bm_codec(s, spec); });
  }
  reg("homomorphic/thc/sumT=int8" + ns, [](benchmark::State& s) { bm_thc<std::int8_t>(s, false); });
  reg("homomorphic/thc/sumT=int32" + ns, [](benchmark::State& s) { bm_thc<std::int32_t>(s, false); });
  reg("homomorphic/thc+rotate/sumT=int8" + ns, [](benchmark::State& s) { bm_thc<std::int8_t>(s, true); });
  return 0;
}
const int kRegistered = register_homomorphic_benchmarks();

}  // namespace
}  // namespace gradzip::quant
