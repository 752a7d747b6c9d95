// quant/codecs/mycodec.cc: linear quantization to 2^bits levels over [-s, s], s = max |x|.
#include <algorithm>
#include <cmath>
#include <vector>

#include "quant/bitpack.h"
#include "quant/codecs/codecs.h"
namespace gradzip::quant {
namespace {
class MyCodec final : public Codec {
 public:
  explicit MyCodec(const Params& p) : bits_(static_cast<unsigned>(p.get_int("bits"))) {}
  CodecId id() const override { return CodecId::kMyCodec; }
  std::string spec() const override { return "mycodec:bits=" + std::to_string(bits_); }

 protected:
  std::size_t params_bytes() const override { return 1; }  // params block: bits
  void write_params(std::uint8_t* dst) const override { dst[0] = static_cast<std::uint8_t>(bits_); }
  // Payload: fp32 scale s, then n codes of `bits` bits (quant/bitpack.h bit order).
  std::size_t max_payload_bytes(std::size_t n) const override { return 4 + packed_bytes(n, bits_); }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext&, PayloadSink* sink) const override {
    if (!all_finite(grad, n)) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
    float s = 0.0f;
    for (std::size_t i = 0; i < n; ++i) s = std::max(s, std::fabs(grad[i]));
    store_le<float>(sink->data, s);
    const float levels = static_cast<float>((1u << bits_) - 1);
    std::uint8_t* codes = sink->data + 4;
    std::fill(codes, codes + packed_bytes(n, bits_), std::uint8_t{0});
    for (std::size_t i = 0; i < n; ++i) {
      const float q = s > 0.0f ? std::nearbyint((grad[i] / s + 1.0f) * 0.5f * levels) : 0.0f;
      const std::size_t code = static_cast<std::size_t>(q);
      for (unsigned b = 0; b < bits_; ++b) {
        const std::size_t bit = i * bits_ + b;
        if ((code >> b) & 1u) codes[bit / 8] = static_cast<std::uint8_t>(codes[bit / 8] | (1u << (bit % 8)));
      }
    }
    sink->bytes = max_payload_bytes(n);
    return Status::Ok();
  }

  // Reads bits from the message (not bits_), validates everything, then writes.
  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    if (m.params_bytes != 1) return Status(Errc::kBadParams, "mycodec takes 1 params byte");
    const unsigned bits = m.params[0];
    if (bits < 1 || bits > 8) return Status(Errc::kBadParams, "bits must be 1..8");
    if (m.flags != 0) return Status(Errc::kBadParams, "unknown header flags");
    if (m.payload_bytes != 4 + packed_bytes(m.numel, bits)) return Status(Errc::kBadLength, "bad payload length");
    const float s = load_le<float>(m.payload);
    if (!std::isfinite(s) || s < 0.0f) return Status(Errc::kNonFiniteScale, "scale is not finite and >= 0");
    const float levels = static_cast<float>((1u << bits) - 1);
    const std::uint8_t* codes = m.payload + 4;
    for (std::size_t i = 0; i < m.numel; ++i) {
      unsigned code = 0;
      for (unsigned b = 0; b < bits; ++b) {
        const std::size_t bit = i * bits + b;
        code |= ((codes[bit / 8] >> (bit % 8)) & 1u) << b;
      }
      const float v = (2.0f * static_cast<float>(code) / levels - 1.0f) * s;
      if (accumulate) {
        emit<true>(out, i, v, scale);
      } else {
        emit<false>(out, i, v, scale);
      }
    }
    return Status::Ok();
  }

 private:
  unsigned bits_;
};

// The documented message size: header, 1 params byte, the fp32 scale, n codes of bits bits.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>&) {
  return kHeaderBytes + 1 + 4 + (n * static_cast<std::uint64_t>(p.get_int("bits")) + 7) / 8;
}
}  // namespace
const CodecEntry& mycodec_entry() {
  static const CodecEntry entry{"mycodec", CodecId::kMyCodec, "bits-bit linear levels over [-max|x|, max|x|]",
                                "Author et al. 2024, venue",
                                {{"bits", ParamKind::kInt, "4", 1, 8, {}, "bits per element"}},
                                [](const Params& p) -> std::unique_ptr<Codec> { return std::make_unique<MyCodec>(p); },
                                {&message_bytes}};
  return entry;
}
}  // namespace gradzip::quant
