// Kernels of quant/cuda_sparse.cuh (the design is described there). One translation
// unit for every sparse twin, so CUB's block primitives are compiled once.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "quant/cuda_sparse.cuh"
#include "quant/half.h"
#include "quant/varint_walk.h"

namespace gradzip::quant::cuda::sparse {

__device__ __forceinline__ std::uint32_t abs_key_d(float x) { return __float_as_uint(x) & 0x7FFFFFFFu; }

template <bool kEf>
__device__ __forceinline__ float load_p(const float* g, const float* r, std::size_t i) {
  if constexpr (kEf) return g[i] + r[i];  // Memory "ef" compensate: p = g + e
  return g[i];
}

// Key sources of the selection kernels (the k LARGEST keys are kept, ties to the smaller
// index). Each kernel copies its source by value and calls load() once.
//   key(i):       the key of element i (radix and count passes: read only);
//   key_store(i): the same key, and with EF stores p = g + e into the residual (write pass).

/// topk / threshold / dgc: abs_key(p), p = g [+ e]; 31-bit keys.
template <bool kEf>
struct AbsKeys {
  static constexpr int kBits = 31;
  const float* g;
  float* r;
  __device__ void load() {}
  __device__ std::uint32_t key(std::size_t i) const { return abs_key_d(load_p<kEf>(g, r, i)); }
  __device__ std::uint32_t key_store(std::size_t i) const {
    const float p = load_p<kEf>(g, r, i);
    if constexpr (kEf) r[i] = p;
    return abs_key_d(p);
  }
  /// With EF: p(i) is NaN/Inf, given its key (read-only; the residual must then stay e).
  __device__ bool nonfinite(std::size_t, std::uint32_t key) const { return kEf && key >= 0x7F800000u; }
};

/// randk: ~random_bits(ctx, kSelection, i), so the k largest are the k smallest Philox
/// keys with ties to the smaller index (quant/codecs/randk.cc); 32-bit keys. The context
/// is read from device memory (decode_own knows it only there).
template <bool kEf>
struct PhiloxKeys {
  static constexpr int kBits = 32;
  const float* g;
  float* r;
  const SeedContext* d_ctx;
  SeedContext ctx;
  __device__ void load() { ctx = *d_ctx; }
  __device__ std::uint32_t key(std::size_t i) const { return ~random_bits(ctx, RandomStream::kSelection, i); }
  __device__ std::uint32_t key_store(std::size_t i) const {
    if constexpr (kEf) r[i] = g[i] + r[i];  // Memory "ef" compensate: p = g + e
    return key(i);
  }
  /// With EF: p(i) = g + e is NaN/Inf (the key does not depend on the values).
  __device__ bool nonfinite(std::size_t i, std::uint32_t) const {
    if constexpr (kEf) return abs_key_d(g[i] + r[i]) >= 0x7F800000u;
    return false;
  }
};

// Radix pass `pass` (0, 1, 2) over kBits-bit keys (digits of 11, 11, kBits - 22 bits):
// digit bits [shift, shift + width) of keys whose higher bits equal the prefix found by
// the earlier passes.
__device__ __forceinline__ int pass_shift(int pass, int bits) { return pass == 0 ? bits - 11 : (pass == 1 ? bits - 22 : 0); }
__device__ __forceinline__ int pass_width(int pass, int bits) { return pass == 2 ? bits - 22 : 11; }

/// Zeroes the selection state and the histogram and sets k (one thread block: both are
/// tiny, and a kernel argument avoids a host-to-device copy).
__global__ void select_init_kernel(SelectState* state, std::uint64_t* hist, std::uint64_t k) {
  for (int b = threadIdx.x; b < kRadixBins; b += blockDim.x) hist[b] = 0;
  if (threadIdx.x == 0) {
    *state = SelectState{};
    state->k = k;
  }
}

/// Threshold selection (keep key >= tau_key): no radix passes; T = tau_key with every
/// tie kept.
__global__ void select_threshold_init_kernel(SelectState* state, std::uint32_t tau_key) {
  *state = SelectState{};
  state->threshold = tau_key;
  state->take = ~std::uint64_t{0};
  state->all_ties = 1;
}

/// d_skip (may be null): when *d_skip != 0 the kernel returns at once (dgc launches the
/// exact selection unconditionally and lets the device decide whether it runs).
template <typename Source>
__global__ void __launch_bounds__(kThreads)
    radix_hist_kernel(Source src, std::size_t n, int pass, const SelectState* state, std::uint64_t* hist,
                      const std::uint32_t* d_skip) {
  if (d_skip != nullptr && *d_skip != 0) return;
  src.load();
  __shared__ unsigned int sh[kRadixBins];
  for (int b = threadIdx.x; b < kRadixBins; b += blockDim.x) sh[b] = 0;
  __syncthreads();
  const int shift = pass_shift(pass, Source::kBits);
  const int width = pass_width(pass, Source::kBits);
  const std::uint32_t mask = (1u << width) - 1u;
  const int hi = shift + width;  // bits >= hi must match the prefix (hi < 32 unless pass 0)
  const std::uint32_t want = pass == 0 ? 0u : state->prefix >> hi;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const std::uint32_t key = src.key(i);
    if (pass == 0 || (key >> hi) == want) atomicAdd(&sh[(key >> shift) & mask], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < kRadixBins; b += blockDim.x) {
    if (sh[b] != 0) atomicAdd(reinterpret_cast<unsigned long long*>(&hist[b]), static_cast<unsigned long long>(sh[b]));
  }
}

/// One block: walks the histogram from the top bin down to the bin that holds the k-th
/// largest key of the current range, extends the prefix, zeroes the histogram for the
/// next pass. After pass 2 the prefix is T.
__global__ void __launch_bounds__(kThreads)
    radix_find_kernel(int pass, int key_bits, SelectState* state, std::uint64_t* hist, const std::uint32_t* d_skip) {
  if (d_skip != nullptr && *d_skip != 0) return;
  using Scan = cub::BlockScan<std::uint64_t, kThreads>;
  __shared__ typename Scan::TempStorage temp;
  constexpr int kPer = kRadixBins / kThreads;  // 8 bins per thread, descending
  const int bins = 1 << pass_width(pass, key_bits);
  const int top = bins - 1 - kPer * static_cast<int>(threadIdx.x);
  std::uint64_t h[kPer];
  std::uint64_t sum = 0;
  for (int j = 0; j < kPer; ++j) {
    const int b = top - j;
    h[j] = b >= 0 ? hist[b] : 0;
    sum += h[j];
  }
  std::uint64_t before = 0;
  Scan(temp).ExclusiveSum(sum, before);
  const std::uint64_t k = state->k;
  const std::uint64_t above0 = state->above;
  std::uint64_t running = above0 + before;
  __syncthreads();
  for (int j = 0; j < kPer; ++j) {
    const int b = top - j;
    if (b >= 0 && running < k && running + h[j] >= k) {
      // Exactly one (thread, bin) sees the crossing.
      const int shift = pass_shift(pass, key_bits);
      state->prefix |= static_cast<std::uint32_t>(b) << shift;
      state->above = running;
      if (pass == 2) {
        state->threshold = state->prefix;
        state->take = k - running;
        state->all_ties = (k - running == h[j]) ? 1u : 0u;
      }
    }
    running += h[j];
  }
  __syncthreads();
  for (int b = threadIdx.x; b < kRadixBins; b += blockDim.x) hist[b] = 0;
}

/// Per chunk of kChunk elements: keys > T and keys == T; with EF, sets state->nonfinite
/// when some p is NaN/Inf (before the write pass, which then leaves the residual alone).
template <typename Source>
__global__ void __launch_bounds__(kThreads)
    select_count_kernel(Source src, std::size_t n, SelectState* state, std::uint64_t* chunk_gt,
                        std::uint64_t* chunk_eq) {
  src.load();
  using Reduce = cub::BlockReduce<std::uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage temp;
  const std::uint32_t T = state->threshold;
  const std::size_t base = static_cast<std::size_t>(blockIdx.x) * kChunk + static_cast<std::size_t>(threadIdx.x) * kItems;
  std::uint64_t gt = 0, eq = 0;
  bool bad = false;
  for (int j = 0; j < kItems; ++j) {
    const std::size_t i = base + j;
    if (i < n) {
      const std::uint32_t key = src.key(i);
      gt += key > T ? 1u : 0u;
      eq += key == T ? 1u : 0u;
      bad = bad || src.nonfinite(i, key);
    }
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) state->nonfinite = 1;  // every writer stores 1
  // Pack both counts: each is <= kChunk < 2^32.
  const std::uint64_t packed = Reduce(temp).Sum(gt << 32 | eq);
  if (threadIdx.x == 0) {
    chunk_gt[blockIdx.x] = packed >> 32;
    chunk_eq[blockIdx.x] = packed & 0xFFFFFFFFu;
  }
}

/// One block: for every chunk, how many ties come before it and where its kept elements
/// start in the output (ties kept = the first `take` in index order).
__global__ void __launch_bounds__(kThreads)
    select_scan_kernel(std::size_t chunks, SelectState* state, const std::uint64_t* chunk_gt,
                       const std::uint64_t* chunk_eq, std::uint64_t* chunk_eq_before, std::uint64_t* chunk_out) {
  using Scan = cub::BlockScan<std::uint64_t, kThreads>;
  __shared__ typename Scan::TempStorage temp;
  const std::uint64_t take = state->take;
  std::uint64_t eq_carry = 0, out_carry = 0;
  for (std::size_t c0 = 0; c0 < chunks; c0 += kThreads) {
    const std::size_t c = c0 + threadIdx.x;
    const std::uint64_t eq = c < chunks ? chunk_eq[c] : 0;
    std::uint64_t eq_before = 0, eq_total = 0;
    Scan(temp).ExclusiveSum(eq, eq_before, eq_total);
    __syncthreads();
    eq_before += eq_carry;
    const std::uint64_t ties = eq_before >= take ? 0 : (take - eq_before < eq ? take - eq_before : eq);
    const std::uint64_t sel = (c < chunks ? chunk_gt[c] : 0) + ties;
    std::uint64_t out_before = 0, out_total = 0;
    Scan(temp).ExclusiveSum(sel, out_before, out_total);
    __syncthreads();
    if (c < chunks) {
      chunk_eq_before[c] = eq_before;
      chunk_out[c] = out_carry + out_before;
    }
    eq_carry += eq_total;
    out_carry += out_total;
  }
  // The kept count: k for top-k; data-dependent for a threshold. Later kernels read it.
  if (threadIdx.x == 0) state->k = out_carry;
}

/// Per chunk: writes the kept positions (ascending) to idx, and with EF stores p = g + e
/// into the residual of every element (the value pass fixes the kept ones).
template <typename Source>
__global__ void __launch_bounds__(kThreads)
    select_write_kernel(Source src, std::size_t n, const SelectState* state, const std::uint64_t* chunk_eq_before,
                        const std::uint64_t* chunk_out, std::uint64_t* idx) {
  src.load();
  using Scan = cub::BlockScan<std::uint32_t, kThreads>;
  __shared__ typename Scan::TempStorage temp;
  const std::uint32_t T = state->threshold;
  const std::uint64_t take = state->take;
  const bool keep_residual = state->nonfinite != 0;  // a NaN/Inf p: the residual keeps e
  const std::size_t base = static_cast<std::size_t>(blockIdx.x) * kChunk + static_cast<std::size_t>(threadIdx.x) * kItems;
  std::uint32_t keys[kItems];
  std::uint32_t eq = 0;
  for (int j = 0; j < kItems; ++j) {
    const std::size_t i = base + j;
    keys[j] = 0;
    if (i < n) {
      keys[j] = keep_residual ? src.key(i) : src.key_store(i);
      eq += keys[j] == T ? 1u : 0u;
    }
  }
  std::uint32_t eq_rank = 0;
  Scan(temp).ExclusiveSum(eq, eq_rank);
  __syncthreads();
  std::uint64_t tie = chunk_eq_before[blockIdx.x] + eq_rank;  // ties before this thread's first
  bool keep[kItems];
  std::uint32_t kept = 0;
  for (int j = 0; j < kItems; ++j) {
    const std::size_t i = base + j;
    keep[j] = false;
    if (i < n) {
      if (keys[j] > T) {
        keep[j] = true;
      } else if (keys[j] == T) {
        keep[j] = tie < take;
        ++tie;
      }
    }
    kept += keep[j] ? 1u : 0u;
  }
  std::uint32_t pos = 0;
  Scan(temp).ExclusiveSum(kept, pos);
  std::uint64_t out = chunk_out[blockIdx.x] + pos;
  for (int j = 0; j < kItems; ++j) {
    if (keep[j]) idx[out++] = base + j;
  }
}

namespace {

unsigned hist_grid(std::size_t n) {
  std::size_t b = (n + kChunk - 1) / kChunk;
  if (b == 0) b = 1;
  return static_cast<unsigned>(b < kHistBlocksMax ? b : kHistBlocksMax);
}

/// The three radix passes: T, take and all_ties of the k = ws.state->k largest keys.
template <typename Source>
Status radix_passes(const Source& src, std::size_t n, const SparseWorkspace& ws, const std::uint32_t* d_skip,
                    cudaStream_t stream) {
  for (int pass = 0; pass < 3; ++pass) {
    radix_hist_kernel<Source><<<hist_grid(n), kThreads, 0, stream>>>(src, n, pass, ws.state, ws.hist, d_skip);
    GZ_CUDA_CHECK_LAUNCH();
    radix_find_kernel<<<1, kThreads, 0, stream>>>(pass, Source::kBits, ws.state, ws.hist, d_skip);
    GZ_CUDA_CHECK_LAUNCH();
  }
  return Status::Ok();
}

/// Count, scan and write passes of the compaction (see launch_select_compact).
template <typename Source>
Status compact(const Source& src, std::size_t n, const SparseWorkspace& ws, cudaStream_t stream) {
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  const unsigned grid = static_cast<unsigned>(chunks == 0 ? 1 : chunks);
  select_count_kernel<Source><<<grid, kThreads, 0, stream>>>(src, n, ws.state, ws.chunk_gt, ws.chunk_eq);
  GZ_CUDA_CHECK_LAUNCH();
  select_scan_kernel<<<1, kThreads, 0, stream>>>(chunks, ws.state, ws.chunk_gt, ws.chunk_eq, ws.chunk_eq_before,
                                                 ws.chunk_out);
  GZ_CUDA_CHECK_LAUNCH();
  select_write_kernel<Source><<<grid, kThreads, 0, stream>>>(src, n, ws.state, ws.chunk_eq_before, ws.chunk_out,
                                                             ws.idx);
  GZ_CUDA_CHECK_LAUNCH();
  return Status::Ok();
}

}  // namespace

Status launch_radix_select(const float* d_x, const float* d_residual, std::size_t n, const SparseWorkspace& ws,
                           const std::uint32_t* d_skip, cudaStream_t stream) {
  float* r = const_cast<float*>(d_residual);  // the radix passes only read it
  if (d_residual != nullptr) return radix_passes(AbsKeys<true>{d_x, r}, n, ws, d_skip, stream);
  return radix_passes(AbsKeys<false>{d_x, nullptr}, n, ws, d_skip, stream);
}

/// Host: the whole selection of the k (>= 1) largest |p| (p = g [+ e]) into ws.idx,
/// with the residual set to p when d_residual is given.
Status launch_topk_select(const float* d_grad, float* d_residual, std::size_t n, std::uint64_t k,
                          const SparseWorkspace& ws, cudaStream_t stream) {
  // ws.state / ws.hist were initialised by select_init_kernel (the caller's first launch).
  (void)k;  // ws.state->k holds it on the device
  GZ_RETURN_IF_ERROR(launch_radix_select(d_grad, d_residual, n, ws, nullptr, stream));
  return launch_select_compact(d_grad, d_residual, n, ws, stream);
}

/// Host: compaction of the positions chosen by ws.state (threshold T, take) into ws.idx,
/// ascending, count into ws.state->k; with EF the residual becomes p everywhere.
Status launch_select_compact(const float* d_grad, float* d_residual, std::size_t n, const SparseWorkspace& ws,
                             cudaStream_t stream) {
  if (d_residual != nullptr) return compact(AbsKeys<true>{d_grad, d_residual}, n, ws, stream);
  return compact(AbsKeys<false>{d_grad, nullptr}, n, ws, stream);
}

Status launch_philox_select(const SeedContext* d_ctx, const float* d_grad, float* d_residual, std::size_t n,
                            const SparseWorkspace& ws, cudaStream_t stream) {
  if (d_residual != nullptr) {
    const PhiloxKeys<true> src{d_grad, d_residual, d_ctx, SeedContext{}};
    GZ_RETURN_IF_ERROR(radix_passes(src, n, ws, nullptr, stream));
    return compact(src, n, ws, stream);
  }
  const PhiloxKeys<false> src{d_grad, nullptr, d_ctx, SeedContext{}};
  GZ_RETURN_IF_ERROR(radix_passes(src, n, ws, nullptr, stream));
  return compact(src, n, ws, stream);
}

// ---- sparse block writer ----------------------------------------------------------

__device__ __forceinline__ unsigned varint_len_d(std::uint64_t v) {
  unsigned len = 1;
  while (v >= 0x80u) {
    v >>= 7;
    ++len;
  }
  return len;
}

__device__ __forceinline__ std::uint64_t gap_at(const std::uint64_t* idx, std::uint64_t j) {
  return j == 0 ? idx[0] : idx[j] - idx[j - 1] - 1;
}

/// int8 values: max |v| over the kept values (non-negative float bits order like floats).
__global__ void __launch_bounds__(kThreads)
    kept_absmax_kernel(const float* x, const std::uint64_t* idx, SelectState* state) {
  const std::uint64_t k = state->k;
  std::uint32_t m = 0;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t j = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < k; j += stride) {
    const std::uint32_t a = abs_key_d(x[idx[j]]);
    m = a > m ? a : m;
  }
  m = __reduce_max_sync(0xFFFFFFFFu, m);
  if ((threadIdx.x & 31) == 0 && m != 0) atomicMax(&state->max_abs_bits, m);
}

