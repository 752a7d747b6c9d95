// Shared machinery of the dense bucketed codecs (int8, qsgd, terngrad, scaled-sign,
// onebit): how elements are grouped into buckets, where the per-bucket scales and the
// packed codes sit in the payload, the block loop that fills them, and the message checks
// of the codecs whose params block is only the bucket size (int8, scaled-sign, onebit:
// BucketOnlyCodec, read by the CPU codecs and their CUDA twins; qsgd.h and terngrad.h hold
// those of the other two).
//
// Payload layout of every bucketed codec (n elements, bucket size B, S scales per bucket,
// nb = ceil(n / B) buckets, kBits bits per element):
//   [0, 4*S*nb)                      scales: float32 LE, bucket-major (bucket b's scales
//                                    are floats S*b .. S*b+S-1)
//   [4*S*nb, 4*S*nb + ceil(n*kBits/8)) codes: element i's kBits-bit field i of a stream
//                                    packed as in quant/bitpack.h (LSB-first)
// Bucket b holds elements [b*B, min(n, (b+1)*B)); the last bucket may be shorter.
//
// Order of work (the CUDA twin may do it in any order; only the bytes are defined):
// elements are processed in blocks of kCodeBlock = 1024 (global index multiples of 1024).
// Before a block, the scales of every bucket that starts before the block's end are
// computed (Stat over the whole bucket). Random words, when used, are word i % 4 of
// random_block(ctx, RandomStream::kRounding, i / 4) for element index i of the message
// (0-based over the whole message, not the bucket).
//
// Scale limits shared by these codecs (so every decoded value is finite):
//   kMaxScale = 2^126: an encoder refuses (kNonFiniteInput) a bucket whose scale would
//     exceed it; a decoder refuses (kNonFiniteScale) a scale above it.
//   kMinScale = 2^-120: codecs that multiply by a reciprocal of a scale treat a bucket
//     whose scale is below it as all-zero (scale written as 0), so the reciprocal never
//     overflows. Only gradients with every |x| < ~1e-36 in a bucket are affected.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "quant/bitpack.h"
#include "quant/codec.h"
#include "quant/philox.h"
#include "quant/spec.h"
#include "quant/wire.h"

