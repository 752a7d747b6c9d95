// The fused error-feedback tile kernel (Codec::ef_tile, quant/ef_tile.h) of the bucketed
// codecs onebit, qsgd and terngrad, written once: per bucket of the tile, the compensated
// values p = (g + e) * s into the scratch with their largest |p| (the verdict), then the
// codec's scales from p (its encoder's statistic); then per block of kCodeBlock codes one
// loop that quantizes p with the block's random words, decodes the code as the decoder
// does (fp32 operations of its decode) and writes the next residual p / s - decoded, and
// the codes packed. The bytes are those of bucketed::encode on p (same scales, same codes,
// same random word for element i: word of message index ctx.first_element + i), so a
// tile's payload is the tiling contract's (quant/codec.h).
//
// Memory ef's scale s (quant/memory/ef.cc): at s == 1 (kScaled false) p = g + e and the
// residual is p - d; otherwise p = (g + e) * s and the residual p / s - d, the fp32
// operations of EfMemory::compensate and ::update.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "quant/codecs/bucketed.h"
#include "quant/cpu.h"
#include "quant/ef_tile.h"

namespace gradzip::quant::bucketed {

/// The compensated value of memory ef with scale s: (g + e) * s, or g + e at scale 1.
template <bool kScaled>
__attribute__((always_inline)) inline float ef_value(float g, float e, float s) {
  if constexpr (kScaled) return (g + e) * s;
  (void)s;
  return g + e;
}
/// The next residual of memory ef: p / s - d, or p - d at scale 1.
template <bool kScaled>
__attribute__((always_inline)) inline float ef_next(float p, float s, float d) {
  if constexpr (kScaled) return p / s - d;
  (void)s;
  return p - d;
}

/// p[j] = ef_value(g[j], e[j], s) for j < cnt; returns the largest |p[j]| bit pattern as
/// int32 (compensate_max_bits of quant/ef_tile.h with memory ef's scale).
template <bool kScaled>
__attribute__((always_inline)) inline std::int32_t compensate_scaled_max_bits(const float* __restrict g,
                                                                              const float* __restrict e,
                                                                              std::size_t cnt, float s,
                                                                              float* __restrict p) {
  std::int32_t mx = 0;
  for (std::size_t j = 0; j < cnt; ++j) {
    const float v = ef_value<kScaled>(g[j], e[j], s);
    p[j] = v;
    const auto u = static_cast<std::int32_t>(fbits(v) & 0x7FFFFFFFu);
    mx = u > mx ? u : mx;
  }
  return mx;
}

/// with_simd (quant/cpu.h) whose AVX2 copy also inlines every call of fn (flatten): the
/// codecs' statistics (quant/reduce.h's canonical sums) are too large for GCC to inline
/// on its own, and their out-of-line baseline copy would run with SSE2 only. Same bits:
/// the sums' order of operations is fixed.
template <typename Fn>
inline auto with_simd_flat(Fn&& fn) {
#if defined(GZ_HAVE_AVX2_CLONES)
  if (cpu_has_avx2()) return [&]() __attribute__((target("avx2"), flatten)) { return fn(); }();
#endif
  return fn();
}

/// One element's code and the value the decoder gives it.
struct Coded {
  std::uint32_t code;  ///< the field, < 2^kBits
  float value;         ///< decode of the field (the decoder's fp32 operations)
};

/// Elements per prefetch step of ef_segment: one 64-byte line of g and one of e.
constexpr std::size_t kPrefetchStep = 16;

/// One segment of the kernel: c[j] and next[j] = p[j] / s - decoded from code(p[j], r[j]).
/// Meanwhile it asks for the lines of g and e at pg, pe (the next tile's elements at the
/// same offsets) into L2, one of each per 16 elements, so the memory reads of the next
/// tile overlap this computation (prefetches never fault: past the last tile they are
/// dropped). Restrict parameters, not restrict locals (which GCC ignores: the loop would
/// be versioned for aliasing at run time).
template <bool kRandom, bool kScaled, typename Code>
__attribute__((always_inline)) inline void ef_segment(const float* __restrict p, std::size_t m, float s,
                                                      const std::uint32_t* __restrict r, Code code,
                                                      std::uint8_t* __restrict c, float* __restrict next,
                                                      const float* pg, const float* pe) {
  for (std::size_t j0 = 0; j0 < m; j0 += 4 * kPrefetchStep) {
    const std::size_t j1 = std::min(m, j0 + 4 * kPrefetchStep);
    for (std::size_t k = j0; k < j1; k += kPrefetchStep) {
      __builtin_prefetch(pg + k, 0, 2);
      __builtin_prefetch(pe + k, 0, 2);
    }
    for (std::size_t j = j0; j < j1; ++j) {
      const Coded q = code(p[j], kRandom ? r[j] : 0u);
      c[j] = static_cast<std::uint8_t>(q.code);
      next[j] = ef_next<kScaled>(p[j], s, q.value);
    }
  }
}

/// The kernel at scale 1 (kScaled false) or t.scale. `stat(const float* p, size_t m,
/// int32_t max_bits, float* scales)` writes the kScales scales of one bucket of m
/// compensated values whose largest |p| has bits max_bits (< kSafeMaxAbsBits: the
/// encoder's statistic cannot fail); `coder(const float* scales)` returns, for a segment
/// of a bucket with those scales, a function `(float p, uint32_t rnd) -> Coded` (rnd: the
/// element's random word when kRandom, else 0). All are always_inline lambdas run inside
/// the with_simd copies (quant/cpu.h): integer ops and IEEE fp32 +, -, *, / only.
template <int kBits, bool kRandom, int kScales, bool kScaled, typename Stat, typename Coder>
AbsClass ef_tile_at(const EfTile& t, const SeedContext& ctx, std::size_t bucket, Stat stat, Coder coder) {
  const std::size_t nb = num_buckets(t.cnt, bucket);
  const float scale = t.scale;
  std::int32_t mx = 0;
  for (std::size_t b = 0; b < nb; ++b) {
    const std::size_t k = b * bucket;
    const std::size_t len = std::min(bucket, t.cnt - k);
    const float* gb = t.g + k;
    const float* eb = t.e + k;
    float* pb = t.p + k;
    float sc[kScales] = {};
    const std::int32_t bm = with_simd_flat([&]() __attribute__((always_inline)) {
      const std::int32_t r = compensate_scaled_max_bits<kScaled>(gb, eb, len, scale, pb);
      if (r < kSafeMaxAbsBits) stat(static_cast<const float*>(pb), len, r, static_cast<float*>(sc));
      return r;
    });
    mx = bm > mx ? bm : mx;
    if (bm >= kSafeMaxAbsBits) return class_of_max_bits(mx);  // the tile stops: outputs unused
    for (int s = 0; s < kScales; ++s) store_le<float>(t.payload + 4 * (b * kScales + s), sc[s]);
  }
  std::uint8_t codes[kCodeBlock];
  std::uint32_t rnd[kRandom ? kCodeBlock : 1];
  std::uint8_t* code_dst = t.payload + 4 * kScales * nb;
  for (std::size_t i0 = 0; i0 < t.cnt; i0 += kCodeBlock) {
    const std::size_t i1 = std::min(t.cnt, i0 + kCodeBlock);
    // ctx.first_element is the tile's start: message indices first_element + i0 ...
    if constexpr (kRandom) rounding_words(ctx, i0 / 4, (i1 - i0 + 3) / 4, rnd);
    for (std::size_t s0 = i0; s0 < i1;) {
      const std::size_t b = s0 / bucket;
      const std::size_t s1 = std::min(i1, (b + 1) * bucket);
      float sc[kScales] = {};
      for (int s = 0; s < kScales; ++s) sc[s] = load_le<float>(t.payload + 4 * (b * kScales + s));
      const float* ps = t.p + s0;
      float* nexts = t.next + s0;
      std::uint8_t* cs = codes + (s0 - i0);
      const std::uint32_t* rs = rnd + (kRandom ? s0 - i0 : 0);
      const std::size_t len = s1 - s0;
      const float* pgs = t.g + t.cnt + s0;  // the next tile's g and e (tiles are contiguous)
      const float* pes = t.e + t.cnt + s0;
      with_simd([&]() __attribute__((always_inline)) {
        ef_segment<kRandom, kScaled>(ps, len, scale, rs, coder(static_cast<const float*>(sc)), cs, nexts, pgs, pes);
      });
      s0 = s1;
    }
    pack_fields<kBits>(codes, i1 - i0, code_dst + i0 / 8 * kBits);
  }
  return class_of_max_bits(mx);
}

/// ef_tile_at at the tile's scale: scale 1 without the scale's multiply and divide.
template <int kBits, bool kRandom, int kScales, typename Stat, typename Coder>
AbsClass ef_tile(const EfTile& t, const SeedContext& ctx, std::size_t bucket, Stat stat, Coder coder) {
  if (t.scale == 1.0f) return ef_tile_at<kBits, kRandom, kScales, false>(t, ctx, bucket, stat, coder);
  return ef_tile_at<kBits, kRandom, kScales, true>(t, ctx, bucket, stat, coder);
}

}  // namespace gradzip::quant::bucketed
