// The fused error-feedback tile kernels' shared parts (quant/feedback.h, step 2): the
// verdict on compensated values (AbsClass) and the tile a codec's kernel works on.
//
// A codec may implement Codec::ef_tile: for memory "ef" at scale 1 (p = g + e, next state
// e' = p - decode(encode(p))), and at scale s when Codec::ef_tile_scales() (p = (g + e) * s,
// e' = p / s - decode(encode(p))), it computes one tile's compensated values, their verdict,
// the tile's payload and the next state in one or two loops over L1-resident data,
// instead of the driver's generic compensate / encode / decode / update passes. Its
// outputs must be bit-identical to those passes (tests compare them for every codec with
// a kernel, on the AVX2 and the portable copies).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace gradzip::quant {

/// A verdict on a range of compensated values, ordered: the largest element's.
enum class AbsClass : std::uint32_t {
  kSmall = 0,      ///< every |p| < kSafeMaxAbs (2^50, quant/feedback.h)
  kLarge = 1,      ///< some finite |p| >= kSafeMaxAbs: the scratch path
  kNonFinite = 2,  ///< some NaN or Inf: the bucket is refused
};

/// Bits of |2^50| (kSafeMaxAbs) and of +Inf.
constexpr std::int32_t kSafeMaxAbsBits = 0x58800000;
constexpr std::int32_t kInfBits = 0x7F800000;

/// AbsClass of value(0 .. cnt-1). Compares IEEE bit patterns of |v| as signed integers
/// and ORs flags, which vectorizes on baseline SSE2 (an unsigned max would not).
template <typename Value>
__attribute__((always_inline)) inline AbsClass classify_values(std::size_t cnt, Value value) {
  std::int32_t large = 0, nonfinite = 0;
  for (std::size_t j = 0; j < cnt; ++j) {
    const float v = value(j);
    std::int32_t u;
    std::memcpy(&u, &v, 4);
    u &= 0x7FFFFFFF;
    large |= u >= kSafeMaxAbsBits ? 1 : 0;
    nonfinite |= u >= kInfBits ? 1 : 0;
  }
  return nonfinite ? AbsClass::kNonFinite : (large ? AbsClass::kLarge : AbsClass::kSmall);
}

/// The AbsClass of values whose largest |v| bit pattern is mx (what classify_values gives
/// for them: NaN bit patterns exceed Inf's).
inline AbsClass class_of_max_bits(std::int32_t mx) {
  return mx >= kInfBits ? AbsClass::kNonFinite : (mx >= kSafeMaxAbsBits ? AbsClass::kLarge : AbsClass::kSmall);
}

/// g + e (memory ef's compensate at scale 1), raising *mx to its |.| bit pattern: the
/// per-element step of every kernel. Inlined; *mx should be a local of the loop.
__attribute__((always_inline)) inline float compensate_one(float g, float e, std::int32_t* mx) {
  const float v = g + e;
  std::int32_t u;
  std::memcpy(&u, &v, 4);
  u &= 0x7FFFFFFF;
  *mx = u > *mx ? u : *mx;
  return v;
}

/// p[j] = g[j] + e[j] for j < cnt (memory ef's compensate at scale 1); returns the
/// largest |p[j]| bit pattern as int32 (0 when cnt == 0). Inlined into the kernels'
/// AVX2 and portable copies.
__attribute__((always_inline)) inline std::int32_t compensate_max_bits(const float* __restrict g,
                                                                       const float* __restrict e, std::size_t cnt,
                                                                       float* __restrict p) {
  std::int32_t mx = 0;
  for (std::size_t j = 0; j < cnt; ++j) p[j] = compensate_one(g[j], e[j], &mx);
  return mx;
}

/// One tile of Codec::ef_tile: elements [t0, t0 + cnt) of a bucket, t0 a multiple of the
/// codec's tile_alignment() (the message index is the SeedContext's first_element). With
/// scale s == 1, p = g + e and next = p - d (below).
struct EfTile {
  const float* g;          ///< gradient, cnt floats
  const float* e;          ///< residual (the state), cnt floats
  std::size_t cnt;         ///< elements in the tile (> 0)
  std::uint8_t* payload;   ///< the tile's payload: region 0 then region 1 (Codec's tiling contract)
  float* next;             ///< the next residual, cnt floats: p - decode(payload)
  float* p;                ///< scratch of cnt floats (may receive the compensated values)
  /// Memory ef's scale s: p = (g + e) * s and next = p / s - decode(payload) when s != 1
  /// (only for a codec whose ef_tile_scales(); quant/memory/ef.cc).
  float scale = 1.0f;
};

}  // namespace gradzip::quant