/// Per chunk of kept pairs: bytes of their delta-varint indices.
__global__ void __launch_bounds__(kThreads)
    varint_count_kernel(const SelectState* state, const std::uint64_t* idx, std::uint64_t* vchunk) {
  using Reduce = cub::BlockReduce<std::uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage temp;
  const std::uint64_t k = state->k;
  const std::uint64_t base = static_cast<std::uint64_t>(blockIdx.x) * kChunk + static_cast<std::uint64_t>(threadIdx.x) * kItems;
  std::uint64_t bytes = 0;
  for (int j = 0; j < kItems; ++j) {
    if (base + j < k) bytes += varint_len_d(gap_at(idx, base + j));
  }
  const std::uint64_t total = Reduce(temp).Sum(bytes);
  if (threadIdx.x == 0) vchunk[blockIdx.x] = total;
}

/// One block: varint chunk offsets (in place), the u32-or-varint decision of
/// write_sparse_block (varint iff numel > 2^32 or strictly smaller than 4 bytes/index),
/// and the data-dependent header fields: flags, payload length, count, message length.
__global__ void __launch_bounds__(kThreads)
    sparse_header_kernel(std::uint64_t n, Values fmt, std::uint64_t* vchunk, std::size_t kchunks,
                         SelectState* state, std::uint8_t* d_out, MessagePrefix prefix,
                         std::uint64_t* d_message_bytes) {
  const std::uint64_t k = state->k;
  using Scan = cub::BlockScan<std::uint64_t, kThreads>;
  __shared__ typename Scan::TempStorage temp;
  const std::uint32_t prefix_bytes = prefix.bytes;
  write_prefix(d_out, prefix);
  __syncthreads();
  std::uint64_t carry = 0;
  for (std::size_t c0 = 0; c0 < kchunks; c0 += kThreads) {
    const std::size_t c = c0 + threadIdx.x;
    const std::uint64_t v = c < kchunks ? vchunk[c] : 0;
    std::uint64_t before = 0, total = 0;
    Scan(temp).ExclusiveSum(v, before, total);
    __syncthreads();
    if (c < kchunks) vchunk[c] = carry + before;
    carry += total;
  }
  if (threadIdx.x == 0) {
    const bool varint = n > kU32IndexLimit || carry < 4 * k;
    state->varint_bytes = carry;
    state->use_varint = varint ? 1u : 0u;
    const std::uint64_t vbytes = fmt == Values::kFp32 ? 4 * k : (fmt == Values::kFp16 ? 2 * k : 4 + k);
    const std::uint64_t block = 8 + vbytes + (varint ? carry : 4 * k);  // the sparse block
    d_out[7] = varint ? kFlagDeltaVarintIndices : 0;
    *reinterpret_cast<std::uint64_t*>(d_out + 16) = prefix.lead + block;  // payload length (8-aligned slot)
    std::uint8_t* count_dst = d_out + prefix_bytes;                       // sparse block start (after the lead)
    for (int b = 0; b < 8; ++b) count_dst[b] = static_cast<std::uint8_t>(k >> (8 * b));
    if (fmt == Values::kInt8) {
      // scale = M / 127 (IEEE division), as write_value_block; M = 0 when nothing is kept.
      const std::uint32_t su = __float_as_uint(__uint_as_float(state->max_abs_bits) / 127.0f);
      for (int b = 0; b < 4; ++b) count_dst[8 + b] = static_cast<std::uint8_t>(su >> (8 * b));
    }
    if (d_message_bytes != nullptr) *d_message_bytes = prefix_bytes + block;
  }
}

