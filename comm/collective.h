// Collectives on an existing engine: Gloo (CPU, TCP; the engine PyTorch uses on CPUs)
// and NCCL (device buffers; compiled only with the CUDA build). The aggregation modes of
// comm/collective_transport.h run on this interface; nothing here is a home-made ring.
//
//   CollectiveOptions o;                 // rank, size, store_dir shared by the ranks
//   auto c = make_collective(o);         // rendezvous (gloo::rendezvous::FileStore)
//   c->allreduce(buf, n, DType::kFloat32, ReduceOp::kSum);
//
// Every call is blocking and collective: every rank calls the same operations in the same
// order with the same sizes. Each call has a timeout (CollectiveOptions::timeout_s); a
// rank that dies or hangs makes the others throw CollectiveError within it, with a
// message naming the rank (diagnosed from the heartbeat files in store_dir,
// comm/collective_health.h). After an error the collective is unusable.
//
// Byte accounting (per rank, per call, from the algorithm's formula; README "Collectives"):
//   allreduce, Gloo ring (gloo::allreduce): S bytes are cut into n = R*k segments (k >= 2,
//     each at most 1 MiB, all of ceil(S/n) bytes rounded up to the element size, clipped at
//     S); in each of its two phases (reduce-scatter, then allgather) a rank sends (R-1)*k
//     segments: 2(R-1)/R * S up to the rounding (checked against veth counters on a netns
//     link: tests/experiments/netem_bytes_test.cc).
//   allgatherv (ring): rank r sends every block but that of rank r+1 mod R and receives
//     every block but its own.
//   broadcast: the root sends S to each of the R-1 others.
// Framing: each Gloo TCP send costs a 48-byte preamble plus a 48-byte send-ready
// notification, each receive a 48-byte receive-ready notification (transport/tcp/pair.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/transport.h"

namespace gradzip::comm {

/// Element types a collective reduces. kFloat16 / kBFloat16 are stored as uint16 bits
/// (quant/half.h) and summed through fp32 with round-to-nearest-even after every add.
/// Integer sums wrap like the C++ type (callers pick a type the sum cannot overflow:
/// homomorphic aggregation). NCCL has no int16.
enum class DType { kFloat32, kFloat16, kBFloat16, kInt32, kInt16, kInt8, kUInt8 };
enum class ReduceOp { kSum, kMax };

std::size_t dtype_bytes(DType t);
const char* dtype_name(DType t);

/// A collective that failed: timeout, closed peer, mismatch between ranks. `rank()` is
/// the rank the failure is blamed on (-1: not known). A CommError, so transports and the
/// trainer handle it like any transport failure.
class CollectiveError : public CommError {
 public:
  CollectiveError(Kind kind, int blamed_rank, const std::string& what)
      : CommError(kind, what), rank_(blamed_rank) {}
  int rank() const noexcept { return rank_; }

 private:
  int rank_;
};

/// Bytes of one kind of collective, cumulative since construction (this rank's view).
struct CollectiveOpCounters {
  std::uint64_t calls = 0;
  std::uint64_t sent_bytes = 0;       ///< payload this rank sent (formula above)
  std::uint64_t received_bytes = 0;   ///< payload this rank received
  std::uint64_t framing_sent_bytes = 0, framing_received_bytes = 0;
  std::uint64_t sends = 0, receives = 0;  ///< transport messages (segments, blocks)
  double seconds = 0.0;
};
struct CollectiveCounters {
  CollectiveOpCounters allreduce, allgather, broadcast, barrier;
  /// All kinds summed.
  CollectiveOpCounters total() const;
};

/// Where and how the ranks meet. Plain value type.
struct CollectiveOptions {
  std::string engine = "gloo";     ///< gloo (host buffers) | nccl (device buffers, CUDA builds)
  std::uint32_t rank = 0;
  std::uint32_t size = 1;
  /// Directory shared by every rank (a run directory's subfolder: local processes,
  /// network namespaces and shared file systems): the rendezvous store and heartbeats.
  /// Must be fresh for each start of the ranks (a stale store would pair old addresses).
  std::string store_dir;
  /// Address this rank listens on for its peers (Gloo TCP device): 127.0.0.1 for local
  /// processes, the namespace's address under netns, the host's on a cluster.
  std::string host = "127.0.0.1";
  double timeout_s = 60.0;         ///< every collective and the rendezvous
  double heartbeat_s = 0.5;        ///< heartbeat file period (failure diagnosis)
  int device = 0;                  ///< nccl: CUDA device ordinal
};

/// The engine-neutral interface. Thread-compatible: one thread drives a collective.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual std::uint32_t rank() const = 0;
  virtual std::uint32_t size() const = 0;
  /// In place over buf[0, count) elements of `type`.
  virtual void allreduce(void* buf, std::size_t count, DType type, ReduceOp op) = 0;
  /// Gathers in_bytes from every rank into out, rank order: rank r's block starts at
  /// sum(bytes_per_rank[0, r)). bytes_per_rank[rank()] must equal in_bytes.
  virtual void allgatherv(const void* in, std::size_t in_bytes, void* out,
                          const std::vector<std::size_t>& bytes_per_rank) = 0;
  /// root's buf[0, bytes) to every rank.
  virtual void broadcast(void* buf, std::size_t bytes, std::uint32_t root) = 0;
  virtual void barrier() = 0;
  virtual CollectiveCounters counters() const = 0;
  /// Completed collective calls (what the heartbeat reports).
  virtual std::uint64_t completed() const = 0;
};

/// Starts the engine: rendezvous through options.store_dir, full mesh of connections,
/// heartbeat. Throws CollectiveError (kInvalidArgument: unknown engine, nccl in a build
/// without CUDA, rank >= size; kTimeout: a rank did not arrive within timeout_s, naming it).
std::unique_ptr<Collective> make_collective(const CollectiveOptions& options);

/// Gathers a variable-size blob from every rank (sizes first, then allgatherv).
std::vector<std::vector<std::uint8_t>> allgather_blobs(Collective& c, const std::uint8_t* data, std::size_t bytes);

// ---- byte formulas (per rank; exposed for tests and the byte check) ----
struct CollectiveBytes {
  std::uint64_t sent = 0, received = 0;
  std::uint64_t sends = 0, receives = 0;
};
/// Gloo ring allreduce of `bytes` (elements of `element_bytes`) on `size` ranks.
CollectiveBytes ring_allreduce_bytes(std::uint64_t bytes, std::size_t element_bytes, std::uint32_t size,
                                     std::uint32_t rank);
/// Ring allgatherv with block sizes `bytes_per_rank`.
CollectiveBytes ring_allgatherv_bytes(const std::vector<std::size_t>& bytes_per_rank, std::uint32_t rank);
/// Broadcast of `bytes` from root (one-to-all).
CollectiveBytes broadcast_bytes(std::uint64_t bytes, std::uint32_t size, std::uint32_t rank, std::uint32_t root);
/// Gloo TCP framing bytes per send (preamble + send-ready) and per receive (receive-ready).
constexpr std::uint64_t kGlooSendFramingBytes = 96;
constexpr std::uint64_t kGlooRecvFramingBytes = 48;

/// Adds one call's bytes (and seconds) to `c`.
void count_collective(CollectiveOpCounters* c, const CollectiveBytes& b, double seconds);

}  // namespace gradzip::comm
