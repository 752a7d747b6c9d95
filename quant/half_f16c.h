// The fp16 codec's float -> half conversion by the F16C instruction VCVTPS2PH, for CPUs
// that have it (cpu_has_f16c(), quant/cpu.h). quant/half.h's software conversion stays
// the definition and the fallback: with its rounding given in the instruction's
// immediate (round to nearest, ties to even; MXCSR's rounding mode is not consulted),
// VCVTPS2PH computes the same IEEE binary16 rounding for every finite float, subnormal
// halves included, and overflows to Inf exactly where float_to_fp16 does (|x| >= 65520).
// Saturating Inf to the largest finite half afterwards (an unsigned 16-bit min on the
// magnitude) gives the fp16 codec's bytes. Checked by SimdDispatch.F16c* against the
// software conversion on every exponent with the rounding cases of its mantissa.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gradzip::quant {

/// h[j] = float_to_fp16(x[j]) (quant/half.h) with +-Inf replaced by +-0x7BFF (+-65504,
/// the fp16 codec's saturation) for j < cnt; returns 1 if some x[j] is NaN or Inf, else
/// 0 (h then holds +-0x7BFF at those j, as the software saturating conversion writes;
/// the codec refuses such a block). Call only where cpu_has_f16c() is true. x and h must
/// not overlap; no alignment needed. Thread-safe.
std::uint32_t fp16_saturate_block_f16c(const float* x, std::size_t cnt, std::uint16_t* h);

/// The fp16 codec's fused error-feedback block (quant/codecs/half_codec.h BlockFeedback):
/// p = g[j] + e[j], h[j] = the saturated half of p (as above), next[j] = p - the value of
/// h[j] (VCVTPH2PS: exact, like fp16_to_float, and not subject to MXCSR's DAZ/FTZ);
/// returns the largest |p| bit pattern as int32. Call only where cpu_has_f16c() is true.
/// No alignment needed; the arrays must not overlap. Thread-safe.
std::int32_t fp16_feedback_block_f16c(const float* g, const float* e, std::size_t cnt, std::uint16_t* h,
                                      float* next);

}  // namespace gradzip::quant