__device__ __forceinline__ void store_u32_le(std::uint8_t* dst, std::uint32_t v) {
  if (reinterpret_cast<std::uintptr_t>(dst) % 4 == 0) {
    *reinterpret_cast<std::uint32_t*>(dst) = v;
  } else {
    for (int b = 0; b < 4; ++b) dst[b] = static_cast<std::uint8_t>(v >> (8 * b));
  }
}

/// Per chunk of kept pairs: value block entries, indices (u32 or varint at the offsets of
/// sparse_header_kernel), and with EF the kept residuals e = p - C(p) (x holds p there).
/// With EF and state->nonfinite the residual still holds e (the write pass left it): no
/// element is updated and the message only carries the kNonFiniteInput status.
template <bool kEf>
__global__ void __launch_bounds__(kThreads)
    sparse_emit_kernel(const float* x, float* r, const std::uint64_t* idx, Values fmt, const SelectState* state,
                       const std::uint64_t* voff, std::uint8_t* d_out, std::uint32_t prefix_bytes) {
  const std::uint64_t k = state->k;
  using Scan = cub::BlockScan<std::uint32_t, kThreads>;
  __shared__ typename Scan::TempStorage temp;
  std::uint8_t* values = d_out + prefix_bytes + 8;
  const std::uint64_t vbytes = fmt == Values::kFp32 ? 4 * k : (fmt == Values::kFp16 ? 2 * k : 4 + k);
  std::uint8_t* indices = values + vbytes;
  // int8: scale = M / 127 (IEEE division), as write_value_block.
  const float scale = __uint_as_float(state->max_abs_bits) / 127.0f;
  const std::uint64_t base = static_cast<std::uint64_t>(blockIdx.x) * kChunk + static_cast<std::uint64_t>(threadIdx.x) * kItems;
  const bool keep_residual = kEf && state->nonfinite != 0;
  bool bad = keep_residual;
  std::uint32_t my_bytes = 0;
  for (int jj = 0; jj < kItems; ++jj) {
    const std::uint64_t j = base + jj;
    if (j >= k) break;
    const std::uint64_t i = idx[j];
    const float v = x[i];
    const float dec = write_kept_value(values, fmt, j, v, scale);
    if (abs_key_d(v) >= 0x7F800000u) {
      bad = true;  // NaN/Inf is always kept (largest keys)
    } else if constexpr (kEf) {
      if (!keep_residual) r[i] = v - dec;  // Memory "ef" update; the others hold p already
    }
    my_bytes += varint_len_d(gap_at(idx, j));
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) report_device_error(d_out, Errc::kNonFiniteInput);
  if (state->use_varint) {
    std::uint32_t pos = 0;
    Scan(temp).ExclusiveSum(my_bytes, pos);
    std::uint8_t* dst = indices + voff[blockIdx.x] + pos;
    for (int jj = 0; jj < kItems; ++jj) {
      const std::uint64_t j = base + jj;
      if (j >= k) break;
      std::uint64_t v = gap_at(idx, j);
      while (v >= 0x80u) {
        *dst++ = static_cast<std::uint8_t>(v | 0x80u);
        v >>= 7;
      }
      *dst++ = static_cast<std::uint8_t>(v);
    }
  } else {
    for (int jj = 0; jj < kItems; ++jj) {
      const std::uint64_t j = base + jj;
      if (j >= k) break;
      store_u32_le(indices + 4 * j, static_cast<std::uint32_t>(idx[j]));
    }
  }
}

