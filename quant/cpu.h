// Runtime CPU feature checks for the host codecs. quant/ is built for baseline x86-64
// (SSE2); hot loops that gain from wider vectors get a second copy compiled with
// __attribute__((target("avx2"))) and pick it at run time with these checks. Both copies
// inline the same scalar source (integer ops and IEEE fp32 arithmetic without contraction),
// so their bytes are identical; the golden wire vectors pin them on either CPU.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/// Defined when the compiler can build target("avx2") clones of a loop.
#define GZ_HAVE_AVX2_CLONES 1
#endif

namespace gradzip::quant {

/// True when the running CPU supports AVX2 (and the build has AVX2 clones); cached
/// after the first call. Thread-safe (function-local static).
inline bool cpu_has_avx2() {
#if defined(GZ_HAVE_AVX2_CLONES)
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
#else
  return false;
#endif
}

}  // namespace gradzip::quant
