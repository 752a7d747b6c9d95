// zipml against qsgd at the same bits, in one run (Zhang et al. 2017, ZipML; Alistarh et
// al. 2017, QSGD). Each iteration runs both codecs on the same input, interleaved, and
// times each (the drift of a shared 2-core machine hits both sides equally):
//
//   zipml_vs_qsgd/encode/bits=B/n=N       zipml encode and qsgd encode (norm=max, the
//                                          stronger baseline; default bucket 512)
//   zipml_vs_qsgd/decode_add/bits=B/n=N   the same for decode_add
// Counters: zipml_GBps and qsgd_GBps (fp32 input bytes per second), speed_ratio
// (zipml rate / qsgd rate), and the variance ratios E||C(x)-x||^2 zipml / qsgd measured
// before timing (encode at n = 1M only) over 8 seeds on N(0,1) data (var_ratio_gauss) and on Student-t(3) data
// (var_ratio_t3), against qsgd norm=max (var_ratio_*) and norm=l2 (var_ratio_*_l2).
//
//   gradzip_bench_quant --benchmark_filter='zipml_vs_qsgd' --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "quant/registry.h"

namespace gradzip::quant {
namespace {

using Clock = std::chrono::steady_clock;

/// N(0, 1) (heavy = false) or Student-t(3) (heavy = true) data, cached per (n, heavy).
const std::vector<float>& input(std::size_t n, bool heavy) {
  static std::map<std::pair<std::size_t, bool>, std::vector<float>> cache;
  auto it = cache.find({n, heavy});
  if (it == cache.end()) {
    std::mt19937 rng(heavy ? 99 : 98);
    std::normal_distribution<double> d(0.0, 1.0);
    std::chi_squared_distribution<double> chi(3.0);
    std::vector<float> x(n);
    for (auto& v : x) v = static_cast<float>(heavy ? d(rng) / std::sqrt(chi(rng) / 3.0) : d(rng));
    it = cache.emplace(std::make_pair(n, heavy), std::move(x)).first;
  }
  return it->second;
}

double mean_sq_error(const Codec& codec, const std::vector<float>& x) {
  std::vector<float> y(x.size());
  double err = 0.0;
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    const auto msg = codec.encode(x.data(), x.size(), SeedContext{seed, 3, 0, 0});
    if (!codec.decode(msg.data(), msg.size(), y.data(), y.size()).ok()) return NAN;
    for (std::size_t i = 0; i < x.size(); ++i) err += (static_cast<double>(y[i]) - x[i]) * (y[i] - x[i]);
  }
  return err / 8;
}

void bm_vs_qsgd(benchmark::State& state, unsigned bits, std::size_t n, bool decode) {
  const std::string b = std::to_string(bits);
  const auto zipml = make_codec("zipml:bits=" + b);
  const auto qsgd = make_codec("qsgd:bits=" + std::to_string(bits < 2 ? 2 : bits) + ",norm=max");
  const auto qsgd_l2 = make_codec("qsgd:bits=" + std::to_string(bits < 2 ? 2 : bits) + ",norm=l2");
  const auto& x = input(n, false);
  const auto& t3 = input(n, true);
  if (!decode && n <= 1000000) {  // variance ratios: encode benchmarks at the small size only
    state.counters["var_ratio_gauss"] = mean_sq_error(*zipml, x) / mean_sq_error(*qsgd, x);
    state.counters["var_ratio_t3"] = mean_sq_error(*zipml, t3) / mean_sq_error(*qsgd, t3);
    state.counters["var_ratio_gauss_l2"] = mean_sq_error(*zipml, x) / mean_sq_error(*qsgd_l2, x);
    state.counters["var_ratio_t3_l2"] = mean_sq_error(*zipml, t3) / mean_sq_error(*qsgd_l2, t3);
  }
  std::vector<std::uint8_t> mz(zipml->max_encoded_bytes(n)), mq(qsgd->max_encoded_bytes(n));
  std::vector<float> acc(n, 0.0f);
  std::size_t bz = 0, bq = 0;
  // Untimed warm-up: first touch of the buffers, and the messages decode_add reads.
  if (!zipml->encode(x.data(), n, SeedContext{1, 0, 0, 0}, mz.data(), mz.size(), &bz).ok() ||
      !qsgd->encode(x.data(), n, SeedContext{1, 0, 0, 0}, mq.data(), mq.size(), &bq).ok()) {
    state.SkipWithError("encode failed");
    return;
  }
  double tz = 0.0, tq = 0.0;
  std::uint64_t step = 0;
  for (auto _ : state) {
    ++step;
    auto t0 = Clock::now();
    const Status sz = decode ? zipml->decode_add(mz.data(), bz, acc.data(), n, 0.25f)
                             : zipml->encode(x.data(), n, SeedContext{1, step, 0, 0}, mz.data(), mz.size(), &bz);
    auto t1 = Clock::now();
    const Status sq = decode ? qsgd->decode_add(mq.data(), bq, acc.data(), n, 0.25f)
                             : qsgd->encode(x.data(), n, SeedContext{1, step, 0, 0}, mq.data(), mq.size(), &bq);
    auto t2 = Clock::now();
    if (!sz.ok() || !sq.ok()) {
      state.SkipWithError("codec failed");
      break;
    }
    tz += std::chrono::duration<double>(t1 - t0).count();
    tq += std::chrono::duration<double>(t2 - t1).count();
    benchmark::DoNotOptimize(acc.data());
    benchmark::DoNotOptimize(mz.data());
  }
  const double bytes = 4.0 * static_cast<double>(n) * static_cast<double>(state.iterations());
  state.counters["zipml_GBps"] = bytes / tz / 1e9;
  state.counters["qsgd_GBps"] = bytes / tq / 1e9;
  state.counters["speed_ratio"] = tq / tz;
  state.counters["zipml_bytes"] = static_cast<double>(bz);
  state.counters["qsgd_bytes"] = static_cast<double>(bq);
}

[[maybe_unused]] const bool kRegistered = [] {
  for (const unsigned bits : {2u, 3u, 4u}) {
    for (const std::size_t n : {std::size_t{1000000}, std::size_t{11200000}}) {
      const std::string suffix = "/bits=" + std::to_string(bits) + "/n=" + std::to_string(n);
      benchmark::RegisterBenchmark(("zipml_vs_qsgd/encode" + suffix).c_str(), bm_vs_qsgd, bits, n, false)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("zipml_vs_qsgd/decode_add" + suffix).c_str(), bm_vs_qsgd, bits, n, true)
          ->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

}  // namespace
}  // namespace gradzip::quant
