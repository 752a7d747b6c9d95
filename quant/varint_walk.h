// The block-wide walk of a delta-varint index block (format: quant/sparse.h) that the CUDA
// decoder runs when the host has not seen the message (decode_own, quant/cuda_sparse.cu):
// one block of kVarintWalkThreads threads consumes the block in windows of
// kVarintWalkWindow bytes instead of one warp consuming 32 bytes per step. The pieces
// below are shared by the kernel and by a CPU emulation of its loop
// (varint_walk_emulate), which the CPU tests check against the encoder's indices.
//
// One window, starting at byte `pos` (always the first byte of a varint):
//   * thread t owns bytes [pos + 16 t, pos + 16 t + 16) (clipped to the block);
//   * every byte < 0x80 ends a varint; its gap is assembled from the up to 4 bytes before
//     it that have bit 7 set (never before pos): varint_gap_ending_at;
//   * each thread counts its terminators and sums their (gap + 1) (varint_share); an
//     exclusive block scan of both gives the thread's first ordinal j and the index base;
//   * the pair with ordinal j has index next_j + gap_j, where next_j = sum over earlier
//     pairs of (gap + 1) (idx_0 = g_0, idx_j = idx_{j-1} + g_j + 1): varint_share_emit;
//   * the next window starts one past the window's last terminator, so a varint cut by the
//     window's end is read whole by the next window. Varints have at most 5 bytes, so a
//     window of a valid block always ends at least one varint.
// Integer sums only: the result does not depend on the order of the scan.
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/hd.h"

namespace gradzip::quant {

constexpr unsigned kVarintWalkThreads = 256;
constexpr unsigned kVarintWalkBytesPerThread = 16;
constexpr std::uint64_t kVarintWalkWindow = std::uint64_t{kVarintWalkThreads} * kVarintWalkBytesPerThread;

/// Gap value of the varint whose last byte is idx[t] (idx[t] < 0x80), whose first byte is
/// after the previous terminator, at most 4 bytes before t and not before `start`.
GZ_HD std::uint64_t varint_gap_ending_at(const std::uint8_t* idx, std::uint64_t start, std::uint64_t t) {
  std::uint64_t b = t;
  while (b > start && t - b < 4 && idx[b - 1] >= 0x80u) --b;
  std::uint64_t gap = 0;
  for (std::uint64_t q = b; q <= t; ++q) gap |= static_cast<std::uint64_t>(idx[q] & 0x7Fu) << (7 * (q - b));
  return gap;
}

/// One thread's share of a window: the varints ending in bytes [b0, b1).
struct VarintShare {
  std::uint64_t count = 0;     ///< terminators in the share
  std::uint64_t steps = 0;     ///< sum of (gap + 1) over them
  std::uint64_t last_end = 0;  ///< one past the share's last terminator (0: none)
};

/// The share of bytes [b0, b1) of a window that starts at `pos`.
GZ_HD VarintShare varint_share(const std::uint8_t* idx, std::uint64_t pos, std::uint64_t b0, std::uint64_t b1) {
  VarintShare s;
  for (std::uint64_t t = b0; t < b1; ++t) {
    if (idx[t] >= 0x80u) continue;
    ++s.count;
    s.steps += varint_gap_ending_at(idx, pos, t) + 1;
    s.last_end = t + 1;
  }
  return s;
}

/// Calls emit(j, index) for the varints ending in [b0, b1), in order, where the first has
/// ordinal j0 and index base next0 (the exclusive scans of the shares before it); only
/// ordinals below j_end are emitted.
template <typename Emit>
GZ_HD void varint_share_emit(const std::uint8_t* idx, std::uint64_t pos, std::uint64_t b0, std::uint64_t b1,
                             std::uint64_t j0, std::uint64_t next0, std::uint64_t j_end, Emit emit) {
  std::uint64_t j = j0, next = next0;
  for (std::uint64_t t = b0; t < b1 && j < j_end; ++t) {
    if (idx[t] >= 0x80u) continue;
    const std::uint64_t gap = varint_gap_ending_at(idx, pos, t);
    emit(j, next + gap);
    next += gap + 1;
    ++j;
  }
}

/// The kernel's loop on the CPU, the block scan done serially over the threads:
/// emit(j, index) for the first `count` varints of the `bytes`-byte block at idx.
/// Returns the pairs emitted (count for a valid block).
template <typename Emit>
inline std::uint64_t varint_walk_emulate(const std::uint8_t* idx, std::uint64_t bytes, std::uint64_t count,
                                         Emit emit) {
  std::uint64_t pos = 0, j = 0, next = 0;
  while (j < count && pos < bytes) {
    std::uint64_t j_ex = 0, s_ex = 0, last = 0;
    for (unsigned t = 0; t < kVarintWalkThreads; ++t) {
      const std::uint64_t b0 = pos + std::uint64_t{t} * kVarintWalkBytesPerThread;
      const std::uint64_t b1 = b0 + kVarintWalkBytesPerThread < bytes ? b0 + kVarintWalkBytesPerThread : bytes;
      if (b0 >= bytes) break;
      const VarintShare s = varint_share(idx, pos, b0, b1);
      varint_share_emit(idx, pos, b0, b1, j + j_ex, next + s_ex, count, emit);
      j_ex += s.count;
      s_ex += s.steps;
      last = s.last_end > last ? s.last_end : last;
    }
    if (j_ex == 0) break;  // no varint ends in a whole window: not a valid block
    j += j_ex;
    next += s_ex;
    pos = last;
  }
  return j < count ? j : count;
}

}  // namespace gradzip::quant
