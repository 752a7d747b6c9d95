// Engine-neutral parts of comm/collective.h: element types, the per-rank byte formulas of
// the algorithms the engines run, counters, the engine factory.
#include "comm/collective.h"

#include <algorithm>
#include <cstring>

namespace gradzip::comm {

std::unique_ptr<Collective> make_gloo_collective(const CollectiveOptions& options);  // gloo_collective.cc
#ifdef GRADZIP_HAVE_NCCL
std::unique_ptr<Collective> make_nccl_collective(const CollectiveOptions& options);  // nccl_collective.cc
#endif

std::size_t dtype_bytes(DType t) {
  switch (t) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kInt16:
      return 2;
    case DType::kInt8:
    case DType::kUInt8:
      return 1;
  }
  return 1;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32:
      return "fp32";
    case DType::kFloat16:
      return "fp16";
    case DType::kBFloat16:
      return "bf16";
    case DType::kInt32:
      return "int32";
    case DType::kInt16:
      return "int16";
    case DType::kInt8:
      return "int8";
    case DType::kUInt8:
      return "uint8";
  }
  return "?";
}

CollectiveOpCounters CollectiveCounters::total() const {
  CollectiveOpCounters t;
  for (const CollectiveOpCounters* c : {&allreduce, &allgather, &broadcast, &barrier}) {
    t.calls += c->calls;
    t.sent_bytes += c->sent_bytes;
    t.received_bytes += c->received_bytes;
    t.framing_sent_bytes += c->framing_sent_bytes;
    t.framing_received_bytes += c->framing_received_bytes;
    t.sends += c->sends;
    t.receives += c->receives;
    t.seconds += c->seconds;
  }
  return t;
}

CollectiveBytes ring_allreduce_bytes(std::uint64_t bytes, std::size_t element_bytes, std::uint32_t size,
                                     std::uint32_t rank) {
  CollectiveBytes b;
  if (size <= 1 || bytes == 0) return b;
  // The segmentation of gloo::allreduce's ring (Debian's gloo 0.5, 2022): n = R*k
  // segments, at least two per rank, a multiple of R, each at most 1 MiB (a whole number
  // of elements) and all of the same size s = ceil(S / n) rounded up to the element size;
  // the tail segments are clipped at S (and may be empty).
  const std::uint64_t R = size;
  const std::uint64_t max_segment = element_bytes * std::max<std::uint64_t>(1, (std::uint64_t{1} << 20) / element_bytes);
  std::uint64_t segments = std::max((bytes + max_segment - 1) / max_segment, 2 * R);
  segments = (segments + R - 1) / R * R;
  const std::uint64_t per_rank = segments / R;
  std::uint64_t segment = (bytes + segments - 1) / segments;
  segment = (segment + element_bytes - 1) / element_bytes * element_bytes;
  const std::uint64_t span = segments * segment;
  auto length = [&](std::uint64_t first_chunk, std::uint64_t i) -> std::uint64_t {
    const std::uint64_t offset = ((first_chunk * per_rank + i) * segment) % span;
    return offset >= bytes ? 0 : std::min(segment, bytes - offset);
  };
  // Reduce-scatter sends chunks rank+1.. and receives chunks rank+2..; the allgather
  // sends chunks rank.. and receives chunks rank+1..; (R-1)*k segments each way and phase.
  for (std::uint64_t i = 0; i < segments - per_rank; ++i) {
    const std::uint64_t sends[2] = {length(rank + 1, i), length(rank, i)};
    const std::uint64_t recvs[2] = {length(rank + 2, i), length(rank + 1, i)};
    for (int phase = 0; phase < 2; ++phase) {
      if (sends[phase] > 0) {
        b.sent += sends[phase];
        ++b.sends;
      }
      if (recvs[phase] > 0) {
        b.received += recvs[phase];
        ++b.receives;
      }
    }
  }
  return b;
}

CollectiveBytes ring_allgatherv_bytes(const std::vector<std::size_t>& bytes_per_rank, std::uint32_t rank) {
  CollectiveBytes b;
  const std::size_t R = bytes_per_rank.size();
  if (R <= 1) return b;
  for (std::size_t r = 0; r < R; ++r) {
    if (r != (rank + 1) % R) {  // every block but that of the next rank goes to it
      b.sent += bytes_per_rank[r];
      ++b.sends;
    }
    if (r != rank) {
      b.received += bytes_per_rank[r];
      ++b.receives;
    }
  }
  return b;
}