/// Host: writes the sparse block of the positions in ws.idx (their count is
/// ws.state->k on the device, at most k_bound), values read from x = the residual
/// holding p when EF is fused, else the gradient.
Status launch_sparse_emit(const float* d_grad, float* d_residual, std::uint64_t n, std::uint64_t k_bound,
                                 Values fmt, const SparseWorkspace& ws, std::uint8_t* d_out, const MessagePrefix& prefix,
                                 std::uint64_t* d_message_bytes, cudaStream_t stream) {
  const float* x = d_residual != nullptr ? d_residual : d_grad;
  const std::size_t kchunks = (k_bound + kChunk - 1) / kChunk;
  const unsigned kgrid = static_cast<unsigned>(kchunks == 0 ? 1 : kchunks);
  if (fmt == Values::kInt8 && k_bound > 0) {
    kept_absmax_kernel<<<grid_for(k_bound, 4), kThreads, 0, stream>>>(x, ws.idx, ws.state);
    GZ_CUDA_CHECK_LAUNCH();
  }
  if (k_bound > 0) {
    varint_count_kernel<<<kgrid, kThreads, 0, stream>>>(ws.state, ws.idx, ws.vchunk);
    GZ_CUDA_CHECK_LAUNCH();
  }
  sparse_header_kernel<<<1, kThreads, 0, stream>>>(n, fmt, ws.vchunk, kchunks, ws.state, d_out, prefix,
                                                   d_message_bytes);
  GZ_CUDA_CHECK_LAUNCH();
  if (k_bound == 0) return Status::Ok();
  if (d_residual != nullptr) {
    sparse_emit_kernel<true><<<kgrid, kThreads, 0, stream>>>(x, d_residual, ws.idx, fmt, ws.state, ws.vchunk, d_out,
                                                             prefix.bytes);
  } else {
    sparse_emit_kernel<false><<<kgrid, kThreads, 0, stream>>>(x, nullptr, ws.idx, fmt, ws.state, ws.vchunk, d_out,
                                                              prefix.bytes);
  }
  GZ_CUDA_CHECK_LAUNCH();
  return Status::Ok();
}

