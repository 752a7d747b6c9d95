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
// Decode: y_i = fp16_to_float(h_i) (exact). The decoder first scans the payload and
// refuses any half with exponent field 31 (Inf/NaN: the encoder never writes one) with
// kNonFiniteScale, before writing output. decode_add: acc_i += scale * y_i.
//
// Lossless on values representable in binary16 (x == fp16_to_float(float_to_fp16(x))).
#include "quant/codecs/codecs.h"
#include "quant/half.h"

namespace gradzip::quant {
namespace {

/// fp16 bits of x with overflow saturated to the largest finite half.
inline std::uint16_t fp16_saturate(float x) {
  const std::uint16_t h = float_to_fp16(x);
  return (h & 0x7FFFu) == 0x7C00u ? static_cast<std::uint16_t>((h & 0x8000u) | 0x7BFFu) : h;
}

class Fp16Codec final : public Codec {
 public:
  CodecId id() const override { return CodecId::kFp16; }
  std::string spec() const override { return "fp16"; }

 protected:
  std::size_t params_bytes() const override { return 0; }
  void write_params(std::uint8_t*) const override {}
  std::size_t max_payload_bytes(std::size_t n) const override { return 2 * n; }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext&, PayloadSink* sink) const override {
    std::uint8_t* dst = sink->data;
    std::uint32_t nonfinite = 0;
    for (std::size_t i = 0; i < n; ++i) {
      nonfinite |= (float_bits(grad[i]) & 0x7F800000u) == 0x7F800000u;
      store_le<std::uint16_t>(dst + 2 * i, fp16_saturate(grad[i]));
    }
    if (nonfinite) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
    sink->bytes = 2 * n;
    return Status::Ok();
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    if (m.params_bytes != 0) return Status(Errc::kBadParams, "fp16 takes no params");
    if (m.flags != 0) return Status(Errc::kBadParams, "unknown header flags");
    if (m.payload_bytes != 2 * m.numel) return Status(Errc::kBadLength, "payload is not 2 bytes per element");
    std::uint32_t bad = 0;
    for (std::size_t i = 0; i < m.numel; ++i) bad |= (load_le<std::uint16_t>(m.payload + 2 * i) & 0x7C00u) == 0x7C00u;
    if (bad) return Status(Errc::kNonFiniteScale, "a value in the message is an fp16 Inf or NaN");
    if (accumulate) {
      for (std::size_t i = 0; i < m.numel; ++i) emit<true>(out, i, fp16_to_float(load_le<std::uint16_t>(m.payload + 2 * i)), scale);
    } else {
      for (std::size_t i = 0; i < m.numel; ++i) out[i] = fp16_to_float(load_le<std::uint16_t>(m.payload + 2 * i));
    }
    return Status::Ok();
  }
};

std::unique_ptr<Codec> make_fp16(const Params&) { return std::make_unique<Fp16Codec>(); }

}  // namespace

const CodecEntry& fp16_entry() {
  static const CodecEntry entry{"fp16", CodecId::kFp16,
                                "IEEE binary16, round to nearest even, overflow saturates to +-65504 (16 bits/element)",
                                "IEEE 754-2008 binary16; Micikevicius et al. 2018, mixed precision training (ICLR)",
                                {}, &make_fp16};
  return entry;
}

}  // namespace gradzip::quant
