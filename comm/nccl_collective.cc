// The NCCL engine of comm/collective.h (device buffers; compiled only when the CUDA build
// is on and NCCL is found, see comm/CMakeLists.txt). Rank 0's ncclUniqueId goes through
// the same FileStore directory the Gloo engine rendezvouses in. Every call is issued on
// this engine's stream and then polled until done or the timeout: on timeout or an
// asynchronous NCCL error the communicator is aborted and CollectiveError names the rank
// diagnosed from the heartbeat files (comm/collective_health.h), as with Gloo.
//
// Byte formulas (per rank): ring allreduce 2(R-1)/R * S (NCCL's ring; its tree algorithm
// on larger clusters moves the same volume per rank); allgatherv as one ncclBroadcast per
// block in a group: the ring forwards every block but that of rank r+1, as Gloo's ring.
// Not run here: the development machines have no GPU.
#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <gloo/rendezvous/file_store.h>

#include "comm/collective.h"
#include "comm/collective_engine.h"

namespace gradzip::comm {
namespace {

using Clock = std::chrono::steady_clock;

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    throw CollectiveError(CommError::Kind::kIo, -1, fmt::format("{}: {}", what, cudaGetErrorString(e)));
  }
}
void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess && r != ncclInProgress) {
    throw CollectiveError(CommError::Kind::kIo, -1, fmt::format("{}: {}", what, ncclGetErrorString(r)));
  }
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::kFloat32:
      return ncclFloat32;
    case DType::kFloat16:
      return ncclFloat16;
    case DType::kBFloat16:
      return ncclBfloat16;
    case DType::kInt32:
      return ncclInt32;
    case DType::kInt16:  // NCCL has no 16-bit integer: allreduce() refuses it
    case DType::kInt8:
      return ncclInt8;
    case DType::kUInt8:
      return ncclUint8;
  }
  return ncclUint8;
}

class NcclCollective final : public CollectiveEngine {
 public:
  explicit NcclCollective(const CollectiveOptions& o) : CollectiveEngine(o) {
    check_cuda(cudaSetDevice(o.device), "cudaSetDevice");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    ncclUniqueId id;
    gloo::rendezvous::FileStore store(o.store_dir);
    if (o.rank == 0) {
      check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
      store.set("nccl-unique-id", std::vector<char>(id.internal, id.internal + sizeof id.internal));
    }
    const std::vector<char> bytes = store.get("nccl-unique-id");
    if (bytes.size() != sizeof id.internal) {
      throw CollectiveError(CommError::Kind::kProtocol, 0, "NCCL rendezvous: malformed unique id in the store");
    }
    std::copy(bytes.begin(), bytes.end(), id.internal);
    check_nccl(ncclCommInitRank(&comm_, static_cast<int>(o.size), id, static_cast<int>(o.rank)), "ncclCommInitRank");
  }

  ~NcclCollective() override {
    if (comm_ != nullptr) (failed_ ? ncclCommAbort(comm_) : ncclCommDestroy(comm_));
    if (d_flag_ != nullptr) cudaFree(d_flag_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  void allreduce(void* d_buf, std::size_t count, DType type, ReduceOp op) override {
    if (type == DType::kInt16) {
      throw CollectiveError(CommError::Kind::kInvalidArgument, -1, "NCCL has no int16 reduction; use int32");
    }
    const std::uint64_t bytes = count * dtype_bytes(type);
    CollectiveBytes b;
    if (o_.size > 1) {
      b.sent = b.received = 2 * (o_.size - 1) * bytes / o_.size;
      b.sends = b.receives = 2 * (o_.size - 1);
    }
    run("allreduce", &CollectiveCounters::allreduce, b, [&] {
      check_nccl(ncclAllReduce(d_buf, d_buf, count, nccl_type(type), op == ReduceOp::kSum ? ncclSum : ncclMax, comm_,
                               stream_),
                 "ncclAllReduce");
    });
  }

  void allgatherv(const void* d_in, std::size_t in_bytes, void* d_out,
                  const std::vector<std::size_t>& bytes_per_rank) override {
    if (bytes_per_rank.size() != o_.size || bytes_per_rank[o_.rank] != in_bytes) {
      throw CollectiveError(CommError::Kind::kInvalidArgument, -1, "allgatherv: block sizes do not match the ranks");
    }
    run("allgatherv", &CollectiveCounters::allgather, ring_allgatherv_bytes(bytes_per_rank, o_.rank), [&] {
      check_nccl(ncclGroupStart(), "ncclGroupStart");
      std::size_t offset = 0;
      for (std::uint32_t r = 0; r < o_.size; ++r) {
        auto* dst = static_cast<std::uint8_t*>(d_out) + offset;
        const void* src = r == o_.rank ? d_in : dst;
        if (bytes_per_rank[r] > 0) {
          check_nccl(ncclBroadcast(src, dst, bytes_per_rank[r], ncclUint8, static_cast<int>(r), comm_, stream_),
                     "ncclBroadcast");
        }
        offset += bytes_per_rank[r];
      }
      check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    });
  }

  void broadcast(void* d_buf, std::size_t bytes, std::uint32_t root) override {
    CollectiveBytes b;  // NCCL's ring: every rank but the root's predecessor forwards, every rank but the root receives
    if (o_.size > 1 && o_.rank != (root + o_.size - 1) % o_.size) b = {bytes, 0, 1, 0};
    if (o_.size > 1 && o_.rank != root) b.received = bytes, b.receives = 1;
    run("broadcast", &CollectiveCounters::broadcast, b, [&] {
      check_nccl(ncclBroadcast(d_buf, d_buf, bytes, ncclUint8, static_cast<int>(root), comm_, stream_), "ncclBroadcast");
    });
  }

  void barrier() override {
    if (d_flag_ == nullptr) check_cuda(cudaMalloc(&d_flag_, sizeof(int)), "cudaMalloc");
    run("barrier", &CollectiveCounters::barrier, CollectiveBytes{}, [&] {
      check_nccl(ncclAllReduce(d_flag_, d_flag_, 1, ncclInt32, ncclSum, comm_, stream_), "ncclAllReduce (barrier)");
    });
  }

 private:
  /// Issues `body` on the stream, then polls the stream and the communicator's
  /// asynchronous error until done or the timeout.
  template <typename Body>
  void run(const char* name, CollectiveOpCounters CollectiveCounters::*kind, const CollectiveBytes& bytes, Body&& body) {
    if (!begin_call(name)) return;
    const auto t0 = Clock::now();
    body();
    const auto deadline = t0 + std::chrono::duration<double>(o_.timeout_s);
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) break;
      if (q != cudaErrorNotReady) check_cuda(q, name);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      const bool timed_out = Clock::now() >= deadline;
      if (async != ncclSuccess || timed_out) {
        failed_ = true;
        fail_call(name, timed_out, async != ncclSuccess ? ncclGetErrorString(async) : "NCCL call did not complete");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    end_call(kind, bytes, t0);
  }

  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  void* d_flag_ = nullptr;
  bool failed_ = false;  // abort the communicator instead of destroying it
};

}  // namespace

std::unique_ptr<Collective> make_nccl_collective(const CollectiveOptions& options) {
  return std::make_unique<NcclCollective>(options);
}

}  // namespace gradzip::comm
