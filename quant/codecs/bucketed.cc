// Batched Philox4x32-10 for the rounding stream of the stochastic dense codecs (qsgd,
// terngrad, natural). The numbers are those of random_block() in quant/philox.h, bit for
// bit; only the evaluation order differs: several independent counters at once (16 with
// AVX-512F, 8 with AVX2 or in portable code), so the CPU reference keeps up with memory
// bandwidth. (The CUDA twins call random_block per
// thread.) Philox: Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3".
#include "quant/codecs/bucketed.h"

#include "quant/cpu.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GZ_HAVE_AVX2_PHILOX 1
#include <immintrin.h>
#endif

namespace gradzip::quant::bucketed {
namespace {

std::uint32_t stream_word(const SeedContext& ctx) {
  return (static_cast<std::uint32_t>(RandomStream::kRounding) << 24) | (ctx.bucket & 0x00FFFFFFu);
}

void scalar_tail(const SeedContext& ctx, std::uint64_t first_block, std::size_t b, std::size_t nblocks,
                 std::uint32_t* out) {
  for (; b < nblocks; ++b) {
    const Philox4x32 r = random_block(ctx, RandomStream::kRounding, first_block + b);
    for (int w = 0; w < 4; ++w) out[4 * b + static_cast<std::size_t>(w)] = r.v[w];
  }
}

/// Portable: 8 counters in structure-of-arrays form (the compiler may vectorize it).
void rounding_words_portable(const SeedContext& ctx, std::uint64_t first_block, std::size_t nblocks,
                             std::uint32_t* out) {
  constexpr int kLanes = 8;
  const std::uint32_t c1v = stream_word(ctx);
  const auto c2v = static_cast<std::uint32_t>(ctx.step);
  const std::uint32_t c3v = ctx.worker;
  std::size_t b = 0;
  for (; b + kLanes <= nblocks; b += kLanes) {
    std::uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      c0[l] = static_cast<std::uint32_t>(first_block + b + static_cast<std::size_t>(l));
      c1[l] = c1v;
      c2[l] = c2v;
      c3[l] = c3v;
    }
    auto k0 = static_cast<std::uint32_t>(ctx.seed);
    auto k1 = static_cast<std::uint32_t>(ctx.seed >> 32);
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 += detail::kPhiloxW0;
        k1 += detail::kPhiloxW1;
      }
      for (int l = 0; l < kLanes; ++l) {
        const std::uint64_t p0 = static_cast<std::uint64_t>(detail::kPhiloxM0) * c0[l];
        const std::uint64_t p1 = static_cast<std::uint64_t>(detail::kPhiloxM1) * c2[l];
        const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
        const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
        c1[l] = static_cast<std::uint32_t>(p1);
        c3[l] = static_cast<std::uint32_t>(p0);
        c0[l] = n0;
        c2[l] = n2;
      }
    }
    for (int l = 0; l < kLanes; ++l) {
      std::uint32_t* o = out + 4 * (b + static_cast<std::size_t>(l));
      o[0] = c0[l];
      o[1] = c1[l];
      o[2] = c2[l];
      o[3] = c3[l];
    }
  }
  scalar_tail(ctx, first_block, b, nblocks, out);
}

