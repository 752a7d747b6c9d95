// Collective benchmarks over loopback with 4 processes (this one is rank 0; it starts
// ranks 1..3 as copies of itself), each side of a comparison measured in the same
// iteration (DESIGN.md, "Performance method"):
//   - Gloo ring allreduce of 100 MB fp32 vs a raw TCP ring allreduce written here
//     (textbook reduce-scatter + allgather over plain sockets, reducing as bytes arrive):
//     counter ratio_vs_raw = raw seconds / Gloo seconds (goodput ratio, goal >= 0.9);
//   - per 100 MB of fp32 gradient (4 buckets of 25 MB, DDP's bucket size): a compressed
//     allgather (encode, gather, decode and sum in rank order; topk 1%, qsgd 4-bit) vs the
//     dense fp16 allreduce (convert, allreduce, convert back): counter ratio_vs_fp16 =
//     fp16 seconds / allgather seconds (> 1: the compressed path is faster); and the
//     homomorphic THC allreduce (max-allreduce of the scale, int16 codes summed by Gloo,
//     decoded once; quant/homomorphic.h) against the same fp16 allreduce.
// Rank 0 broadcasts each command (operation, size) to the peers, which run the same
// collectives. Run: build/bench/gradzip_bench_collective (repetitions and medians are
// set in the code).
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/collective/raw_ring.h"
#include "comm/collective.h"
#include "comm/launch.h"
#include "quant/half.h"
#include "quant/homomorphic.h"
#include "quant/registry.h"

namespace gradzip::comm {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint32_t kRanks = 4;
constexpr std::size_t kGradientFloats = 25u << 20;  // 100 MiB of fp32
constexpr std::size_t kBuckets = 4;

enum class Op : std::uint64_t { kQuit = 0, kGlooAllreduce, kRawRing, kFp16Allreduce, kAllgatherCodec, kHomomorphic };
const char* const kCodecs[] = {"topk:ratio=0.01", "qsgd:bits=4"};
constexpr std::int32_t kThcLevels = 127;  // 4 ranks x 127 levels: int16 sums

struct Command {
  std::uint64_t op = 0;
  std::uint64_t arg = 0;  ///< codec index for kAllgatherCodec
};

void check(const quant::Status& st) {
  if (!st.ok()) throw std::runtime_error(st.to_string());
}

/// One rank's state: the collective, the raw ring, the gradient and scratch buffers.
struct Rank {
  std::unique_ptr<Collective> coll;
  std::unique_ptr<bench::RawRing> ring;
  std::vector<float> grad, buf;
  std::vector<std::uint16_t> half;
  std::vector<std::int16_t> codes;
  std::vector<std::unique_ptr<quant::Codec>> codecs;

  Rank(std::uint32_t rank, const std::string& store) {
    CollectiveOptions o;
    o.rank = rank;
    o.size = kRanks;
    o.store_dir = store;
    o.timeout_s = 600;
    coll = make_collective(o);
    ring = std::make_unique<bench::RawRing>(rank, kRanks, store);
    grad.resize(kGradientFloats);
    for (std::size_t i = 0; i < grad.size(); ++i) grad[i] = 1e-3f * static_cast<float>((i * 2654435761u + rank) % 2001) - 1.0f;
    buf = grad;
    half.resize(kGradientFloats);
    for (const char* spec : kCodecs) codecs.push_back(quant::make_codec(spec));
  }

