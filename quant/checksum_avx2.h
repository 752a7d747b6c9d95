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

/// Streaming XXH3-64 (seed 0) by the same AVX2 build, on a state kept in caller storage
/// of kXxh3StateBytes bytes aligned to 64 (Xxh3Avx2State). Call only when
/// checksum_avx2_built() and cpu_has_avx2().
constexpr std::size_t kXxh3StateBytes = 640;
struct alignas(64) Xxh3Avx2State {
  unsigned char bytes[kXxh3StateBytes];
};
void xxh3_avx2_reset(Xxh3Avx2State* state);
void xxh3_avx2_update(Xxh3Avx2State* state, const void* data, std::size_t bytes);
std::uint64_t xxh3_avx2_digest(const Xxh3Avx2State* state);

}  // namespace gradzip::quant::detail
