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
//
// Widths 1, 2 and 4 gather/spread a group of 8 fields with shifts and masks on a 64-bit
// word whose byte j holds field j; width 1 uses the multiply 0x0102040810204080, which
// moves byte j's bit to bit 56 + j; all other partial products land at distinct bits
// below 56 or above 63, so no carries disturb the top byte.
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
    std::uint64_t w;
    if constexpr (kBits == 1 || kBits == 2 || kBits == 4) {
      // Byte j of x holds field j; gather the fields with shifts and masks (no loop).
      std::uint64_t x;
      std::memcpy(&x, codes + g, 8);
      if constexpr (kBits == 1) {
        w = (x * 0x0102040810204080ull) >> 56;  // bit j <- byte j (no carries: see header)
      } else if constexpr (kBits == 2) {
        x = (x | (x >> 6)) & 0x000F000F000F000Full;
        x = (x | (x >> 12)) & 0x000000FF000000FFull;
        w = (x | (x >> 24)) & 0xFFFFull;
      } else {
        x = (x | (x >> 4)) & 0x00FF00FF00FF00FFull;
        x = (x | (x >> 8)) & 0x0000FFFF0000FFFFull;
        w = (x | (x >> 16)) & 0xFFFFFFFFull;
      }
    } else {
      w = 0;
      for (int j = 0; j < 8; ++j) w |= static_cast<std::uint64_t>(codes[g + j]) << (j * kBits);
    }
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
    if constexpr (kBits == 1 || kBits == 2 || kBits == 4) {
      // Spread the 8 fields to byte j = field j with shifts and masks (no loop).
      std::uint64_t x;
      if constexpr (kBits == 1) {
        x = (w * 0x0101010101010101ull) & 0x8040201008040201ull;  // byte j keeps bit j
        x = ((x + 0x7F7F7F7F7F7F7F7Full) >> 7) & 0x0101010101010101ull;
      } else if constexpr (kBits == 2) {
        x = (w | (w << 24)) & 0x000000FF000000FFull;
        x = (x | (x << 12)) & 0x000F000F000F000Full;
        x = (x | (x << 6)) & 0x0303030303030303ull;
      } else {
        x = (w | (w << 16)) & 0x0000FFFF0000FFFFull;
        x = (x | (x << 8)) & 0x00FF00FF00FF00FFull;
        x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0Full;
      }
      std::memcpy(codes + g, &x, 8);
    } else {
      for (int j = 0; j < 8; ++j) codes[g + j] = static_cast<std::uint8_t>((w >> (j * kBits)) & kMask);
    }
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
