// Philox4x32-10 counter-based RNG (Salmon, Moraes, Dror, Shaw: "Parallel random numbers:
// as easy as 1, 2, 3", SC 2011). Header-only, usable from host and device code.
//
// gradzip keys every random draw by (seed, step, worker, bucket, element index):
//   key     = { seed & 0xffffffff, seed >> 32 }
//   counter = { block, stream, step & 0xffffffff, worker }
// where block = element_index / 4 selects the 128-bit output block, and `stream`
// separates independent uses (see RandomStream). Element i takes word i % 4 of its block.
// With no state to carry, a CPU loop and a CUDA thread that handles element i draw the
// same number, so stochastic codecs produce the same bytes on both.
#pragma once

#include <cstdint>

#include "quant/hd.h"

namespace gradzip::quant {

struct Philox4x32 {
  std::uint32_t v[4];
};

namespace detail {
constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr std::uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
constexpr std::uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1

GZ_HD void philox_round(std::uint32_t c[4], const std::uint32_t k[2]) {
  const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c[0];
  const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c[2];
  const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
  const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
  c[0] = hi1 ^ c[1] ^ k[0];
  c[1] = lo1;
  c[2] = hi0 ^ c[3] ^ k[1];
  c[3] = lo0;
}
}  // namespace detail

/// One Philox4x32-10 block: 10 rounds over a 128-bit counter with a 64-bit key.
GZ_HD Philox4x32 philox4x32_10(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3,
                               std::uint32_t k0, std::uint32_t k1) {
  std::uint32_t c[4] = {c0, c1, c2, c3};
  std::uint32_t k[2] = {k0, k1};
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += detail::kPhiloxW0;
      k[1] += detail::kPhiloxW1;
    }
    detail::philox_round(c, k);
  }
  return Philox4x32{{c[0], c[1], c[2], c[3]}};
}

/// Independent random streams of one (seed, step, worker, bucket) context. Each use of
/// randomness in a codec takes its own stream id so two uses never share numbers.
enum class RandomStream : std::uint32_t {
  kRounding = 0,    ///< stochastic rounding (qsgd, terngrad, natural)
  kSelection = 1,   ///< random-k index selection
  kSampling = 2,    ///< dgc threshold sampling
};

/// Where a draw comes from: seed, training step, worker rank and bucket index.
/// Two messages with equal SeedContext and equal input are byte-identical.
struct SeedContext {
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  std::uint32_t worker = 0;
  std::uint32_t bucket = 0;
  /// Message index of the first element being encoded: 0 for a whole message (what
  /// Codec::encode requires); the start of a tile inside the fused error-feedback path
  /// (quant/feedback.h), so a tile draws the random words of its place in the message.
  std::uint64_t first_element = 0;
};

/// The four 32-bit words of output block `block` (elements 4*block .. 4*block+3) of
/// `stream` in context `ctx`: counter = { block, stream << 24 | bucket, step, worker },
/// key = seed. Limits (documented, checked by the codecs): bucket < 2^24, elements per
/// message < 2^34, step < 2^32 (higher bits are ignored).
GZ_HD Philox4x32 random_block(const SeedContext& ctx, RandomStream stream, std::uint64_t block) {
  return philox4x32_10(static_cast<std::uint32_t>(block),
                       (static_cast<std::uint32_t>(stream) << 24) | (ctx.bucket & 0x00FFFFFFu),
                       static_cast<std::uint32_t>(ctx.step), ctx.worker,
                       static_cast<std::uint32_t>(ctx.seed), static_cast<std::uint32_t>(ctx.seed >> 32));
}

/// 32 random bits for element `index`: word index % 4 of block index / 4.
GZ_HD std::uint32_t random_bits(const SeedContext& ctx, RandomStream stream, std::uint64_t index) {
  return random_block(ctx, stream, index >> 2).v[index & 3u];
}

/// Uniform float in [0, 1) with 24 random bits (exactly representable, identical on
/// host and device: no rounding is involved).
GZ_HD float uniform01(std::uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

}  // namespace gradzip::quant
