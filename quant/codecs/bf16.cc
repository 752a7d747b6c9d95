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
#include <algorithm>
#include <cstring>

#include "quant/codecs/codecs.h"
#include "quant/half.h"

namespace gradzip::quant {
namespace {

constexpr std::size_t kBlock = 2048;

/// bfloat16 bits of x with overflow saturated to the largest finite bfloat16.
inline std::uint16_t bf16_saturate(float x) {
  const std::uint16_t h = float_to_bf16(x);
  return (h & 0x7FFFu) == 0x7F80u ? static_cast<std::uint16_t>((h & 0x8000u) | 0x7F7Fu) : h;
}

class Bf16Codec final : public Codec {
 public:
  CodecId id() const override { return CodecId::kBf16; }
  std::string spec() const override { return "bf16"; }

 protected:
  std::size_t params_bytes() const override { return 0; }
  void write_params(std::uint8_t*) const override {}
  std::size_t max_payload_bytes(std::size_t n) const override { return 2 * n; }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext&, PayloadSink* sink) const override {
    // Blocks through a local array: the conversion loop then has no aliasing between
    // the float input and the byte output and vectorizes.
    const float* __restrict x = grad;
    std::uint32_t nonfinite = 0;
    std::uint16_t h[kBlock];
    for (std::size_t i0 = 0; i0 < n; i0 += kBlock) {
      const std::size_t cnt = std::min(kBlock, n - i0);
      for (std::size_t j = 0; j < cnt; ++j) {
        nonfinite |= (float_bits(x[i0 + j]) & 0x7F800000u) == 0x7F800000u;
        h[j] = bf16_saturate(x[i0 + j]);
      }
      std::memcpy(sink->data + 2 * i0, h, 2 * cnt);
    }
    if (nonfinite) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
    sink->bytes = 2 * n;
    return Status::Ok();
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    if (m.params_bytes != 0) return Status(Errc::kBadParams, "bf16 takes no params");
    if (m.flags != 0) return Status(Errc::kBadParams, "unknown header flags");
    if (m.payload_bytes != 2 * m.numel) return Status(Errc::kBadLength, "payload is not 2 bytes per element");
    std::uint32_t bad = 0;
    for (std::size_t i = 0; i < m.numel; ++i) bad |= (load_le<std::uint16_t>(m.payload + 2 * i) & 0x7F80u) == 0x7F80u;
    if (bad) return Status(Errc::kNonFiniteScale, "a value in the message is a bfloat16 Inf or NaN");
    if (accumulate) {
      run<true>(m, out, scale);
    } else {
      run<false>(m, out, scale);
    }
    return Status::Ok();
  }

 private:
  template <bool kAcc>
  static void run(const MessageView& m, float* out, float scale) {
    std::uint16_t h[kBlock];
    for (std::size_t i0 = 0; i0 < m.numel; i0 += kBlock) {
      const std::size_t cnt = std::min<std::size_t>(kBlock, m.numel - i0);
      std::memcpy(h, m.payload + 2 * i0, 2 * cnt);
      float* __restrict o = out + i0;
      for (std::size_t j = 0; j < cnt; ++j) emit<kAcc>(o, j, bf16_to_float(h[j]), scale);
    }
  }
};

std::unique_ptr<Codec> make_bf16(const Params&) { return std::make_unique<Bf16Codec>(); }

}  // namespace

const CodecEntry& bf16_entry() {
  static const CodecEntry entry{"bf16", CodecId::kBf16,
                                "bfloat16, round to nearest even, overflow saturates (16 bits/element)",
                                "Kalamkar et al. 2019, A study of BFLOAT16 for deep learning training (arXiv:1905.12322)",
                                {}, &make_bf16};
  return entry;
}

}  // namespace gradzip::quant
