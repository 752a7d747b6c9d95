// gradzip_bench_cuda: CUDA twins timed with CUDA events, against a device-to-device copy
// measured in the same run.
//
// Every benchmark reports (Google Benchmark counters, also in --benchmark_format=json):
//   time (manual time = CUDA-event time of the kernels only, no host work; Google
//                Benchmark's own column is the mean over iterations),
//   time_ms      the median CUDA-event time of one iteration (what GB_per_s uses; the
//                statistic bench/cuda/torch_compare.py uses for the PyTorch side too),
//   bytes_moved  the bytes-moved model of the operation (DESIGN.md "Performance method"):
//                encode: read g (4n) [+ read e (4n) + write e (4n) with EF] + message bytes;
//                decode_add: message bytes + read acc (4n) + write acc (4n);
//                copy: read 4n + write 4n;
//   GB_per_s     bytes_moved / time,
//   pct_copy     GB_per_s as % of the D2D copy bandwidth measured (once, median) in this process,
//   numel        elements per operation (plots/plot_bench.py pairs each row with the copy
//                of the same numel).
// The JSON context carries gradzip_device = cuda. Every benchmark runs one untimed
// iteration first; encode/.../ef restores the residual that warm-up left before each
// timed iteration (outside the events), so every iteration does the same work.
// bench/cuda/torch_compare.py runs this binary and the PyTorch-ops equivalents on the
// same 25.6M-float gradient and prints the comparison table.
//
// Host-only code (the kernels live in gradzip_quant_cuda), so it compiles with g++ and
// adds nothing to nvcc time. Without a CUDA device every benchmark SkipWithError()s.
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quant/cuda.h"
#include "quant/cuda_pipeline.h"
#include "quant/registry.h"