#if defined(GZ_HAVE_AVX2_PHILOX)
/// Writes the blocks of 4 counters held in 64-bit lanes (only the low 32 bits count):
/// dst[4 l + w] = low32(x_w[l]).
__attribute__((target("avx2"))) inline void store_blocks(std::uint32_t* dst, __m256i x0, __m256i x1, __m256i x2,
                                                         __m256i x3) {
  const __m256i lo32 = _mm256_set1_epi64x(0xFFFFFFFFll);
  const __m256i x01 = _mm256_or_si256(_mm256_and_si256(x0, lo32), _mm256_slli_epi64(x1, 32));
  const __m256i x23 = _mm256_or_si256(_mm256_and_si256(x2, lo32), _mm256_slli_epi64(x3, 32));
  const __m256i lo = _mm256_unpacklo_epi64(x01, x23);  // blocks 0, 2
  const __m256i hi = _mm256_unpackhi_epi64(x01, x23);  // blocks 1, 3
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_permute2x128_si256(lo, hi, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
}

/// AVX2: each 32-bit Philox word lives in the low half of a 64-bit lane, so
/// _mm256_mul_epu32 yields the full 32x32->64 products with no shuffles (the high halves
/// of the lanes carry garbage that is never read). 8 counters per iteration.
__attribute__((target("avx2"))) void rounding_words_avx2(const SeedContext& ctx, std::uint64_t first_block,
                                                         std::size_t nblocks, std::uint32_t* out) {
  const __m256i m0 = _mm256_set1_epi64x(static_cast<long long>(detail::kPhiloxM0));
  const __m256i m1 = _mm256_set1_epi64x(static_cast<long long>(detail::kPhiloxM1));
  const __m256i c1v = _mm256_set1_epi64x(stream_word(ctx));
  const __m256i c2v = _mm256_set1_epi64x(static_cast<std::uint32_t>(ctx.step));
  const __m256i c3v = _mm256_set1_epi64x(ctx.worker);
  std::size_t b = 0;
  for (; b + 8 <= nblocks; b += 8) {
    const auto f = static_cast<long long>(static_cast<std::uint32_t>(first_block + b));
    __m256i a0 = _mm256_add_epi64(_mm256_set1_epi64x(f), _mm256_setr_epi64x(0, 1, 2, 3));
    __m256i b0 = _mm256_add_epi64(a0, _mm256_set1_epi64x(4));  // low 32 bits wrap like the u32 counter
    __m256i a1 = c1v, a2 = c2v, a3 = c3v, b1 = c1v, b2 = c2v, b3 = c3v;
    auto k0 = static_cast<std::uint32_t>(ctx.seed);
    auto k1 = static_cast<std::uint32_t>(ctx.seed >> 32);
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 += detail::kPhiloxW0;
        k1 += detail::kPhiloxW1;
      }
      const __m256i key0 = _mm256_set1_epi64x(k0), key1 = _mm256_set1_epi64x(k1);
      const __m256i pa0 = _mm256_mul_epu32(a0, m0), pa1 = _mm256_mul_epu32(a2, m1);
      const __m256i pb0 = _mm256_mul_epu32(b0, m0), pb1 = _mm256_mul_epu32(b2, m1);
      a0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pa1, 32), a1), key0);
      a2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pa0, 32), a3), key1);
      b0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pb1, 32), b1), key0);
      b2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pb0, 32), b3), key1);
      a1 = pa1;
      a3 = pa0;
      b1 = pb1;
      b3 = pb0;
    }
    store_blocks(out + 4 * b, a0, a1, a2, a3);
    store_blocks(out + 4 * b + 16, b0, b1, b2, b3);
  }
  scalar_tail(ctx, first_block, b, nblocks, out);
}

/// The CPU runs AVX-512F (and the portable paths are not forced by a test).
bool cpu_has_avx512f() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has && cpu_has_avx2();
}

// The maskz forms with every lane selected: GCC 12's unmasked forms pass an undefined
// register that -Wmaybe-uninitialized flags (GCC bug 105593); same instructions.
constexpr __mmask8 kAll = 0xFF;

/// store_blocks on 8 blocks: dst[4 l + w] = low32(x_w[l]), l < 8.
__attribute__((target("avx512f"))) inline void store_blocks512(std::uint32_t* dst, __m512i x0, __m512i x1, __m512i x2,
                                                               __m512i x3) {
  const __m512i lo32 = _mm512_set1_epi64(0xFFFFFFFFll);
  const __m512i x01 = _mm512_or_si512(_mm512_and_si512(x0, lo32), _mm512_maskz_slli_epi64(kAll, x1, 32));
  const __m512i x23 = _mm512_or_si512(_mm512_and_si512(x2, lo32), _mm512_maskz_slli_epi64(kAll, x3, 32));
  const __m512i lo = _mm512_maskz_unpacklo_epi64(kAll, x01, x23);  // blocks 0, 2, 4, 6 (one per 128-bit lane)
  const __m512i hi = _mm512_maskz_unpackhi_epi64(kAll, x01, x23);  // blocks 1, 3, 5, 7
  _mm512_storeu_si512(dst, _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi));
  _mm512_storeu_si512(dst + 16, _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), hi));
}

