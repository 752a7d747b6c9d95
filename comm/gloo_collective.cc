// The Gloo engine of comm/collective.h: TCP transport, rendezvous through a
// gloo::rendezvous::FileStore in the shared store directory, gloo::allreduce (ring),
// gloo::allgatherv (ring), gloo::broadcast (binomial tree), gloo::barrier. Every call has
// the options' timeout; a failure is diagnosed from the heartbeat files
// (comm/collective_health.h) and thrown as CollectiveError naming the rank blamed.
//
// SIGPIPE is ignored in a process that runs Gloo: Gloo writes with writev(2), and a write
// to a peer that was just killed raises SIGPIPE, whose default action ended a surviving
// rank silently (exit 141, seen 1 in 16 kill -9 trials of 3 lsq_worker ranks) before
// Gloo could report the EPIPE, so the next rank blamed the wrong one. Python ignores
// SIGPIPE for the same reason, so PyTorch's Gloo users never meet it.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>

#include <fmt/format.h>
#include <gloo/allgatherv.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/device.h>
#include <spdlog/spdlog.h>

#include "comm/collective.h"
#include "comm/collective_engine.h"
#include "quant/half.h"

namespace gradzip::comm {
namespace {

using Clock = std::chrono::steady_clock;

// fp16 / bf16 sums through fp32, rounded to nearest even after each add (quant/half.h),
// so every rank computes the same bits whatever the CPU.
void sum_fp16(void* c, const void* a, const void* b, std::size_t n) {
  auto* out = static_cast<std::uint16_t*>(c);
  const auto* x = static_cast<const std::uint16_t*>(a);
  const auto* y = static_cast<const std::uint16_t*>(b);
  for (std::size_t i = 0; i < n; ++i) out[i] = quant::float_to_fp16(quant::fp16_to_float(x[i]) + quant::fp16_to_float(y[i]));
}
void sum_bf16(void* c, const void* a, const void* b, std::size_t n) {
  auto* out = static_cast<std::uint16_t*>(c);
  const auto* x = static_cast<const std::uint16_t*>(a);
  const auto* y = static_cast<const std::uint16_t*>(b);
  for (std::size_t i = 0; i < n; ++i) out[i] = quant::float_to_bf16(quant::bf16_to_float(x[i]) + quant::bf16_to_float(y[i]));
}
void max_fp16(void* c, const void* a, const void* b, std::size_t n) {
  auto* out = static_cast<std::uint16_t*>(c);
  const auto* x = static_cast<const std::uint16_t*>(a);
  const auto* y = static_cast<const std::uint16_t*>(b);
  for (std::size_t i = 0; i < n; ++i) out[i] = quant::fp16_to_float(x[i]) >= quant::fp16_to_float(y[i]) ? x[i] : y[i];
}
void max_bf16(void* c, const void* a, const void* b, std::size_t n) {
  auto* out = static_cast<std::uint16_t*>(c);
  const auto* x = static_cast<const std::uint16_t*>(a);
  const auto* y = static_cast<const std::uint16_t*>(b);
  for (std::size_t i = 0; i < n; ++i) out[i] = quant::bf16_to_float(x[i]) >= quant::bf16_to_float(y[i]) ? x[i] : y[i];
}

template <typename T>
void sum_of(void* c, const void* a, const void* b, std::size_t n) {
  auto* out = static_cast<T*>(c);
  const auto* x = static_cast<const T*>(a);
  const auto* y = static_cast<const T*>(b);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(x[i] + y[i]);
}
template <typename T>
void max_of(void* c, const void* a, const void* b, std::size_t n) {
  auto* out = static_cast<T*>(c);
  const auto* x = static_cast<const T*>(a);
  const auto* y = static_cast<const T*>(b);
  for (std::size_t i = 0; i < n; ++i) out[i] = std::max(x[i], y[i]);
}

/// Ignores SIGPIPE once per process, unless the program installed a handler of its own.
void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      ::sigaction(SIGPIPE, &ignore, nullptr);
    }
  });
}

gloo::AllreduceOptions::Func reduce_function(DType type, ReduceOp op) {
  const bool sum = op == ReduceOp::kSum;
  switch (type) {
    case DType::kFloat32:
      return sum ? &sum_of<float> : &max_of<float>;
    case DType::kInt32:
      return sum ? &sum_of<std::int32_t> : &max_of<std::int32_t>;
    case DType::kInt16:
      return sum ? &sum_of<std::int16_t> : &max_of<std::int16_t>;
    case DType::kInt8:
      return sum ? &sum_of<std::int8_t> : &max_of<std::int8_t>;
    case DType::kUInt8:
      return sum ? &sum_of<std::uint8_t> : &max_of<std::uint8_t>;
    case DType::kFloat16:
      return sum ? &sum_fp16 : &max_fp16;
    case DType::kBFloat16:
      return sum ? &sum_bf16 : &max_bf16;
  }
  return nullptr;
}

