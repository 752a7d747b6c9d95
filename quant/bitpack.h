// Fixed-width bit fields on the wire (used by qsgd, terngrad, sign, scaled-sign, onebit,
// natural). Header-only, host and device.
//
// Bit order (LSB-first, little-endian), the same for every field width kBits in 1..8:
//   field k of a stream occupies stream bits [k*kBits, (k+1)*kBits);
//   stream bit p is bit (p % 8) of byte p / 8 (bit 0 = least significant);
//   the field's least significant bit is its lowest stream bit.
// Equivalently: 8 consecutive fields k = 8g .. 8g+7 form the little-endian integer
//   w = sum_j field[8g + j] << (j * kBits)
// stored in the kBits bytes [g*kBits, (g+1)*kBits). A stream of `count` fields takes
// ceil(count * kBits / 8) bytes; the unused high bits of its last byte are written as 0
// and ignored when read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace gradzip::quant {

/// Bytes taken by `count` fields of `bits` bits: ceil(count * bits / 8).
constexpr std::size_t packed_bytes(std::size_t count, unsigned bits) { return (count * bits + 7) / 8; }

/// Packs codes[0, count) (each already < 2^kBits) as fields 0..count-1 of a stream that
/// starts at dst (dst is the byte of field 0; callers pass stream + first/8*kBits with
/// `first` a multiple of 8). Writes exactly packed_bytes(count, kBits) bytes.
template <int kBits>
inline void pack_fields(const std::uint8_t* codes, std::size_t count, std::uint8_t* dst) {
  static_assert(kBits >= 1 && kBits <= 8, "field width 1..8");
  if constexpr (kBits == 8) {
    if (count != 0) std::memcpy(dst, codes, count);
    return;
  }
  std::size_t g = 0;
  for (; g + 8 <= count; g += 8) {
    std::uint64_t w = 0;
    for (int j = 0; j < 8; ++j) w |= static_cast<std::uint64_t>(codes[g + j]) << (j * kBits);
    std::memcpy(dst + g / 8 * kBits, &w, kBits);
  }
  if (g < count) {
    std::uint64_t w = 0;
    for (std::size_t j = 0; g + j < count; ++j) w |= static_cast<std::uint64_t>(codes[g + j]) << (j * kBits);
    std::memcpy(dst + g / 8 * kBits, &w, packed_bytes(count - g, kBits));
  }
}

/// Inverse of pack_fields: reads packed_bytes(count, kBits) bytes from src and writes
/// codes[0, count). Reads nothing beyond those bytes.
template <int kBits>
inline void unpack_fields(const std::uint8_t* src, std::size_t count, std::uint8_t* codes) {
  static_assert(kBits >= 1 && kBits <= 8, "field width 1..8");
  constexpr std::uint64_t kMask = (std::uint64_t{1} << kBits) - 1;
  if constexpr (kBits == 8) {
    if (count != 0) std::memcpy(codes, src, count);
    return;
  }
  std::size_t g = 0;
  for (; g + 8 <= count; g += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, src + g / 8 * kBits, kBits);
    for (int j = 0; j < 8; ++j) codes[g + j] = static_cast<std::uint8_t>((w >> (j * kBits)) & kMask);
  }
  if (g < count) {
    std::uint64_t w = 0;
    std::memcpy(&w, src + g / 8 * kBits, packed_bytes(count - g, kBits));
    for (std::size_t j = 0; g + j < count; ++j) {
      codes[g + j] = static_cast<std::uint8_t>((w >> (j * kBits)) & kMask);
    }
  }
}

}  // namespace gradzip::quant