  void run(const Command& c) {
    const std::size_t n = kGradientFloats;
    switch (static_cast<Op>(c.op)) {
      case Op::kGlooAllreduce:
        std::memcpy(buf.data(), grad.data(), n * 4);
        coll->allreduce(buf.data(), n, DType::kFloat32, ReduceOp::kSum);
        break;
      case Op::kRawRing:
        std::memcpy(buf.data(), grad.data(), n * 4);
        ring->allreduce(buf.data(), n);
        break;
      case Op::kFp16Allreduce: {
        const std::size_t per = n / kBuckets;
        for (std::size_t b = 0; b < kBuckets; ++b) {
          const float* g = grad.data() + b * per;
          std::uint16_t* h = half.data() + b * per;
          for (std::size_t i = 0; i < per; ++i) h[i] = quant::float_to_fp16(g[i] * (1.0f / kRanks));
          coll->allreduce(h, per, DType::kFloat16, ReduceOp::kSum);
          float* out = buf.data() + b * per;
          for (std::size_t i = 0; i < per; ++i) out[i] = quant::fp16_to_float(h[i]);
        }
        break;
      }
      case Op::kAllgatherCodec: {
        const quant::Codec& codec = *codecs[c.arg];
        const std::size_t per = n / kBuckets;
        for (std::size_t b = 0; b < kBuckets; ++b) {
          const auto msg = codec.encode(grad.data() + b * per, per, {1, 0, coll->rank(), static_cast<std::uint32_t>(b)});
          const auto all = allgather_blobs(*coll, msg.data(), msg.size());
          float* out = buf.data() + b * per;
          for (std::uint32_t r = 0; r < all.size(); ++r) {
            const quant::Status st = r == 0 ? codec.decode(all[r].data(), all[r].size(), out, per)
                                            : codec.decode_add(all[r].data(), all[r].size(), out, per, 1.0f);
            if (!st.ok()) throw std::runtime_error("decode: " + st.to_string());
          }
        }
        break;
      }
      case Op::kHomomorphic: {  // THC: agreed scale, int16 codes summed by the allreduce
        const std::size_t per = n / kBuckets;
        codes.resize(per);
        for (std::size_t b = 0; b < kBuckets; ++b) {
          const float* g = grad.data() + b * per;
          float scale = 0;
          check(quant::homomorphic::local_max_abs(g, per, &scale));
          coll->allreduce(&scale, 1, DType::kFloat32, ReduceOp::kMax);
          check(quant::homomorphic::encode_local<std::int16_t>(g, per, scale, kThcLevels,
                                                               {1, 0, coll->rank(), static_cast<std::uint32_t>(b)},
                                                               codes.data()));
          coll->allreduce(codes.data(), per, DType::kInt16, ReduceOp::kSum);
          check(quant::homomorphic::decode_sum<std::int16_t>(codes.data(), per, scale, kThcLevels, 1.0f / kRanks,
                                                             buf.data() + b * per));
        }
        break;
      }
      case Op::kQuit:
        break;
    }
  }
};

Rank* g_rank0 = nullptr;

double timed(const Command& c) {
  Command cmd = c;
  const auto t0 = Clock::now();
  g_rank0->coll->broadcast(&cmd, sizeof cmd, 0);
  g_rank0->run(cmd);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void BM_GlooAllreduceVsRawTcpRing(benchmark::State& state) {
  timed({static_cast<std::uint64_t>(Op::kGlooAllreduce), 0});  // warm: first touch of every buffer
  timed({static_cast<std::uint64_t>(Op::kRawRing), 0});
  double gloo = 0, raw = 0;
  for (auto _ : state) {
    const double g = timed({static_cast<std::uint64_t>(Op::kGlooAllreduce), 0});
    const double r = timed({static_cast<std::uint64_t>(Op::kRawRing), 0});
    state.SetIterationTime(g);
    gloo += g;
    raw += r;
  }
  const double bytes = 4.0 * kGradientFloats * static_cast<double>(state.iterations());
  state.counters["gloo_GBps"] = bytes / gloo / 1e9;
  state.counters["raw_ring_GBps"] = bytes / raw / 1e9;
  state.counters["ratio_vs_raw"] = raw / gloo;
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_GlooAllreduceVsRawTcpRing)->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(1.0)->Repetitions(3);

// Arg 0, 1: the allgather of kCodecs[arg]; arg 2: the homomorphic THC allreduce.
void BM_CompressedAllgatherVsFp16Allreduce(benchmark::State& state) {
  const auto arg = static_cast<std::uint64_t>(state.range(0));
  const Command compressed = arg < 2 ? Command{static_cast<std::uint64_t>(Op::kAllgatherCodec), arg}
                                     : Command{static_cast<std::uint64_t>(Op::kHomomorphic), 0};
  state.SetLabel(arg < 2 ? kCodecs[arg] : "homomorphic thc:levels=127 (int16 sums)");
  timed({static_cast<std::uint64_t>(Op::kFp16Allreduce), 0});
  timed(compressed);
  double fp16 = 0, gathered = 0;
  for (auto _ : state) {
    const double a = timed(compressed);
    const double h = timed({static_cast<std::uint64_t>(Op::kFp16Allreduce), 0});
    state.SetIterationTime(a);
    gathered += a;
    fp16 += h;
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["compressed_s_per_100MB"] = gathered / iters;
  state.counters["fp16_allreduce_s_per_100MB"] = fp16 / iters;
  state.counters["ratio_vs_fp16"] = fp16 / gathered;
}
BENCHMARK(BM_CompressedAllgatherVsFp16Allreduce)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(1.0)
    ->Repetitions(3);

int peer_main(std::uint32_t rank, const std::string& store) {
  Rank me(rank, store);
  for (;;) {
    Command c;
    me.coll->broadcast(&c, sizeof c, 0);
    if (static_cast<Op>(c.op) == Op::kQuit) return 0;
    me.run(c);
  }
}

}  // namespace
}  // namespace gradzip::comm

int main(int argc, char** argv) {
  using namespace gradzip::comm;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--peer-rank=", 0) == 0 && i + 1 < argc) {
      return peer_main(static_cast<std::uint32_t>(std::stoul(a.substr(12))), std::string(argv[i + 1]).substr(8));
    }
  }
  namespace fs = std::filesystem;
  const fs::path store = fs::temp_directory_path() / ("gz-bench-collective-" + std::to_string(::getpid()));
  fs::create_directories(store);
  std::vector<ChildProcess> peers;
  for (std::uint32_t r = 1; r < kRanks; ++r) {
    peers.emplace_back("rank" + std::to_string(r),
                       std::vector<std::string>{"/proc/self/exe", "--peer-rank=" + std::to_string(r),
                                                "--store=" + store.string()});
  }
  int status = 0;
  {
    Rank me(0, store.string());
    g_rank0 = &me;
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    Command quit;
    me.coll->broadcast(&quit, sizeof quit, 0);
    for (auto& p : peers) {
      if (!p.wait_for(std::chrono::seconds(60)) || p.exit_code() != 0) status = 1;
    }
  }
  std::error_code ec;
  fs::remove_all(store, ec);
  return status;
}
