// Device side of quant/sparse.h: exact top-k selection by the integer key abs_key
// (radix select), order-preserving compaction, and the sparse block writer/reader, so the
// CUDA sparsifiers produce the CPU's bytes. nvcc only.
//
// Selection (the rule of select_top_keys: k largest keys, ties to the smaller index):
//   three radix passes over the 31-bit key (digits of 11, 11 and 9 bits; randk's 32-bit
//   Philox keys use 11, 11 and 10 through the same kernels, templated on a key source;
//   shared-memory histograms, one block then finds the digit holding the k-th largest key) give the
//   exact k-th key T, `take` = how many keys equal to T are kept, and whether every key
//   equal to T is kept. Compaction is chunked (4096 elements per block, 16 contiguous per
//   thread): a count kernel, a one-block scan over chunks, and a write kernel whose
//   block scans give each kept element its output position and each tie its rank, so
//   indices come out ascending without a flag array or a host-known count (no CUB device
//   call needs the data-dependent count on the host). The same write pass stores
//   p = g + e into the residual (EF), and the value pass then replaces the kept ones by
//   p - C(p).
//
// Everything is stream-ordered on the caller's stream; the workspace layout is fixed by
// n and k (SparseWorkspace), sized on the host by the two-phase call.
#pragma once

#include <cuda_runtime_api.h>

#include "quant/cuda_kernels.cuh"
#include "quant/half.h"
#include "quant/sparse.h"

namespace gradzip::quant::cuda::sparse {

constexpr int kThreads = 256;
constexpr int kItems = 16;
constexpr std::size_t kChunk = static_cast<std::size_t>(kThreads) * kItems;  // 4096
constexpr int kRadixBins = 2048;
constexpr unsigned kHistBlocksMax = 512;
constexpr std::uint64_t kU32IndexLimit = std::uint64_t{1} << 32;

/// Value formats (quant/sparse.h SparseValues, same wire numbers).
enum class Values : std::uint8_t { kFp32 = 0, kFp16 = 1, kInt8 = 2 };

/// Bytes of a value block of `count` values (quant/sparse.h value_block_bytes).
__host__ __device__ inline std::uint64_t value_bytes(std::uint64_t count, Values fmt) {
  return fmt == Values::kFp32 ? 4 * count : (fmt == Values::kFp16 ? 2 * count : 4 + count);
}

/// Device-resident selection state (one per encode, in the workspace).
struct SelectState {
  std::uint64_t k;         // elements to keep
  std::uint32_t prefix;    // key bits found so far
  std::uint32_t nonfinite;  // 1 when some p = g + e is NaN/Inf (EF only): the residual stays untouched
  std::uint64_t above;     // keys strictly above the current prefix range
  std::uint32_t threshold; // T: the k-th largest key
  std::uint32_t all_ties;  // 1 when every key equal to T is kept
  std::uint64_t take;      // keys equal to T that are kept
  std::uint64_t varint_bytes;
  std::uint32_t max_abs_bits;  // int8 values: max |v| over kept values (float bits)
  std::uint32_t use_varint;
};

/// Workspace carve-up for n elements, k kept.
struct SparseWorkspace {
  SelectState* state = nullptr;
  std::uint64_t* hist = nullptr;      // kRadixBins
  std::uint64_t* chunk_gt = nullptr;  // per element chunk: keys > T
  std::uint64_t* chunk_eq = nullptr;  // keys == T
  std::uint64_t* chunk_eq_before = nullptr;
  std::uint64_t* chunk_out = nullptr;  // output offset of the chunk
  std::uint64_t* idx = nullptr;        // k kept positions, ascending
  std::uint64_t* vchunk = nullptr;     // per chunk of kept pairs: varint bytes, then their offsets
  std::size_t bytes = 0;

