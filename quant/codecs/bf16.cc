// Codec "bf16": bfloat16 values (16 bits/element: the high half of fp32, rounded).
//
// Definition (encode, element i): h_i = float_to_bf16(x_i) from quant/half.h (round to
// nearest, ties to even, on the 16 dropped mantissa bits). Overflow policy: SATURATE.
// A finite x whose rounding gives +-Inf (|x| >= 0x1.FFp127, bits >= 0x7F7F8000) is sent
// as +-0x7F7F (the largest finite bfloat16). A NaN/Inf input element makes encode fail
// with kNonFiniteInput.
//
// Params: none (params_bytes = 0). Flags: none.
// Payload: n little-endian uint16 bfloat16 bit patterns, element i at bytes [2i, 2i+2).
// Size: 2n bytes. Message size = 40 + 2n.
//
// Decode: y_i = bf16_to_float(h_i) = bits h_i << 16 (exact). The decoder first scans the
// payload and refuses any value with exponent field 0xFF (Inf/NaN: never written by the
// encoder) with kNonFiniteScale, before writing output. decode_add: acc_i += scale * y_i.
//
// Lossless on values representable in bfloat16 (the low 16 bits of the fp32 are zero).
// The codec body (blocks, validation, decode_add) is shared with fp16: quant/codecs/half_codec.h.
#include "quant/codecs/codecs.h"
#include "quant/codecs/half_codec.h"
#include "quant/half.h"

namespace gradzip::quant {
namespace {

/// bfloat16 bits of x with overflow saturated to the largest finite bfloat16.
inline std::uint16_t bf16_saturate(float x) {
  const std::uint16_t h = float_to_bf16(x);
  return (h & 0x7FFFu) == 0x7F80u ? static_cast<std::uint16_t>((h & 0x8000u) | 0x7F7Fu) : h;
}

struct Bf16Traits {
  static constexpr CodecId kId = CodecId::kBf16;
  static constexpr elementwise::HalfFormat kFormat = elementwise::kBf16;
  static std::uint16_t encode(float x) { return bf16_saturate(x); }
  static float decode(std::uint16_t h) { return bf16_to_float(h); }
  static BlockEncoder block_encoder() { return nullptr; }  // the AVX2 copy of the loop suffices
  static BlockFeedback block_feedback() { return nullptr; }
};

/// The documented message size: 40 + 2n bytes.
std::size_t message_bytes(const Params&, std::uint64_t n, const std::vector<std::uint64_t>&) {
  return kHeaderBytes + 2 * n;
}

std::unique_ptr<Codec> make_bf16(const Params&) { return std::make_unique<HalfCodec<Bf16Traits>>(); }

}  // namespace

const CodecEntry& bf16_entry() {
  static const CodecEntry entry{"bf16", CodecId::kBf16,
                                "bfloat16, round to nearest even, overflow saturates (16 bits/element)",
                                "Kalamkar et al. 2019, A study of BFLOAT16 for deep learning training (arXiv:1905.12322)",
                                {}, &make_bf16, {&message_bytes}};
  return entry;
}

}  // namespace gradzip::quant