/// rounding_words_avx2 with 8 counters per register: 16 per iteration.
__attribute__((target("avx512f"))) void rounding_words_avx512(const SeedContext& ctx, std::uint64_t first_block,
                                                              std::size_t nblocks, std::uint32_t* out) {
  const __m512i m0 = _mm512_set1_epi64(static_cast<long long>(detail::kPhiloxM0));
  const __m512i m1 = _mm512_set1_epi64(static_cast<long long>(detail::kPhiloxM1));
  const __m512i c1v = _mm512_set1_epi64(stream_word(ctx));
  const __m512i c2v = _mm512_set1_epi64(static_cast<std::uint32_t>(ctx.step));
  const __m512i c3v = _mm512_set1_epi64(ctx.worker);
  std::size_t b = 0;
  for (; b + 16 <= nblocks; b += 16) {
    const auto f = static_cast<long long>(static_cast<std::uint32_t>(first_block + b));
    __m512i a0 = _mm512_add_epi64(_mm512_set1_epi64(f), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    __m512i b0 = _mm512_add_epi64(a0, _mm512_set1_epi64(8));  // low 32 bits wrap like the u32 counter
    __m512i a1 = c1v, a2 = c2v, a3 = c3v, b1 = c1v, b2 = c2v, b3 = c3v;
    auto k0 = static_cast<std::uint32_t>(ctx.seed);
    auto k1 = static_cast<std::uint32_t>(ctx.seed >> 32);
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 += detail::kPhiloxW0;
        k1 += detail::kPhiloxW1;
      }
      const __m512i key0 = _mm512_set1_epi64(k0), key1 = _mm512_set1_epi64(k1);
      const __m512i pa0 = _mm512_maskz_mul_epu32(kAll, a0, m0), pa1 = _mm512_maskz_mul_epu32(kAll, a2, m1);
      const __m512i pb0 = _mm512_maskz_mul_epu32(kAll, b0, m0), pb1 = _mm512_maskz_mul_epu32(kAll, b2, m1);
      a0 = _mm512_xor_si512(_mm512_xor_si512(_mm512_maskz_srli_epi64(kAll, pa1, 32), a1), key0);
      a2 = _mm512_xor_si512(_mm512_xor_si512(_mm512_maskz_srli_epi64(kAll, pa0, 32), a3), key1);
      b0 = _mm512_xor_si512(_mm512_xor_si512(_mm512_maskz_srli_epi64(kAll, pb1, 32), b1), key0);
      b2 = _mm512_xor_si512(_mm512_xor_si512(_mm512_maskz_srli_epi64(kAll, pb0, 32), b3), key1);
      a1 = pa1;
      a3 = pa0;
      b1 = pb1;
      b3 = pb0;
    }
    store_blocks512(out + 4 * b, a0, a1, a2, a3);
    store_blocks512(out + 4 * b + 32, b0, b1, b2, b3);
  }
  rounding_words_avx2(ctx, first_block + b, nblocks - b, out + 4 * b);
}

#endif

}  // namespace

namespace {
/// rounding_words on its fastest path, or on AVX2 at best when !avx512.
void dispatch(const SeedContext& ctx, std::uint64_t first_block, std::size_t nblocks, std::uint32_t* out,
              bool avx512) {
  first_block += ctx.first_element / 4;  // a tile of the fused EF path starts at a multiple of 4
#if defined(GZ_HAVE_AVX2_PHILOX)
  if (avx512 && cpu_has_avx512f()) {
    rounding_words_avx512(ctx, first_block, nblocks, out);
    return;
  }
  if (cpu_has_avx2()) {
    rounding_words_avx2(ctx, first_block, nblocks, out);
    return;
  }
#else
  (void)avx512;
#endif
  rounding_words_portable(ctx, first_block, nblocks, out);
}
}  // namespace

void rounding_words(const SeedContext& ctx, std::uint64_t first_block, std::size_t nblocks, std::uint32_t* out) {
  dispatch(ctx, first_block, nblocks, out, true);
}

/// For tests: the AVX2 path where it runs, whether or not the CPU has AVX-512.
void rounding_words_avx2_for_test(const SeedContext& ctx, std::uint64_t first_block, std::size_t nblocks,
                                  std::uint32_t* out) {
  dispatch(ctx, first_block, nblocks, out, false);
}

/// For tests: the portable path regardless of the CPU.
void rounding_words_portable_for_test(const SeedContext& ctx, std::uint64_t first_block, std::size_t nblocks,
                                      std::uint32_t* out) {
  rounding_words_portable(ctx, first_block, nblocks, out);
}

}  // namespace gradzip::quant::bucketed
