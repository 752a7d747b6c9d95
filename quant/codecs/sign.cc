// Codec "sign": signSGD (Bernstein, Wang, Azizzadenesheli, Anandkumar 2018, "signSGD:
// compressed optimisation for non-convex problems", ICML, Algorithm 1): each worker sends
// sign(g), 1 bit per element. Aggregation by majority vote: quant/codecs/sign.h.
//
// Params: none (params_bytes = 0). Flags: none.
// Payload: ceil(n/8) bytes; bit (i % 8) of byte i / 8 (LSB-first, quant/bitpack.h with
//   1-bit fields) is 1 iff x_i < 0. Zero (and -0.0) is sent as +1. Unused high bits of
//   the last byte are 0 (ignored by the decoder).
// Size: ceil(n/8) bytes.
// Encode: NaN/Inf in x -> kNonFiniteInput. Decode: y_i = bit ? -1.0f : +1.0f.
// Validation before output: params size 0, flags == 0, payload length == ceil(n/8).
#include "quant/codecs/sign.h"

#include <algorithm>

#include "quant/bitpack.h"
#include "quant/codecs/bucketed.h"
#include "quant/codecs/codecs.h"
#include "quant/cpu.h"
#include "quant/half.h"

namespace gradzip::quant {

void majority_vote(float* acc, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const float a = acc[i];
    acc[i] = a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : 0.0f);  // 0, -0 and NaN: no vote
  }
}

namespace {

constexpr std::size_t kBlock = 1024;

class SignCodec final : public Codec {
 public:
  CodecId id() const override { return CodecId::kSign; }
  std::string spec() const override { return "sign"; }

 protected:
  std::size_t params_bytes() const override { return 0; }
  void write_params(std::uint8_t*) const override {}
  std::size_t max_payload_bytes(std::size_t n) const override { return packed_bytes(n, 1); }
  std::size_t tile_alignment() const override { return 8; }
  std::size_t tile_region_bytes(int r, std::size_t c) const override { return r == 0 ? packed_bytes(c, 1) : 0; }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext&, PayloadSink* sink) const override {
    const float* __restrict x = grad;
    std::uint8_t codes[kBlock];
    std::uint32_t nonfinite = 0;
    for (std::size_t i0 = 0; i0 < n; i0 += kBlock) {
      const std::size_t cnt = std::min(kBlock, n - i0);
      for (std::size_t j = 0; j < cnt; ++j) {
        nonfinite |= (float_bits(x[i0 + j]) & 0x7F800000u) == 0x7F800000u;
        codes[j] = static_cast<std::uint8_t>(bucketed::is_negative(x[i0 + j]));
      }
      pack_fields<1>(codes, cnt, sink->data + i0 / 8);
    }
    if (nonfinite) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
    sink->bytes = packed_bytes(n, 1);
    return Status::Ok();
  }

  bool has_ef_tile() const override { return true; }
  /// Per block: compensate, classify, the sign codes and the residual p - (+-1) in one
  /// loop, then the codes packed.
  AbsClass ef_tile(const EfTile& t, const SeedContext&) const override {
    std::int32_t mx = 0;
    std::uint8_t codes[kBlock];
    for (std::size_t i0 = 0; i0 < t.cnt; i0 += kBlock) {
      const std::size_t cnt = std::min(kBlock, t.cnt - i0);
      const float* gi = t.g + i0;
      const float* ei = t.e + i0;
      float* nexti = t.next + i0;
      const std::int32_t m = with_simd([&]() __attribute__((always_inline)) {
        // Local restrict copies: the byte stores would otherwise alias the captures.
        const float* __restrict g = gi;
        const float* __restrict e = ei;
        float* __restrict next = nexti;
        std::uint8_t* __restrict c_out = codes;
        const std::size_t count = cnt;
        std::int32_t block_max = 0;
        for (std::size_t j = 0; j < count; ++j) {
          const float p = compensate_one(g[j], e[j], &block_max);
          const std::uint32_t c = bucketed::is_negative(p);
          c_out[j] = static_cast<std::uint8_t>(c);
          next[j] = p - bits_float(0x3F800000u | c << 31);
        }
        return block_max;
      });
      mx = m > mx ? m : mx;
      pack_fields<1>(codes, cnt, t.payload + i0 / 8);
    }
    return class_of_max_bits(mx);
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    GZ_RETURN_IF_ERROR(sign::check_message(m));
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
    std::uint8_t codes[kBlock];
    for (std::size_t i0 = 0; i0 < m.numel; i0 += kBlock) {
      const std::size_t cnt = std::min<std::size_t>(kBlock, m.numel - i0);
      unpack_fields<1>(m.payload + i0 / 8, cnt, codes);
      float* __restrict o = out + i0;
      for (std::size_t j = 0; j < cnt; ++j) {
        emit<kAcc>(o, j, bits_float(0x3F800000u | static_cast<std::uint32_t>(codes[j]) << 31), scale);
      }
    }
  }
};

/// The documented message size: 40 + ceil(n/8) bytes.
std::size_t message_bytes(const Params&, std::uint64_t n, const std::vector<std::uint64_t>&) {
  return kHeaderBytes + (n + 7) / 8;
}

std::unique_ptr<Codec> make_sign(const Params&) { return std::make_unique<SignCodec>(); }

}  // namespace

const CodecEntry& sign_entry() {
  static const CodecEntry entry{"sign", CodecId::kSign,
                                "sign of each element, decoded as +-1; server: majority vote (1 bit/element)",
                                "Bernstein et al. 2018, signSGD (ICML); majority vote: Bernstein et al. 2019 (ICLR)",
                                {}, &make_sign, {&message_bytes}};
  return entry;
}

}  // namespace gradzip::quant