  static SparseWorkspace layout(void* base, std::size_t n, std::size_t k) {
    SparseWorkspace w;
    auto* p = static_cast<std::uint8_t*>(base);
    std::size_t off = 0;
    const auto take = [&](std::size_t bytes) {
      std::uint8_t* q = p == nullptr ? nullptr : p + off;
      off += (bytes + 255) / 256 * 256;
      return q;
    };
    const std::size_t chunks = (n + kChunk - 1) / kChunk + 1;
    const std::size_t kchunks = (k + kChunk - 1) / kChunk + 1;
    w.state = reinterpret_cast<SelectState*>(take(sizeof(SelectState)));
    w.hist = reinterpret_cast<std::uint64_t*>(take(8 * kRadixBins));
    w.chunk_gt = reinterpret_cast<std::uint64_t*>(take(8 * chunks));
    w.chunk_eq = reinterpret_cast<std::uint64_t*>(take(8 * chunks));
    w.chunk_eq_before = reinterpret_cast<std::uint64_t*>(take(8 * chunks));
    w.chunk_out = reinterpret_cast<std::uint64_t*>(take(8 * chunks));
    w.idx = reinterpret_cast<std::uint64_t*>(take(8 * (k + 1)));
    w.vchunk = reinterpret_cast<std::uint64_t*>(take(8 * kchunks));
    w.bytes = off;
    return w;
  }
};

/// Where each warp of the varint decoder starts (computed on the host while it walks the
/// validated index block; passed by value, so no host-to-device copy is needed).
constexpr int kVarintEntries = 64;
struct VarintEntries {
  std::uint32_t count = 0;                      // entries used
  std::uint64_t pos[kVarintEntries + 1] = {};   // byte offset in the index block
  std::uint64_t ord[kVarintEntries + 1] = {};   // ordinal j of the first pair
  std::uint64_t next[kVarintEntries + 1] = {};  // smallest index the pair may take
};

/// Host: splits a validated varint block into up to kVarintEntries segments of equal
/// pair counts and records where each starts (byte, ordinal, running index): one host
/// pass over the index bytes, which validation has just read.
inline void plan_varint(const std::uint8_t* idx, std::uint64_t bytes, std::uint64_t count, VarintEntries* e) {
  const std::uint64_t per = (count + kVarintEntries - 1) / kVarintEntries;
  std::uint64_t pos = 0, next = 0;
  e->count = 0;
  for (std::uint64_t j = 0; j < count; ++j) {
    if (j % per == 0) {
      e->pos[e->count] = pos;
      e->ord[e->count] = j;
      e->next[e->count] = next;
      ++e->count;
    }
    std::uint64_t gap = 0;
    for (int shift = 0; pos < bytes; shift += 7) {
      const std::uint8_t b = idx[pos++];
      gap |= static_cast<std::uint64_t>(b & 0x7Fu) << shift;
      if (b < 0x80u) break;
    }
    next += gap + 1;
  }
  e->ord[e->count] = count;
}

/// What the host knows about a sparse block before decoding it.
struct SparseDecodePlan {
  Values fmt = Values::kFp32;
  std::uint64_t count = 0;        ///< pairs (host-validated), or the bound when !validated
  bool validated = false;         ///< false: decode_own, count and index format read on the device
  bool varint = false;            ///< index format (validated only)
  std::uint64_t index_bytes = 0;  ///< validated only
  VarintEntries entries;          ///< validated varint blocks only
};

/// Fills *plan for a block the host has validated (parse_sparse_block, quant/sparse.h,
/// with value format wire_fmt): format, count and index format from the view, and the
/// varint entry points when the indices are varints. Other plan fields are not touched.
inline void plan_validated_block(SparseValues wire_fmt, const SparseBlockView& view, SparseDecodePlan* plan) {
  plan->fmt = static_cast<Values>(wire_fmt);
  plan->count = view.count;
  plan->validated = true;
  plan->varint = view.varint;
  plan->index_bytes = view.index_bytes;
  if (view.varint) plan_varint(view.indices, view.index_bytes, view.count, &plan->entries);
}

/// Writes value j of a value block in format fmt (at `values`, the block start) for the
/// kept element v, as write_value_block (quant/sparse.cc) does, and returns the value a
/// decoder reads back: fp32 v itself; fp16 float_to_fp16(v) saturated to +-65504; int8
/// q = rint(v / scale) clamped to [-127, 127] (0 when scale == 0) at values[4 + j],
/// decoded as q * scale. `scale` is only read for int8 (its bytes are written elsewhere).
__device__ __forceinline__ float write_kept_value(std::uint8_t* values, Values fmt, std::uint64_t j, float v,
                                                  float scale) {
  if (fmt == Values::kFp32) {
    reinterpret_cast<float*>(values)[j] = v;
    return v;
  }
  if (fmt == Values::kFp16) {
    std::uint16_t h = float_to_fp16(v);
    if ((h & 0x7FFFu) == 0x7C00u) h = static_cast<std::uint16_t>((h & 0x8000u) | 0x7BFFu);  // saturate
    reinterpret_cast<std::uint16_t*>(values)[j] = h;
    return fp16_to_float(h);
  }
  float q = scale > 0.0f ? rintf(v / scale) : 0.0f;
  q = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
  const auto q8 = static_cast<std::int8_t>(q);
  values[4 + j] = static_cast<std::uint8_t>(q8);
  return static_cast<float>(q8) * scale;
}


/// Selection state for top-k of k elements (zeroed histogram; kernels fill the rest).
Status launch_select_init(const SparseWorkspace& ws, std::uint64_t k, cudaStream_t stream);
/// Selection state for "keep abs_key >= tau_key" (no radix passes needed).
Status launch_threshold_init(const SparseWorkspace& ws, std::uint32_t tau_key, cudaStream_t stream);
/// The k (>= 1) largest |p| (p = g [+ e], radix select) into ws.idx, ascending, and with
/// EF the residual set to p everywhere. After launch_select_init.
Status launch_topk_select(const float* d_grad, float* d_residual, std::size_t n, std::uint64_t k,
                          const SparseWorkspace& ws, cudaStream_t stream);
/// The three radix passes alone (no compaction): ws.state->threshold / take / all_ties of
/// the ws.state->k largest abs_key(x [+ residual]) of x[0, n) (read only). When d_skip is
/// not null and *d_skip != 0 when the kernels run, they return at once (dgc decides on the
/// device whether its exact top-k fallback is needed). After launch_select_init.
Status launch_radix_select(const float* d_x, const float* d_residual, std::size_t n, const SparseWorkspace& ws,
                           const std::uint32_t* d_skip, cudaStream_t stream);
/// randk: the ws.state->k (< n) SMALLEST Philox selection keys
/// random_bits(*d_ctx, kSelection, i), ties to the smaller index (radix select over
/// ~key, 32-bit digits 11/11/10), compacted into ws.idx ascending; with d_residual the
/// residual becomes p = g + e everywhere (d_grad is read only then). After launch_select_init.
Status launch_philox_select(const SeedContext* d_ctx, const float* d_grad, float* d_residual, std::size_t n,
                            const SparseWorkspace& ws, cudaStream_t stream);
/// int8 values: ws.state->max_abs_bits = max abs_key(d_x[ws.idx[j]]) over j < ws.state->k
/// (<= k_bound). launch_sparse_emit calls it itself.
Status launch_kept_absmax(const float* d_x, const SparseWorkspace& ws, std::uint64_t k_bound, cudaStream_t stream);
/// Compaction of the positions chosen by ws.state (threshold T, take) into ws.idx,
/// ascending, the count into ws.state->k; with EF the residual becomes p everywhere.
Status launch_select_compact(const float* d_grad, float* d_residual, std::size_t n, const SparseWorkspace& ws,
                             cudaStream_t stream);
/// Writes prefix + sparse block of the positions in ws.idx (count ws.state->k <= k_bound
/// on the device); the sparse block starts at prefix.bytes, after prefix.lead host-known
/// payload bytes (dgc's step), which count in the payload length: values of x = residual (holding p) with EF, else of the gradient;
/// the kept residuals become p - C(p). Header flags, payload length and
/// *d_message_bytes come from the device.
Status launch_sparse_emit(const float* d_grad, float* d_residual, std::uint64_t n, std::uint64_t k_bound, Values fmt,
                          const SparseWorkspace& ws, std::uint8_t* d_out, const MessagePrefix& prefix,
                          std::uint64_t* d_message_bytes, cudaStream_t stream);


/// Zero-fills (decode) and scatters the sparse block at d_payload into d_out[0, n).
Status launch_sparse_decode(const SparseDecodePlan& plan, const std::uint8_t* d_msg, const std::uint8_t* d_payload,
                            std::size_t n, float* d_out, float scale, bool accumulate, cudaStream_t stream);

}  // namespace gradzip::quant::cuda::sparse
