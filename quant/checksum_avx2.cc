// XXH3-64 built for AVX2, for the message checksum (quant/wire.h). This file alone is
// compiled with -mavx2 on x86-64 (quant/CMakeLists.txt) and includes no other gradzip
// header (no inline function of ours is built for AVX2 here). quant/wire.cc calls it
// only on a CPU with AVX2 and otherwise uses the system libxxhash, whose x86-64 build
// is SSE2. XXH3's value does not depend on the vector width, so both give the same
// checksum (tests/quant/wire_checksum_test.cc).
// Why: the parameter server checksums every message it receives and sends (three
// passes over the model per push + pull, bench/comm); over a 4 MiB message in cache
// this build hashes ~24 GB/s, the SSE2 library ~14 GB/s (measured on the 2-core
// development VM, Xeon with AVX-512).
#include "quant/checksum_avx2.h"

#if defined(__AVX2__)
#define XXH_INLINE_ALL  // a private inlined copy (XXH_INLINE_ names): no clash with libxxhash
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#endif

namespace gradzip::quant::detail {

#if defined(__AVX2__)
bool checksum_avx2_built() { return true; }

std::uint64_t xxh3_two_ranges_avx2(const std::uint8_t* a, std::size_t a_bytes, const std::uint8_t* b,
                                   std::size_t b_bytes) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, a, a_bytes);
  XXH3_64bits_update(&state, b, b_bytes);
  return XXH3_64bits_digest(&state);
}

static_assert(sizeof(XXH3_state_t) <= kXxh3StateBytes && alignof(XXH3_state_t) <= 64,
              "Xxh3Avx2State must hold an XXH3_state_t");
static XXH3_state_t* as_state(Xxh3Avx2State* s) { return reinterpret_cast<XXH3_state_t*>(s->bytes); }

void xxh3_avx2_reset(Xxh3Avx2State* state) { XXH3_64bits_reset(as_state(state)); }
void xxh3_avx2_update(Xxh3Avx2State* state, const void* data, std::size_t bytes) {
  XXH3_64bits_update(as_state(state), data, bytes);
}
std::uint64_t xxh3_avx2_digest(const Xxh3Avx2State* state) {
  return XXH3_64bits_digest(reinterpret_cast<const XXH3_state_t*>(state->bytes));
}
#else
bool checksum_avx2_built() { return false; }

void xxh3_avx2_reset(Xxh3Avx2State*) {}
void xxh3_avx2_update(Xxh3Avx2State*, const void*, std::size_t) {}
std::uint64_t xxh3_avx2_digest(const Xxh3Avx2State*) { return 0; }

std::uint64_t xxh3_two_ranges_avx2(const std::uint8_t*, std::size_t, const std::uint8_t*, std::size_t) { return 0; }
#endif

}  // namespace gradzip::quant::detail
