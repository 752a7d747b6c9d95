// XXH3-64 built for AVX2 (quant/checksum_avx2.cc), for the message checksum of
// quant/wire.cc, which picks it at run time (cpu_has_avx2(), quant/cpu.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gradzip::quant::detail {

/// True when this build has the AVX2 variant (x86-64 with GCC or Clang).
bool checksum_avx2_built();
/// XXH3-64 (seed 0) of a[0, a_bytes) ++ b[0, b_bytes), computed by an AVX2 build of
/// XXH3. Call only when checksum_avx2_built() and cpu_has_avx2().
std::uint64_t xxh3_two_ranges_avx2(const std::uint8_t* a, std::size_t a_bytes, const std::uint8_t* b,
                                   std::size_t b_bytes);

}  // namespace gradzip::quant::detail