namespace gradzip::quant::bucketed {

constexpr std::size_t kCodeBlock = 1024;
constexpr float kMaxScale = 0x1p126f;
constexpr float kMinScale = 0x1p-120f;
/// Largest bucket size a codec accepts (keeps counts exact in fp32 and within the
/// Philox counter layout).
constexpr std::uint32_t kMaxBucket = 1u << 24;

/// Random words of blocks [first_block, first_block + nblocks) of the rounding stream,
/// shifted by the tile start ctx.first_element (a multiple of 4; 0 for a whole message):
/// out[4 j + w] = random_block(ctx, RandomStream::kRounding, ctx.first_element / 4 + first_block + j).v[w].
/// Exactly the numbers of the scalar random_block (tests compare them); computed with
/// AVX-512F or AVX2 when the CPU has it, else 8 counters at a time in portable code
/// (quant/codecs/bucketed.cc).
void rounding_words(const SeedContext& ctx, std::uint64_t first_block, std::size_t nblocks, std::uint32_t* out);
/// The portable path of rounding_words whatever the CPU (tests compare every path).
void rounding_words_portable_for_test(const SeedContext& ctx, std::uint64_t first_block, std::size_t nblocks,
                                      std::uint32_t* out);
/// The AVX2 path of rounding_words where the build and the CPU have AVX2 (also on an
/// AVX-512 CPU), else the portable one.
void rounding_words_avx2_for_test(const SeedContext& ctx, std::uint64_t first_block, std::size_t nblocks,
                                  std::uint32_t* out);

/// Equal to uniform01(bits) (quant/philox.h) for every input: float(bits >> 8) * 2^-24.
/// Converts through int32 (bits >> 8 < 2^24), which vectorizes on plain SSE2.
inline float uniform24(std::uint32_t bits) {
  return static_cast<float>(static_cast<std::int32_t>(bits >> 8)) * 0x1p-24f;
}

// Branch-free helpers. Float comparisons block GCC's vectorizer under the default
// -ftrapping-math, so the hot loops compare IEEE bit patterns as integers instead; each
// helper states the float expression it equals exactly.

/// Bits of a float (no aliasing issues: memcpy).
inline std::uint32_t fbits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bitsf(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
/// (x < 0.0f) for finite x (false for -0.0f), as 0/1.
inline std::uint32_t is_negative(float x) { return fbits(x) > 0x80000000u ? 1u : 0u; }
/// (a < b) for a, b >= 0 (not NaN): non-negative floats order like their bit patterns.
inline std::uint32_t less_nonneg(float a, float b) { return fbits(a) < fbits(b) ? 1u : 0u; }
/// min(a, b) for a, b >= 0 (not NaN).
inline float min_nonneg(float a, float b) {
  const std::uint32_t ua = fbits(a), ub = fbits(b);
  return bitsf(ua < ub ? ua : ub);
}
/// max_abs(x, m) of quant/reduce.h (NaN if any element is NaN, else max |x|, exact),
/// computed on the bit patterns (|x| bits order like |x|; NaN bits exceed Inf's).
inline float max_abs_bits(const float* __restrict x, std::size_t m) {
  std::int32_t mx = 0;
  for (std::size_t i = 0; i < m; ++i) {
    const auto a = static_cast<std::int32_t>(fbits(x[i]) & 0x7FFFFFFFu);
    mx = a > mx ? a : mx;
  }
  return mx > 0x7F800000 ? std::numeric_limits<float>::quiet_NaN() : bitsf(static_cast<std::uint32_t>(mx));
}

/// Number of buckets of size `bucket` covering n elements.
inline std::size_t num_buckets(std::size_t n, std::size_t bucket) { return (n + bucket - 1) / bucket; }

/// Payload bytes of a bucketed codec: 4*S*nb + ceil(n*bits/8).
inline std::size_t payload_bytes(std::size_t n, std::size_t bucket, std::size_t scales_per_bucket, unsigned bits) {
  return 4 * scales_per_bucket * num_buckets(n, bucket) + packed_bytes(n, bits);
}

/// Largest bucket size a bucketed codec encodes in tiles on the fused error-feedback path
/// (a tile holds whole buckets and stays in the L2 cache); larger buckets use that path's
/// untiled fallback.
constexpr std::size_t kMaxTileBucket = 1u << 16;

/// Codec::tile_alignment of a bucketed codec: whole buckets and a multiple of 8 elements,
/// so a tile's packed codes start on a byte and its random words on a Philox block.
inline std::size_t tile_alignment(std::size_t bucket) {
  if (bucket > kMaxTileBucket) return 0;
  std::size_t a = bucket;
  while (a % 8 != 0) a += bucket;
  return a;
}

/// Codec::tile_region_bytes of a bucketed codec: region 0 the scales, region 1 the codes.
inline std::size_t tile_region_bytes(int region, std::size_t count, std::size_t bucket, std::size_t scales,
                                     unsigned bits) {
  return region == 0 ? 4 * scales * num_buckets(count, bucket) : packed_bytes(count, bits);
}

/// The error an encoder returns for a bucket whose statistic is not finite: either the
/// input holds NaN/Inf, or the statistic overflowed fp32.
inline Status nonfinite_bucket(const float* x, std::size_t m, const char* what) {
  if (!all_finite(x, m)) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
  return Status(Errc::kNonFiniteInput, std::string(what) + " of a bucket overflows fp32 (gradient too large)");
}

/// Checks a scale read from a message: finite, within [lo, kMaxScale] in magnitude.
/// `nonneg` scales must be >= 0, otherwise <= 0 (onebit's negative mean).
inline Status check_scale(float s, bool nonneg) {
  if (!std::isfinite(s)) return Status(Errc::kNonFiniteScale, "a bucket scale in the message is NaN or Inf");
  if (nonneg ? s < 0.0f : s > 0.0f) return Status(Errc::kBadParams, "a bucket scale in the message has the wrong sign");
  if (std::fabs(s) > kMaxScale) return Status(Errc::kNonFiniteScale, "a bucket scale in the message exceeds 2^126");
  return Status::Ok();
}

/// Validates all nb*S scales at `src`: scale k of a bucket must satisfy
/// check_scale(s, nonneg(k)).
template <typename NonNeg>
inline Status check_scales(const std::uint8_t* src, std::size_t nb, std::size_t spb, NonNeg nonneg) {
  for (std::size_t b = 0; b < nb; ++b) {
    for (std::size_t k = 0; k < spb; ++k) {
      GZ_RETURN_IF_ERROR(check_scale(load_le<float>(src + 4 * (b * spb + k)), nonneg(k)));
    }
  }
  return Status::Ok();
}

/// Encode driver. `stat(const float* xb, size_t m, float* scales)` computes the S scales
/// of one bucket (m elements) and may fail; `quant(const float* xs, size_t m,
/// const float* scales, const uint32_t* rnd, uint8_t* codes)` computes the codes of a
/// segment (part of one bucket inside one block); rnd[j] is the random word of element
/// xs[j] (only meaningful when kRandom).
template <int kBits, bool kRandom, int kScales, typename Stat, typename Quant>
Status encode(const float* x, std::size_t n, std::size_t bucket, const SeedContext& ctx, std::uint8_t* payload,
              Stat stat, Quant quant) {
  const std::size_t nb = num_buckets(n, bucket);
  std::uint8_t* scale_dst = payload;
  std::uint8_t* code_dst = payload + 4 * kScales * nb;
  std::uint8_t codes[kCodeBlock];
  std::uint32_t rnd[kRandom ? kCodeBlock : 1];
  std::size_t next_bucket = 0;
  for (std::size_t i0 = 0; i0 < n; i0 += kCodeBlock) {
    const std::size_t i1 = std::min(n, i0 + kCodeBlock);
    for (; next_bucket < nb && next_bucket * bucket < i1; ++next_bucket) {
      const std::size_t b0 = next_bucket * bucket;
      float s[kScales] = {};
      GZ_RETURN_IF_ERROR(stat(x + b0, std::min(bucket, n - b0), s));
      for (int k = 0; k < kScales; ++k) store_le<float>(scale_dst + 4 * (next_bucket * kScales + k), s[k]);
    }
    if constexpr (kRandom) rounding_words(ctx, i0 / 4, (i1 - i0 + 3) / 4, rnd);
    for (std::size_t s0 = i0; s0 < i1;) {
      const std::size_t b = s0 / bucket;
      const std::size_t s1 = std::min(i1, (b + 1) * bucket);
      float s[kScales] = {};
      for (int k = 0; k < kScales; ++k) s[k] = load_le<float>(scale_dst + 4 * (b * kScales + k));
      quant(x + s0, s1 - s0, static_cast<const float*>(s), rnd + (kRandom ? s0 - i0 : 0), codes + (s0 - i0));
      s0 = s1;
    }
    pack_fields<kBits>(codes, i1 - i0, code_dst + i0 / 8 * kBits);
  }
  return Status::Ok();
}

/// Decode driver over a payload already validated (scales and length).
/// `dequant(const uint8_t* codes, size_t m, const float* scales, size_t first)` writes
/// elements [first, first + m) of one bucket segment.
template <int kBits, int kScales, typename Dequant>
void decode(const std::uint8_t* payload, std::size_t n, std::size_t bucket, Dequant dequant) {
  const std::size_t nb = num_buckets(n, bucket);
  const std::uint8_t* scale_src = payload;
  const std::uint8_t* code_src = payload + 4 * kScales * nb;
  std::uint8_t codes[kCodeBlock];
  for (std::size_t i0 = 0; i0 < n; i0 += kCodeBlock) {
    const std::size_t i1 = std::min(n, i0 + kCodeBlock);
    unpack_fields<kBits>(code_src + i0 / 8 * kBits, i1 - i0, codes);
    for (std::size_t s0 = i0; s0 < i1;) {
      const std::size_t b = s0 / bucket;
      const std::size_t s1 = std::min(i1, (b + 1) * bucket);
      float s[kScales] = {};
      for (int k = 0; k < kScales; ++k) s[k] = load_le<float>(scale_src + 4 * (b * kScales + k));
      dequant(codes + (s0 - i0), s1 - s0, static_cast<const float*>(s), s0);
      s0 = s1;
    }
  }
}

/// Checks the parts of the header every bucketed codec shares: params size, no flags,
/// bucket in 1..kMaxBucket, payload length equal to the formula.
inline Status check_common(const MessageView& m, std::size_t params_size, std::uint32_t bucket,
                           std::size_t scales_per_bucket, unsigned bits) {
  if (m.params_bytes != params_size) {
    return Status(Errc::kBadParams, "params block is " + std::to_string(m.params_bytes) + " bytes, expected " +
                                        std::to_string(params_size));
  }
  if (m.flags != 0) return Status(Errc::kBadParams, "unknown header flags " + std::to_string(m.flags));
  if (bucket == 0 || bucket > kMaxBucket) {
    return Status(Errc::kBadParams, "bucket " + std::to_string(bucket) + " outside 1..2^24");
  }
  const std::size_t want = payload_bytes(m.numel, bucket, scales_per_bucket, bits);
  if (m.payload_bytes != want) {
    return Status(Errc::kBadLength, "payload is " + std::to_string(m.payload_bytes) + " bytes, the format needs " +
                                        std::to_string(want));
  }
  return Status::Ok();
}

/// A bucketed codec whose params block is only its bucket size (u32 LE): int8,
/// scaled-sign and onebit. One definition of each, read by the CPU codec and its CUDA twin.
struct BucketOnlyCodec {
  const char* name;                 ///< spec name, also used in error messages
  int scales;                       ///< scales per bucket
  unsigned bits;                    ///< bits per element
  bool (*nonneg)(std::size_t k);    ///< whether scale k of a bucket must be >= 0 (else <= 0)
};
constexpr BucketOnlyCodec kInt8{"int8", 1, 8, [](std::size_t) { return true; }};
constexpr BucketOnlyCodec kScaledSign{"scaled-sign", 1, 1, [](std::size_t) { return true; }};
/// onebit: scale 0 is the mean of the non-negative elements (>= 0), scale 1 the mean of
/// the negative ones (<= 0).
constexpr BucketOnlyCodec kOneBit{"onebit", 2, 1, [](std::size_t k) { return k == 0; }};
constexpr std::size_t kBucketOnlyParamsBytes = 4;

/// The bucket size of a spec's validated params ("bucket").
inline std::uint32_t bucket_from(const Params& p) { return static_cast<std::uint32_t>(p.get_int("bucket")); }

/// The decoder's checks of a message of codec `c` (both twins run them before writing
/// anything): params block size, flags, bucket range, payload length and every scale.
/// Sets *bucket to the message's bucket size.
inline Status parse_bucket_only(const MessageView& m, const BucketOnlyCodec& c, std::uint32_t* bucket) {
  if (m.params_bytes != kBucketOnlyParamsBytes) {
    return Status(Errc::kBadParams, std::string(c.name) + " params block must be 4 bytes");
  }
  const std::uint32_t b = load_le<std::uint32_t>(m.params);
  GZ_RETURN_IF_ERROR(check_common(m, kBucketOnlyParamsBytes, b, static_cast<std::size_t>(c.scales), c.bits));
  GZ_RETURN_IF_ERROR(check_scales(m.payload, num_buckets(m.numel, b), static_cast<std::size_t>(c.scales), c.nonneg));
  *bucket = b;
  return Status::Ok();
}

/// ParamInfo of the common "bucket" parameter.
inline ParamInfo bucket_param(const char* def) {
  return {"bucket", ParamKind::kInt, def, 1, static_cast<double>(kMaxBucket), {}, "elements per scale bucket"};
}

}  // namespace gradzip::quant::bucketed
