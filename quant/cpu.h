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

#include <atomic>

namespace gradzip::quant {

namespace detail {
/// Set by ForcePortableSimdForTest only: makes cpu_has_avx2() answer false.
inline std::atomic<bool>& force_portable_simd() {
  static std::atomic<bool> forced{false};
  return forced;
}
}  // namespace detail

/// True when the running CPU supports AVX2 (and the build has AVX2 clones), unless a
/// test forced the portable paths. The CPU check is cached after the first call.
/// Thread-safe.
inline bool cpu_has_avx2() {
#if defined(GZ_HAVE_AVX2_CLONES)
  static const bool has = __builtin_cpu_supports("avx2");
  return has && !detail::force_portable_simd().load(std::memory_order_relaxed);
#else
  return false;
#endif
}

/// True when the running CPU supports AVX2 and F16C (the half <-> float conversion
/// instructions) and the build has AVX2 clones, unless a test forced the portable paths
/// (ForcePortableSimdForTest). Cached after the first call. Thread-safe.
inline bool cpu_has_f16c() {
#if defined(GZ_HAVE_AVX2_CLONES)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return has && !detail::force_portable_simd().load(std::memory_order_relaxed);
#else
  return false;
#endif
}

#if defined(GZ_HAVE_AVX2_CLONES)
namespace detail {
/// fn() compiled for AVX2: fn's body (an always_inline lambda, and what it inlines) is
/// inlined here and vectorized 8 floats wide.
template <typename Fn>
__attribute__((target("avx2"))) inline auto run_avx2(Fn& fn) {
  return fn();
}
}  // namespace detail
#endif

/// Runs fn() from a copy compiled for AVX2 when cpu_has_avx2(), else from the baseline
/// one: the runtime dispatch of quant/cpu.h for a hot loop written once. fn must be a
/// lambda marked __attribute__((always_inline)) whose loops call only inline code (an
/// out-of-line call runs its baseline copy), and must use integer ops and IEEE fp32
/// +, -, *, / only (the AVX2 target has no FMA, so nothing is contracted): both copies
/// give the same bits.
template <typename Fn>
inline auto with_simd(Fn&& fn) {
#if defined(GZ_HAVE_AVX2_CLONES)
  if (cpu_has_avx2()) return detail::run_avx2(fn);
#endif
  return fn();
}

/// RAII switch for tests: while alive, every runtime-dispatched loop takes its portable
/// (SSE2) copy and fp16 encodes convert in software rather than with F16C, so a test on
/// an AVX2 host can check both copies give the same bytes.
/// Not for concurrent use with encodes on other threads.
class ForcePortableSimdForTest {
 public:
  ForcePortableSimdForTest() { detail::force_portable_simd().store(true); }
  ~ForcePortableSimdForTest() { detail::force_portable_simd().store(false); }
  ForcePortableSimdForTest(const ForcePortableSimdForTest&) = delete;
  ForcePortableSimdForTest& operator=(const ForcePortableSimdForTest&) = delete;
};

}  // namespace gradzip::quant
