// Codec "fp16": IEEE-754 binary16 values (16 bits/element).
//
// Definition (encode, element i): h_i = float_to_fp16(x_i) from quant/half.h (round to
// nearest, ties to even; subnormal halves kept). Overflow policy: SATURATE. A finite x
// whose rounding gives +-Inf (|x| >= 65520) is sent as +-65504 (0x7BFF | sign), the
// largest finite half; with error feedback the excess stays in the residual. A NaN/Inf
// input element makes encode fail with kNonFiniteInput.
//
// Params: none (params_bytes = 0). Flags: none.
// Payload: n little-endian uint16 half bit patterns, element i at bytes [2i, 2i+2).
// Size: 2n bytes. Message size = 40 + 2n.
//
// Decode: y_i = fp16_to_float(h_i) (exact; computed branch-free, same values). The decoder first scans the payload and
// refuses any half with exponent field 31 (Inf/NaN: the encoder never writes one) with
// kNonFiniteScale, before writing output. decode_add: acc_i += scale * y_i.
//
// Lossless on values representable in binary16 (x == fp16_to_float(float_to_fp16(x))).
// On CPUs with F16C the encode converts with VCVTPS2PH (quant/half_f16c.h), which gives
// the same bytes as the software conversion for every input.
// The conversion loops select between a float-addition result and an integer result;
// under GCC's default -ftrapping-math the vectorizer refuses to if-convert them. No FP
// exception is ever observed here and the arithmetic is unchanged (no reassociation, no
// contraction): this only lets the loops vectorize. Results are bit-identical. The codec
// body (blocks, validation, decode_add) is shared with bf16: quant/codecs/half_codec.h,
// included below the pragma so its loops get the same option.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "quant/codecs/codecs.h"
#include "quant/codecs/half_codec.h"
#include "quant/half.h"
#include "quant/half_f16c.h"

namespace gradzip::quant {
namespace {

/// fp16 bits of a finite x with overflow saturated to the largest finite half:
/// bit-identical to float_to_fp16(x) (quant/half.h) followed by Inf -> 0x7BFF, for every
/// finite float (checked exhaustively over all 2^32 patterns when written; the unit test
/// re-checks a sample). Branch-free so the encode loop vectorizes (after F. Giesen's
/// round-to-nearest-even float->half conversion):
///   normal results (|x| >= 2^-14): (f - (112 << 23) + 0xFFF + mantissa-lsb) >> 13, with
///     f = |x| bits (integer rounding of the 13 dropped bits, ties to even), min 0x7BFF;
///   subnormal results: bits(|x| + 0.5f) - bits(0.5f): the fp32 addition rounds |x| to a
///     multiple of 2^-24 = the half subnormal step, ties to even.
/// The CUDA twin may use float_to_fp16 + saturation: the bytes are the same.
inline std::uint16_t fp16_saturate(float x) {
  const std::uint32_t u = float_bits(x);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t f = u & 0x7FFFFFFFu;
  std::uint32_t normal = (f + 0xC8000FFFu + ((f >> 13) & 1u)) >> 13;  // 0xC8000000 = -(112 << 23) mod 2^32
  normal = normal < 0x7BFFu ? normal : 0x7BFFu;
  const std::uint32_t sub = float_bits(bits_float(f) + 0.5f) - 0x3F000000u;
  return static_cast<std::uint16_t>(sign | (f < 0x38800000u ? sub : normal));
}

/// fp16_to_float(h) (quant/half.h) for every finite half h, branch-free: subnormals and
/// zero as float(mantissa) * 2^-24 (exact), normals by re-biasing the exponent.
inline float fp16_decode(std::uint16_t h) {
  const std::uint32_t sign = (static_cast<std::uint32_t>(h) & 0x8000u) << 16;
  const std::uint32_t em = h & 0x7FFFu;
  const std::uint32_t sub = float_bits(static_cast<float>(static_cast<std::int32_t>(em)) * 0x1p-24f);
  return bits_float(sign | (em < 0x400u ? sub : (em << 13) + 0x38000000u));
}

struct Fp16Traits {
  static constexpr CodecId kId = CodecId::kFp16;
  static constexpr elementwise::HalfFormat kFormat = elementwise::kFp16;
  static std::uint16_t encode(float x) { return fp16_saturate(x); }
  static float decode(std::uint16_t h) { return fp16_decode(h); }
  /// VCVTPS2PH where the CPU has F16C (quant/half_f16c.h: the same bits as fp16_saturate).
  static BlockEncoder block_encoder() { return cpu_has_f16c() ? &fp16_saturate_block_f16c : nullptr; }
  /// VCVTPS2PH and VCVTPH2PS (exact) where the CPU has F16C: the same bits.
  static BlockFeedback block_feedback() { return cpu_has_f16c() ? &fp16_feedback_block_f16c : nullptr; }
};

/// The documented message size: 40 + 2n bytes.
std::size_t message_bytes(const Params&, std::uint64_t n, const std::vector<std::uint64_t>&) {
  return kHeaderBytes + 2 * n;
}

std::unique_ptr<Codec> make_fp16(const Params&) { return std::make_unique<HalfCodec<Fp16Traits>>(); }

}  // namespace

const CodecEntry& fp16_entry() {
  static const CodecEntry entry{"fp16", CodecId::kFp16,
                                "IEEE binary16, round to nearest even, overflow saturates to +-65504 (16 bits/element)",
                                "IEEE 754-2008 binary16; Micikevicius et al. 2018, mixed precision training (ICLR)",
                                {}, &make_fp16, {&message_bytes}};
  return entry;
}

}  // namespace gradzip::quant