// ---- sparse block reader ----------------------------------------------------------

struct ValueReader {
  const std::uint8_t* data;  // first value (int8: the scale)
  Values fmt;
  /// Reader of the value block of a sparse block at `payload` holding `count` pairs.
  __device__ static ValueReader at(const std::uint8_t* payload, Values fmt) { return {payload + 8, fmt}; }
  __device__ float operator()(std::uint64_t j) const {
    if (fmt == Values::kFp32) {
      std::uint32_t u = 0;
      for (int b = 0; b < 4; ++b) u |= static_cast<std::uint32_t>(data[4 * j + b]) << (8 * b);
      return __uint_as_float(u);
    }
    if (fmt == Values::kFp16) return fp16_to_float(static_cast<std::uint16_t>(data[2 * j] | data[2 * j + 1] << 8));
    std::uint32_t su = 0;
    for (int b = 0; b < 4; ++b) su |= static_cast<std::uint32_t>(data[b]) << (8 * b);
    return static_cast<float>(static_cast<std::int8_t>(data[4 + j])) * __uint_as_float(su);
  }
};

template <bool kAccumulate>
__device__ __forceinline__ void emit_at(float* out, std::uint64_t i, float v, float scale) {
  if constexpr (kAccumulate) {
    out[i] += scale * v;
  } else {
    out[i] = v;
  }
}

