// F16C conversion block of the fp16 codec (quant/half_f16c.h). Compiled with a target
// attribute, not -mf16c, so the rest of quant/ stays baseline x86-64; the caller checks
// cpu_has_f16c() before calling.
#include "quant/half_f16c.h"

#include "quant/cpu.h"
#include "quant/ef_tile.h"
#include "quant/half.h"

#if defined(GZ_HAVE_AVX2_CLONES)
#include <immintrin.h>
#endif

namespace gradzip::quant {
namespace {

/// The software path on h[j0, cnt): float_to_fp16 with Inf/NaN saturated; returns the
/// NaN/Inf flag of those elements.
std::uint32_t saturate_tail(const float* x, std::size_t j0, std::size_t cnt, std::uint16_t* h) {
  std::uint32_t any = 0;
  for (std::size_t j = j0; j < cnt; ++j) {
    any |= (float_bits(x[j]) & 0x7F800000u) == 0x7F800000u;
    const std::uint16_t r = float_to_fp16(x[j]);
    h[j] = (r & 0x7FFFu) >= 0x7C00u ? static_cast<std::uint16_t>((r & 0x8000u) | 0x7BFFu) : r;
  }
  return any;
}

std::int32_t feedback_tail(const float* g, const float* e, std::size_t j0, std::size_t cnt, std::uint16_t* h,
                           float* next) {
  std::int32_t mx = 0;
  for (std::size_t j = j0; j < cnt; ++j) {
    const float p = compensate_one(g[j], e[j], &mx);
    saturate_tail(&p, 0, 1, h + j);
    next[j] = p - fp16_to_float(h[j]);
  }
  return mx;
}

#if defined(GZ_HAVE_AVX2_CLONES)
/// The fp16 codec's saturation of 8 halves r from VCVTPS2PH: |h| = min(|h|, 0x7BFF) turns
/// Inf (0x7C00) and NaN into 0x7BFF, sign kept.
__attribute__((target("avx2,f16c"), always_inline)) inline __m128i saturate_halves(__m128i r) {
  const __m128i abs16 = _mm_set1_epi16(0x7FFF);
  return _mm_or_si128(_mm_min_epu16(_mm_and_si128(r, abs16), _mm_set1_epi16(0x7BFF)), _mm_andnot_si128(abs16, r));
}
#endif

}  // namespace

#if defined(GZ_HAVE_AVX2_CLONES)
__attribute__((target("avx2,f16c"))) std::int32_t fp16_feedback_block_f16c(const float* g, const float* e,
                                                                          std::size_t cnt, std::uint16_t* h,
                                                                          float* next) {
  const __m256i abs32 = _mm256_set1_epi32(0x7FFFFFFF);
  __m256i mx = _mm256_setzero_si256();
  std::size_t j = 0;
  for (; j + 8 <= cnt; j += 8) {
    const __m256 p = _mm256_add_ps(_mm256_loadu_ps(g + j), _mm256_loadu_ps(e + j));
    mx = _mm256_max_epi32(mx, _mm256_and_si256(_mm256_castps_si256(p), abs32));
    const __m128i r = _mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m128i q = saturate_halves(r);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + j), q);
    _mm256_storeu_ps(next + j, _mm256_sub_ps(p, _mm256_cvtph_ps(q)));
  }
  alignas(32) std::int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), mx);
  std::int32_t m = feedback_tail(g, e, j, cnt, h, next);
  for (const std::int32_t v : lanes) m = v > m ? v : m;
  return m;
}
#else
std::int32_t fp16_feedback_block_f16c(const float* g, const float* e, std::size_t cnt, std::uint16_t* h,
                                      float* next) {
  return feedback_tail(g, e, 0, cnt, h, next);  // not reached: cpu_has_f16c() is false here
}
#endif

#if defined(GZ_HAVE_AVX2_CLONES)
__attribute__((target("avx2,f16c"))) std::uint32_t fp16_saturate_block_f16c(const float* x, std::size_t cnt,
                                                                          std::uint16_t* h) {
  const __m256i exp_mask = _mm256_set1_epi32(0x7F800000);
  __m256i nonfinite = _mm256_setzero_si256();
  std::size_t j = 0;
  for (; j + 8 <= cnt; j += 8) {
    const __m256 v = _mm256_loadu_ps(x + j);
    // Exponent field all ones: NaN or Inf (the codec refuses the block).
    const __m256i e = _mm256_and_si256(_mm256_castps_si256(v), exp_mask);
    nonfinite = _mm256_or_si256(nonfinite, _mm256_cmpeq_epi32(e, exp_mask));
    const __m128i r = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + j), saturate_halves(r));
  }
  // The tail of fewer than 8 by the software conversion (same bits).
  return (_mm256_testz_si256(nonfinite, nonfinite) ? 0u : 1u) | saturate_tail(x, j, cnt, h);
}
#else
std::uint32_t fp16_saturate_block_f16c(const float* x, std::size_t cnt, std::uint16_t* h) {
  return saturate_tail(x, 0, cnt, h);  // not reached: cpu_has_f16c() is false here
}
#endif

}  // namespace gradzip::quant