class GlooCollective final : public CollectiveEngine {
 public:
  explicit GlooCollective(const CollectiveOptions& o)
      : CollectiveEngine(o), timeout_(std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000))) {
    ignore_sigpipe();
    try {
      gloo::transport::tcp::attr attr;
      attr.hostname = o.host;
      device_ = gloo::transport::tcp::CreateDevice(attr);
      gloo::rendezvous::FileStore store(o.store_dir);
      auto context = std::make_shared<gloo::rendezvous::Context>(static_cast<int>(o.rank), static_cast<int>(o.size));
      context->setTimeout(timeout_);
      context->connectFullMesh(store, device_);
      context_ = std::move(context);
    } catch (const std::exception& e) {
      fail_setup(CommError::Kind::kIo, -1, fmt::format("collective rendezvous of rank {} failed: {}", o.rank, e.what()));
    }
    spdlog::debug("collective: rank {} of {} connected over Gloo TCP ({})", o.rank, o.size, o.host);
  }

  void allreduce(void* buf, std::size_t count, DType type, ReduceOp op) override {
    if (count == 0) return;
    const std::size_t bytes = count * dtype_bytes(type);
    run("allreduce", &CollectiveCounters::allreduce, ring_allreduce_bytes(bytes, dtype_bytes(type), o_.size, o_.rank),
        [&] {
          gloo::AllreduceOptions opts(context_);
          set_output(opts, buf, count, type);
          opts.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
          opts.setReduceFunction(reduce_function(type, op));
          opts.setTag(next_tag());
          opts.setTimeout(timeout_);
          gloo::allreduce(opts);
        });
  }

  void allgatherv(const void* in, std::size_t in_bytes, void* out,
                  const std::vector<std::size_t>& bytes_per_rank) override {
    if (bytes_per_rank.size() != o_.size || bytes_per_rank[o_.rank] != in_bytes) {
      throw CollectiveError(CommError::Kind::kInvalidArgument, -1, "allgatherv: block sizes do not match the ranks");
    }
    if (o_.size == 1) {  // run() skips the engine for one rank: the output is the input
      if (in_bytes > 0) std::memcpy(out, in, in_bytes);
    }
    run("allgatherv", &CollectiveCounters::allgather, ring_allgatherv_bytes(bytes_per_rank, o_.rank), [&] {
      gloo::AllgathervOptions opts(context_);
      // gloo copies the input into its block of the output; an empty block needs no input.
      if (in_bytes > 0) opts.setInput(const_cast<std::uint8_t*>(static_cast<const std::uint8_t*>(in)), in_bytes);
      opts.setOutput(static_cast<std::uint8_t*>(out), bytes_per_rank);
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::allgatherv(opts);
    });
  }

  void broadcast(void* buf, std::size_t bytes, std::uint32_t root) override {
    if (bytes == 0 || o_.size == 1) return;
    run("broadcast", &CollectiveCounters::broadcast, broadcast_bytes(bytes, o_.size, o_.rank, root), [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(static_cast<std::uint8_t*>(buf), bytes);
      opts.setRoot(static_cast<int>(root));
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::broadcast(opts);
    });
  }

  void barrier() override {
    if (o_.size == 1) return;
    run("barrier", &CollectiveCounters::barrier, CollectiveBytes{}, [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
  }

 private:
  static void set_output(gloo::AllreduceOptions& opts, void* buf, std::size_t count, DType type) {
    switch (type) {
      case DType::kFloat32:
        opts.setOutput(static_cast<float*>(buf), count);
        return;
      case DType::kInt32:
        opts.setOutput(static_cast<std::int32_t*>(buf), count);
        return;
      case DType::kFloat16:
      case DType::kBFloat16:
        opts.setOutput(static_cast<std::uint16_t*>(buf), count);
        return;
      case DType::kInt16:
        opts.setOutput(static_cast<std::int16_t*>(buf), count);
        return;
      case DType::kInt8:
        opts.setOutput(static_cast<std::int8_t*>(buf), count);
        return;
      case DType::kUInt8:
        opts.setOutput(static_cast<std::uint8_t*>(buf), count);
        return;
    }
  }

  std::uint32_t next_tag() { return tag_++; }

  /// Runs one collective call with counting and failure diagnosis.
  template <typename Body>
  void run(const char* name, CollectiveOpCounters CollectiveCounters::*kind, const CollectiveBytes& bytes, Body&& body) {
    if (!begin_call(name)) return;
    const auto t0 = Clock::now();
    try {
      body();
    } catch (const std::exception& e) {
      const std::string what = e.what();
      fail_call(name, what.find("imed out") != std::string::npos || what.find("imeout") != std::string::npos, what);
    }
    end_call(kind, bytes, t0);
  }

  std::chrono::milliseconds timeout_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> context_;
  std::uint32_t tag_ = 0;
};

}  // namespace

std::unique_ptr<Collective> make_gloo_collective(const CollectiveOptions& options) {
  return std::make_unique<GlooCollective>(options);
}

}  // namespace gradzip::comm