template <bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    sparse_apply_u32_kernel(const std::uint8_t* payload, Values fmt, std::uint64_t count, float* out, float scale,
                            const std::uint8_t* d_header) {
  // decode_own: the index format and the count are only known on the device; both
  // kernels are launched (sized for the bound) and the one that does not match the
  // header's flag returns at once.
  if (d_header != nullptr) {
    if ((d_header[7] & kFlagDeltaVarintIndices) != 0) return;
    count = *reinterpret_cast<const std::uint64_t*>(payload);  // payload is 8-aligned (40 + 8/24)
  }
  const ValueReader values = ValueReader::at(payload, fmt);
  const std::uint8_t* indices = payload + 8 + value_bytes(count, fmt);
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t j = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < count; j += stride) {
    std::uint32_t i = 0;
    for (int b = 0; b < 4; ++b) i |= static_cast<std::uint32_t>(indices[4 * j + b]) << (8 * b);
    emit_at<kAccumulate>(out, i, values(j), scale);
  }
}

/// A host-validated varint block: one warp per entry segment planned on the host
/// (plan_varint): 32 index bytes per step; lanes holding a final varint byte (bit 7
/// clear) assemble their gap from the up to 5 lanes before them, and a warp prefix sum
/// turns gaps into indices.
template <bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    sparse_apply_varint_kernel(const std::uint8_t* payload, Values fmt, std::uint64_t index_bytes,
                               std::uint64_t count, VarintEntries entries, float* out, float scale) {
  const ValueReader values = ValueReader::at(payload, fmt);
  const std::uint8_t* indices = payload + 8 + value_bytes(count, fmt);
  const unsigned warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const unsigned lane = threadIdx.x & 31;
  if (warp >= entries.count) return;  // whole warps exit together
  std::uint64_t pos = entries.pos[warp];
  std::uint64_t j = entries.ord[warp];
  std::uint64_t next = entries.next[warp];
  const std::uint64_t j_end = entries.ord[warp + 1];
  while (j < j_end) {
    const std::uint64_t p = pos + lane;
    const std::uint32_t byte = p < index_bytes ? indices[p] : 0x80u;
    const unsigned term = __ballot_sync(0xFFFFFFFFu, byte < 0x80u);
    // Start of this lane's varint: after the previous terminator (the window starts at a varint).
    const unsigned below = term & ((1u << lane) - 1u);
    const unsigned start = below == 0 ? 0u : 32u - __clz(below);
    const unsigned offset = lane - start;  // <= 4 inside a valid varint
    const std::uint64_t part = offset < 5 ? static_cast<std::uint64_t>(byte & 0x7Fu) << (7 * offset) : 0;
    std::uint64_t gap = part;
    for (int d = 1; d < 5; ++d) {
      const std::uint64_t other = __shfl_up_sync(0xFFFFFFFFu, part, d);
      if (static_cast<unsigned>(d) <= lane && lane - d >= start) gap |= other;
    }
    const bool is_term = (term >> lane) & 1u;
    // Only varints that end in this window and belong to this segment count.
    const unsigned ord_in_window = __popc(below);
    const bool mine = is_term && j + ord_in_window < j_end;
    std::uint64_t step = mine ? gap + 1 : 0;
    std::uint64_t incl = step;
    for (int d = 1; d < 32; d *= 2) {
      const std::uint64_t o = __shfl_up_sync(0xFFFFFFFFu, incl, d);
      if (static_cast<int>(lane) >= d) incl += o;
    }
    if (mine) emit_at<kAccumulate>(out, next + (incl - step) + gap, values(j + ord_in_window), scale);
    const std::uint64_t advanced = __shfl_sync(0xFFFFFFFFu, incl, 31);
    const unsigned used_mask = __ballot_sync(0xFFFFFFFFu, mine);
    const unsigned used = __popc(used_mask);
    const unsigned last = used_mask == 0 ? 0u : 31u - __clz(used_mask);
    next += advanced;
    j += used;
    pos += last + 1;
    if (used == 0) break;  // cannot happen on a validated block (varints are <= 5 bytes)
  }
}