namespace gradzip::quant::cuda {
namespace {

constexpr std::size_t kNumel = 25600000;  // the comparison size (ResNet-50-like gradient)

/// Device buffers shared by all benchmarks (allocated once, outside timing).
struct Buffers {
  float* d_grad = nullptr;
  float* d_residual = nullptr;
  float* d_residual_start = nullptr;  // the residual each timed EF iteration starts from
  float* d_acc = nullptr;
  std::uint8_t* d_msg = nullptr;
  std::uint8_t* d_ws = nullptr;
  std::uint64_t* d_msg_bytes = nullptr;  // length written by each encode (sparse: data-dependent)
  std::size_t msg_capacity = 0;
  std::size_t ws_bytes = 0;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  std::string error;
};

Buffers& buffers() {
  static Buffers b = [] {
    Buffers r;
    std::string why;
    if (!device_available(&why)) {
      r.error = why;
      return r;
    }
    std::vector<float> h(kNumel);
    std::mt19937 rng(12345);
    std::normal_distribution<float> normal(0.0f, 1e-3f);
    for (float& v : h) v = normal(rng);
    r.msg_capacity = 4 * kNumel + (1u << 20);  // >= every codec's max_encoded_bytes(kNumel)
    r.ws_bytes = 256u << 20;
    const auto alloc = [](auto** p, std::size_t bytes) {
      return cudaMalloc(reinterpret_cast<void**>(p), bytes) == cudaSuccess;
    };
    bool ok = alloc(&r.d_grad, 4 * kNumel) && alloc(&r.d_residual, 4 * kNumel) &&
              alloc(&r.d_residual_start, 4 * kNumel) && alloc(&r.d_acc, 4 * kNumel) &&
              alloc(&r.d_msg, r.msg_capacity) && alloc(&r.d_ws, r.ws_bytes) && alloc(&r.d_msg_bytes, 8) &&
              cudaStreamCreate(&r.stream) == cudaSuccess && cudaEventCreate(&r.start) == cudaSuccess &&
              cudaEventCreate(&r.stop) == cudaSuccess;
    ok = ok && cudaMemcpy(r.d_grad, h.data(), 4 * kNumel, cudaMemcpyHostToDevice) == cudaSuccess;
    ok = ok && cudaMemset(r.d_residual, 0, 4 * kNumel) == cudaSuccess && cudaMemset(r.d_acc, 0, 4 * kNumel) == cudaSuccess;
    if (!ok) r.error = std::string("CUDA setup failed: ") + cudaGetErrorString(cudaGetLastError());
    return r;
  }();
  return b;
}

/// Times `launch` (which enqueues on b.stream) with CUDA events; returns milliseconds or
/// a negative value on error (state already marked).
template <typename Launch>
double time_ms(benchmark::State& state, Buffers& b, Launch launch) {
  if (cudaEventRecord(b.start, b.stream) != cudaSuccess) return -1.0;
  const Status st = launch();
  if (!st.ok()) {
    state.SkipWithError(st.to_string().c_str());
    return -1.0;
  }
  float ms = 0.0f;
  if (cudaEventRecord(b.stop, b.stream) != cudaSuccess || cudaEventSynchronize(b.stop) != cudaSuccess ||
      cudaEventElapsedTime(&ms, b.start, b.stop) != cudaSuccess) {
    state.SkipWithError(cudaGetErrorString(cudaGetLastError()));
    return -1.0;
  }
  return ms;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t mid = v.size() / 2;
  return v.size() % 2 ? v[mid] : 0.5 * (v[mid - 1] + v[mid]);
}

/// D2D copy bandwidth (bytes/s, read + write counted) from the median of 17 timed copies
/// after 3 untimed ones, measured once per process.
double copy_bandwidth() {
  static const double bw = [] {
    Buffers& b = buffers();
    if (!b.error.empty()) return 0.0;
    std::vector<double> times;
    for (int i = 0; i < 20; ++i) {
      float ms = 0.0f;
      cudaEventRecord(b.start, b.stream);
      cudaMemcpyAsync(b.d_acc, b.d_grad, 4 * kNumel, cudaMemcpyDeviceToDevice, b.stream);
      cudaEventRecord(b.stop, b.stream);
      cudaEventSynchronize(b.stop);
      cudaEventElapsedTime(&ms, b.start, b.stop);
      if (i >= 3) times.push_back(ms);  // first runs warm up
    }
    return 8.0 * kNumel / (median(times) * 1e-3);
  }();
  return bw;
}

/// Counters of one benchmark from its per-iteration CUDA-event times (milliseconds).
void report(benchmark::State& state, const std::vector<double>& times_ms, double bytes_moved) {
  if (times_ms.empty()) return;
  const double seconds = median(times_ms) * 1e-3;
  const double bps = bytes_moved / seconds;
  state.counters["numel"] = static_cast<double>(kNumel);
  state.counters["bytes_moved"] = bytes_moved;
  state.counters["GB_per_s"] = bps / 1e9;
  state.counters["time_ms"] = seconds * 1e3;
  const double copy = copy_bandwidth();
  state.counters["pct_copy"] = copy > 0.0 ? 100.0 * bps / copy : 0.0;
  state.counters["copy_GB_per_s"] = copy / 1e9;
}

void BM_CopyD2D(benchmark::State& state) {
  Buffers& b = buffers();
  if (!b.error.empty()) return state.SkipWithError(b.error.c_str());
  const auto copy = [&] {
    GZ_CUDA_CHECK(cudaMemcpyAsync(b.d_acc, b.d_grad, 4 * kNumel, cudaMemcpyDeviceToDevice, b.stream));
    return Status::Ok();
  };
  if (time_ms(state, b, copy) < 0) return;  // untimed warm-up
  std::vector<double> times;
  for (auto _ : state) {
    const double ms = time_ms(state, b, copy);
    if (ms < 0) return;
    state.SetIterationTime(ms * 1e-3);
    times.push_back(ms);
  }
  report(state, times, 8.0 * kNumel);
}

void BM_Encode(benchmark::State& state, const std::string& spec, bool ef) {
  Buffers& b = buffers();
  if (!b.error.empty()) return state.SkipWithError(b.error.c_str());
  const auto codec = make_cuda_codec(spec);
  const auto encode = [&] {
    std::size_t ws = b.ws_bytes;
    return codec->encode(b.d_grad, ef ? b.d_residual : nullptr, kNumel, SeedContext{1, 1, 0, 0}, b.d_msg,
                         b.msg_capacity, b.d_msg_bytes, b.d_ws, &ws, b.stream);
  };
  // Untimed warm-up from a zero residual (the buffer is shared with other benchmarks);
  // its residual is where every timed EF iteration starts.
  if (ef && cudaMemsetAsync(b.d_residual, 0, 4 * kNumel, b.stream) != cudaSuccess) {
    return state.SkipWithError("resetting the residual failed");
  }
  if (time_ms(state, b, encode) < 0) return;
  if (ef && cudaMemcpyAsync(b.d_residual_start, b.d_residual, 4 * kNumel, cudaMemcpyDeviceToDevice, b.stream) !=
                cudaSuccess) {
    return state.SkipWithError("saving the residual failed");
  }
  std::vector<double> times;
  for (auto _ : state) {
    // Enqueued before the start event on the same stream: restored, not timed.
    if (ef && cudaMemcpyAsync(b.d_residual, b.d_residual_start, 4 * kNumel, cudaMemcpyDeviceToDevice, b.stream) !=
                  cudaSuccess) {
      return state.SkipWithError("restoring the residual failed");
    }
    const double ms = time_ms(state, b, encode);
    if (ms < 0) return;
    state.SetIterationTime(ms * 1e-3);
    times.push_back(ms);
  }
  // The real length of the last message (sparse codecs: data-dependent) for the model.
  std::uint64_t msg_bytes = codec->max_encoded_bytes(kNumel);
  if (cudaMemcpy(&msg_bytes, b.d_msg_bytes, 8, cudaMemcpyDeviceToHost) != cudaSuccess) {
    return state.SkipWithError("reading the message length failed");
  }
  report(state, times, 4.0 * kNumel * (ef ? 3 : 1) + static_cast<double>(msg_bytes));
  state.counters["message_bytes"] = static_cast<double>(msg_bytes);
}

void BM_DecodeAdd(benchmark::State& state, const std::string& spec) {
  Buffers& b = buffers();
  if (!b.error.empty()) return state.SkipWithError(b.error.c_str());
  const auto cpu = make_codec(spec);
  const auto codec = make_cuda_codec(spec);
  // A valid message from the CPU reference (host copy for validation, device copy to read).
  std::vector<float> h(kNumel);
  if (cudaMemcpy(h.data(), b.d_grad, 4 * kNumel, cudaMemcpyDeviceToHost) != cudaSuccess) {
    return state.SkipWithError("D2H failed");
  }
  const std::vector<std::uint8_t> msg = cpu->encode(h.data(), kNumel, SeedContext{});
  if (cudaMemcpy(b.d_msg, msg.data(), msg.size(), cudaMemcpyHostToDevice) != cudaSuccess) {
    return state.SkipWithError("H2D failed");
  }
  // The decode workspace (randk regenerates its selection; 0 bytes for the others) is
  // the shared workspace, sized well above any codec's need at this size.
  std::size_t decode_ws = 0;
  (void)codec->decode_add_own(b.d_msg, kNumel, b.d_acc, 0.5f, nullptr, &decode_ws, b.stream);
  if (decode_ws > b.ws_bytes) return state.SkipWithError("decode workspace larger than the shared workspace");
  const Status valid = codec->decode_add(msg.data(), b.d_msg, msg.size(), b.d_acc, kNumel, 0.5f, b.d_ws, &decode_ws,
                                         b.stream);
  if (!valid.ok()) return state.SkipWithError(valid.to_string().c_str());
  // The host-side validation of decode_add (header + XXH3 over the message) would sit
  // between the events and is not kernel work: validate once (above, also the untimed
  // warm-up), then time the kernel.
  const auto decode = [&] {
    std::size_t ws = b.ws_bytes;
    return codec->decode_add_own(b.d_msg, kNumel, b.d_acc, 0.5f, b.d_ws, &ws, b.stream);
  };
  std::vector<double> times;
  for (auto _ : state) {
    const double ms = time_ms(state, b, decode);
    if (ms < 0) return;
    state.SetIterationTime(ms * 1e-3);
    times.push_back(ms);
  }
  report(state, times, 8.0 * kNumel + static_cast<double>(msg.size()));
}

/// Encode + pinned D2H of 25.6M floats split into 25 MB buckets, overlapped: reports the
/// PCIe bytes and bandwidth of the copies (CUDA events on the copy stream).
void BM_PipelineD2H(benchmark::State& state, const std::string& spec) {
  Buffers& b = buffers();
  if (!b.error.empty()) return state.SkipWithError(b.error.c_str());
  const auto codec = make_cuda_codec(spec);
  constexpr std::size_t kBucket = 6400000;
  std::unique_ptr<CudaEncodePipeline> pipe;
  const Status created = CudaEncodePipeline::create(*codec, kBucket, 2, &pipe);
  if (!created.ok()) return state.SkipWithError(created.to_string().c_str());
  std::vector<PipelineBucket> buckets;
  for (std::size_t off = 0; off < kNumel; off += kBucket) {
    buckets.push_back({b.d_grad + off, b.d_residual + off, kBucket, SeedContext{1, 0, 0, static_cast<std::uint32_t>(off / kBucket)}});
  }
  // Every run starts from a zero residual (reset and synchronised before the run, so
  // outside its timing); one untimed run first warms the pipeline up.
  const auto run_once = [&](PipelineStats* s) {
    if (cudaMemsetAsync(b.d_residual, 0, 4 * kNumel, b.stream) != cudaSuccess ||
        cudaStreamSynchronize(b.stream) != cudaSuccess) {
      return Status(Errc::kCuda, "resetting the residual failed");
    }
    return pipe->run(buckets, b.stream, [](std::size_t, const std::uint8_t*, std::size_t) { return Status::Ok(); }, s);
  };
  PipelineStats warm;
  if (const Status st = run_once(&warm); !st.ok()) return state.SkipWithError(st.to_string().c_str());
  PipelineStats total;
  for (auto _ : state) {
    PipelineStats s;
    const Status st = run_once(&s);
    if (!st.ok()) return state.SkipWithError(st.to_string().c_str());
    state.SetIterationTime(s.wall_ms * 1e-3);
    total.d2h_bytes += s.d2h_bytes;
    total.d2h_ms += s.d2h_ms;
    total.wall_ms += s.wall_ms;
    total.encode_ms += s.encode_ms;
  }
  state.counters["numel"] = static_cast<double>(kNumel);
  state.counters["d2h_GB_per_s"] = total.d2h_bytes_per_s() / 1e9;
  state.counters["d2h_bytes_per_step"] = static_cast<double>(total.d2h_bytes) / static_cast<double>(state.iterations());
  state.counters["overlap"] = total.wall_ms > 0 ? (total.encode_ms + total.d2h_ms) / total.wall_ms : 0.0;
}

/// Specs benchmarked besides every twin's defaults (names read by torch_compare.py).
const char* const kExtraSpecs[] = {"qsgd:bits=4,bucket=512", "qsgd:bits=2,bucket=512", "topk:ratio=0.01",
                                   "randk:ratio=0.01",       "dgc:ratio=0.01",         "dgc:ratio=0.001"};

/// Every codec with a CUDA twin at its defaults (its bare name; skipped when an extra spec
/// has the same canonical spec), then kExtraSpecs: a new twin is benchmarked as soon as
/// its row in quant/codecs/codec_list.inc says CUDA.
std::vector<std::string> encode_specs() {
  std::vector<std::string> specs;
  for (const std::string& name : cuda_codec_names()) {
    const std::string canonical = make_codec(name)->spec();
    bool covered = false;
    for (const char* extra : kExtraSpecs) covered |= make_codec(extra)->spec() == canonical;
    if (!covered) specs.push_back(name);
  }
  specs.insert(specs.end(), std::begin(kExtraSpecs), std::end(kExtraSpecs));
  return specs;
}

int register_all() {
  benchmark::AddCustomContext("gradzip_device", "cuda");
  benchmark::RegisterBenchmark("copy_d2d", BM_CopyD2D)->UseManualTime()->Unit(benchmark::kMillisecond);
  for (const std::string& spec : encode_specs()) {
    for (bool ef : {false, true}) {
      const std::string name = std::string("encode/") + spec + (ef ? "/ef" : "");
      benchmark::RegisterBenchmark(name.c_str(), [spec, ef](benchmark::State& s) { BM_Encode(s, spec, ef); })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
    const std::string name = std::string("decode_add/") + spec;
    benchmark::RegisterBenchmark(name.c_str(), [spec](benchmark::State& s) { BM_DecodeAdd(s, spec); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (const char* spec : {"qsgd:bits=4,bucket=512", "fp16", "identity"}) {
    const std::string name = std::string("pipeline_d2h/") + spec;
    benchmark::RegisterBenchmark(name.c_str(), [spec](benchmark::State& s) { BM_PipelineD2H(s, spec); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  return 0;
}
const int kRegistered = register_all();

}  // namespace
}  // namespace gradzip::quant::cuda

BENCHMARK_MAIN();