CollectiveBytes broadcast_bytes(std::uint64_t bytes, std::uint32_t size, std::uint32_t rank, std::uint32_t root) {
  // Binomial tree (gloo::broadcast): virtual rank v = rank - root receives once from
  // v without its highest bit and sends to v + 2^i for every i above that bit with
  // v + 2^i < R.
  CollectiveBytes b;
  if (size <= 1) return b;
  const std::uint64_t v = (rank + size - root) % size;
  int high = -1;
  for (int i = 0; i < 64; ++i) {
    if ((v >> i) & 1u) high = i;
  }
  if (v != 0) {
    b.received = bytes;
    b.receives = 1;
  }
  for (int i = high + 1; i < 64 && v + (std::uint64_t{1} << i) < size; ++i) {
    b.sent += bytes;
    ++b.sends;
  }
  return b;
}

void count_collective(CollectiveOpCounters* c, const CollectiveBytes& b, double seconds) {
  ++c->calls;
  c->sent_bytes += b.sent;
  c->received_bytes += b.received;
  c->sends += b.sends;
  c->receives += b.receives;
  // A send costs its preamble and send-ready notification on the sender's side, and a
  // receive-ready notification on the receiver's: what this rank sends is its sends'
  // framing plus its receives' notifications, and the mirror image arrives.
  c->framing_sent_bytes += b.sends * kGlooSendFramingBytes + b.receives * kGlooRecvFramingBytes;
  c->framing_received_bytes += b.receives * kGlooSendFramingBytes + b.sends * kGlooRecvFramingBytes;
  c->seconds += seconds;
}

std::vector<std::vector<std::uint8_t>> allgather_blobs(Collective& c, const std::uint8_t* data, std::size_t bytes) {
  const std::uint32_t R = c.size();
  // Sizes first: one 8-byte block per rank.
  std::uint64_t own = bytes;
  std::vector<std::uint64_t> sizes(R, 0);
  c.allgatherv(&own, sizeof own, sizes.data(), std::vector<std::size_t>(R, sizeof own));
  std::vector<std::size_t> per_rank(R);
  std::size_t total = 0;
  for (std::uint32_t r = 0; r < R; ++r) {
    per_rank[r] = static_cast<std::size_t>(sizes[r]);
    total += per_rank[r];
  }
  std::vector<std::uint8_t> all(std::max<std::size_t>(total, 1));
  c.allgatherv(data, bytes, all.data(), per_rank);
  std::vector<std::vector<std::uint8_t>> out(R);
  std::size_t offset = 0;
  for (std::uint32_t r = 0; r < R; ++r) {
    out[r].assign(all.begin() + static_cast<std::ptrdiff_t>(offset),
                  all.begin() + static_cast<std::ptrdiff_t>(offset + per_rank[r]));
    offset += per_rank[r];
  }
  return out;
}

std::unique_ptr<Collective> make_collective(const CollectiveOptions& options) {
  if (options.size == 0 || options.rank >= options.size) {
    throw CollectiveError(CommError::Kind::kInvalidArgument, -1,
                          "collective rank " + std::to_string(options.rank) + " is not below the size " +
                              std::to_string(options.size));
  }
  if (options.store_dir.empty()) {
    throw CollectiveError(CommError::Kind::kInvalidArgument, -1, "collective: no store directory given");
  }
  if (options.engine == "gloo") return make_gloo_collective(options);
  if (options.engine == "nccl") {
#ifdef GRADZIP_HAVE_NCCL
    return make_nccl_collective(options);
#else
    throw CollectiveError(CommError::Kind::kInvalidArgument, -1,
                          "collective engine nccl: this build has no CUDA/NCCL (configure with GRADZIP_CUDA=ON on a "
                          "host with NCCL)");
#endif
  }
  throw CollectiveError(CommError::Kind::kInvalidArgument, -1,
                        "unknown collective engine '" + options.engine + "' (allowed: gloo, nccl)");
}

}  // namespace gradzip::comm