struct MaxU64 {
  __device__ std::uint64_t operator()(std::uint64_t a, std::uint64_t b) const { return a > b ? a : b; }
};

/// decode_own of a varint block: one block walks the whole index block in windows of
/// kVarintWalkWindow bytes with block-wide scans (quant/varint_walk.h); count, format and
/// lengths are read from the device header. Indices >= n (never in a message this codec
/// wrote) are skipped rather than written out of bounds.
template <bool kAccumulate>
__global__ void __launch_bounds__(kVarintWalkThreads)
    sparse_apply_varint_block_kernel(const std::uint8_t* payload, Values fmt, std::uint64_t n, float* out,
                                     float scale, const std::uint8_t* d_header) {
  if ((d_header[7] & kFlagDeltaVarintIndices) == 0) return;
  using Scan = cub::BlockScan<std::uint64_t, kVarintWalkThreads>;
  using Reduce = cub::BlockReduce<std::uint64_t, kVarintWalkThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ typename Reduce::TempStorage reduce_storage;
  __shared__ std::uint64_t window_end;
  const std::uint64_t count = *reinterpret_cast<const std::uint64_t*>(payload);
  const ValueReader values = ValueReader::at(payload, fmt);
  const std::uint8_t* indices = payload + 8 + value_bytes(count, fmt);
  const std::uint64_t payload_bytes = *reinterpret_cast<const std::uint64_t*>(d_header + 16);
  const std::uint64_t payload_start = kHeaderBytes + *reinterpret_cast<const std::uint32_t*>(d_header + 24);
  const std::uint64_t index_bytes = payload_bytes - static_cast<std::uint64_t>(indices - d_header - payload_start);
  std::uint64_t pos = 0, j = 0, next = 0;
  while (j < count && pos < index_bytes) {
    const std::uint64_t b0 = pos + std::uint64_t{threadIdx.x} * kVarintWalkBytesPerThread;
    const std::uint64_t b1 = b0 + kVarintWalkBytesPerThread < index_bytes ? b0 + kVarintWalkBytesPerThread : index_bytes;
    const VarintShare share = b0 < index_bytes ? varint_share(indices, pos, b0, b1) : VarintShare{};
    std::uint64_t j_ex = 0, j_total = 0, s_ex = 0, s_total = 0;
    Scan(scan_storage).ExclusiveSum(share.count, j_ex, j_total);
    __syncthreads();
    Scan(scan_storage).ExclusiveSum(share.steps, s_ex, s_total);
    const std::uint64_t last = Reduce(reduce_storage).Reduce(share.last_end, MaxU64());
    if (threadIdx.x == 0) window_end = last;
    if (b0 < index_bytes) {
      varint_share_emit(indices, pos, b0, b1, j + j_ex, next + s_ex, count, [&](std::uint64_t jj, std::uint64_t i) {
        if (i < n) emit_at<kAccumulate>(out, i, values(jj), scale);
      });
    }
    __syncthreads();
    if (j_total == 0) break;  // no varint ends in a whole window: not a valid block (uniform)
    j += j_total;
    next += s_total;
    pos = window_end;
    __syncthreads();  // window_end and the scan storage are rewritten in the next window
  }
}

/// Host: zero-fills (decode) and scatters the block at d_payload into d_out[0, n).
Status launch_sparse_decode(const SparseDecodePlan& plan, const std::uint8_t* d_msg,
                                   const std::uint8_t* d_payload, std::size_t n, float* d_out, float scale,
                                   bool accumulate, cudaStream_t stream) {
  if (!accumulate && n > 0) GZ_CUDA_CHECK(cudaMemsetAsync(d_out, 0, 4 * n, stream));
  if (plan.count == 0) return Status::Ok();
  const std::uint8_t* d_header = plan.validated ? nullptr : d_msg;
  if (!plan.validated || !plan.varint) {
    const unsigned blocks = grid_for(plan.count, 4);
    if (accumulate) {
      sparse_apply_u32_kernel<true><<<blocks, kThreads, 0, stream>>>(d_payload, plan.fmt, plan.count, d_out, scale,
                                                                     d_header);
    } else {
      sparse_apply_u32_kernel<false><<<blocks, kThreads, 0, stream>>>(d_payload, plan.fmt, plan.count, d_out, scale,
                                                                      d_header);
    }
    GZ_CUDA_CHECK_LAUNCH();
  }
  if (!plan.validated) {
    // decode_own: the host has not seen the index block; one block walks it with
    // block-wide scans (4096 bytes per step), returning at once for a u32 block.
    if (accumulate) {
      sparse_apply_varint_block_kernel<true><<<1, kVarintWalkThreads, 0, stream>>>(d_payload, plan.fmt, n, d_out,
                                                                                   scale, d_msg);
    } else {
      sparse_apply_varint_block_kernel<false><<<1, kVarintWalkThreads, 0, stream>>>(d_payload, plan.fmt, n, d_out,
                                                                                    scale, d_msg);
    }
    GZ_CUDA_CHECK_LAUNCH();
  } else if (plan.varint) {
    const VarintEntries& entries = plan.entries;
    const unsigned blocks = (entries.count * 32 + kThreads - 1) / kThreads;
    if (accumulate) {
      sparse_apply_varint_kernel<true><<<blocks, kThreads, 0, stream>>>(d_payload, plan.fmt, plan.index_bytes,
                                                                        plan.count, entries, d_out, scale);
    } else {
      sparse_apply_varint_kernel<false><<<blocks, kThreads, 0, stream>>>(d_payload, plan.fmt, plan.index_bytes,
                                                                         plan.count, entries, d_out, scale);
    }
    GZ_CUDA_CHECK_LAUNCH();
  }
  return Status::Ok();
}

Status launch_kept_absmax(const float* d_x, const SparseWorkspace& ws, std::uint64_t k_bound, cudaStream_t stream) {
  if (k_bound == 0) return Status::Ok();
  kept_absmax_kernel<<<grid_for(k_bound, 4), kThreads, 0, stream>>>(d_x, ws.idx, ws.state);
  GZ_CUDA_CHECK_LAUNCH();
  return Status::Ok();
}

Status launch_select_init(const SparseWorkspace& ws, std::uint64_t k, cudaStream_t stream) {
  select_init_kernel<<<1, kThreads, 0, stream>>>(ws.state, ws.hist, k);
  GZ_CUDA_CHECK_LAUNCH();
  return Status::Ok();
}

Status launch_threshold_init(const SparseWorkspace& ws, std::uint32_t tau_key, cudaStream_t stream) {
  select_threshold_init_kernel<<<1, 1, 0, stream>>>(ws.state, tau_key);
  GZ_CUDA_CHECK_LAUNCH();
  return Status::Ok();
}

}  // namespace gradzip::quant::cuda::sparse
