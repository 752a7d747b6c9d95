// Codec "scaled-sign": the scaled sign compressor of EF-SignSGD (Karimireddy, Rebjock,
// Stich, Jaggi 2019, "Error feedback fixes SignSGD and other gradient compression
// schemes", ICML, Algorithm 1, line 4): C(p) = (||p||_1 / d) * sign(p), per bucket of d
// elements. Biased; meant to be used with the "ef" memory.
//
// Params (4 bytes): u32 LE bucket (1..2^24). Flags: none.
// Payload (quant/codecs/bucketed.h; S = 1 scale per bucket, 1 bit per element):
//   [0, 4 nb)                  a_b = ||x_b||_1 / m_b as float32
//   [4 nb, 4 nb + ceil(n/8))   bit i = 1 iff x_i < 0 (zero is sent as +a_b), LSB-first
// Size: 4*ceil(n/bucket) + ceil(n/8) bytes.
// Encode, bucket b of m elements: a = canonical_sum_abs(bucket) / float(m) (quant/reduce.h
//   order, one fp32 division); a non-finite sum -> kNonFiniteInput (NaN/Inf input or
//   overflow); a > 2^126 -> kNonFiniteInput.
// Decode: y_i = bit_i ? -a_b : +a_b (sign bit set on a_b).
// Validation before output: params size, bucket range, flags == 0, payload length ==
// formula, every a_b finite (kNonFiniteScale), >= 0 (kBadParams), <= 2^126 (kNonFiniteScale).
#include "quant/codecs/bucketed.h"
#include "quant/codecs/codecs.h"
#include "quant/cpu.h"
#include "quant/half.h"
#include "quant/reduce.h"

namespace gradzip::quant {
namespace {

constexpr std::size_t kParamsBytes = bucketed::kBucketOnlyParamsBytes;

template <bool kAcc>
void decode_signs(const MessageView& m, std::uint32_t bucket, float* out, float scale) {
  bucketed::decode<1, 1>(m.payload, m.numel, bucket,
                         [&](const std::uint8_t* __restrict codes, std::size_t cnt, const float* s, std::size_t first) {
                           const std::uint32_t mag = float_bits(s[0]);
                           float* __restrict o = out + first;
                           for (std::size_t j = 0; j < cnt; ++j) {
                             emit<kAcc>(o, j, bits_float(mag | static_cast<std::uint32_t>(codes[j]) << 31), scale);
                           }
                         });
}

class ScaledSignCodec final : public Codec {
 public:
  explicit ScaledSignCodec(std::uint32_t bucket) : bucket_(bucket) {}
  CodecId id() const override { return CodecId::kScaledSign; }
  std::string spec() const override { return "scaled-sign:bucket=" + std::to_string(bucket_); }

 protected:
  std::size_t params_bytes() const override { return kParamsBytes; }
  void write_params(std::uint8_t* dst) const override { store_le<std::uint32_t>(dst, bucket_); }
  std::size_t max_payload_bytes(std::size_t n) const override { return bucketed::payload_bytes(n, bucket_, 1, 1); }
  std::size_t tile_alignment() const override { return bucketed::tile_alignment(bucket_); }
  std::size_t tile_region_bytes(int r, std::size_t c) const override {
    return bucketed::tile_region_bytes(r, c, bucket_, 1, 1);
  }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext& ctx, PayloadSink* sink) const override {
    auto stat = [](const float* xb, std::size_t m, float* s) -> Status {
      const float sum = canonical_sum_abs(xb, m);
      if (!std::isfinite(sum)) return bucketed::nonfinite_bucket(xb, m, "the L1 norm");
      const float a = sum / static_cast<float>(m);
      if (a > bucketed::kMaxScale) return Status(Errc::kNonFiniteInput, "a bucket mean |x| exceeds 2^126");
      s[0] = a;
      return Status::Ok();
    };
    auto quant = [](const float* __restrict xs, std::size_t m, const float*, const std::uint32_t*,
                    std::uint8_t* __restrict codes) {
      for (std::size_t j = 0; j < m; ++j) codes[j] = static_cast<std::uint8_t>(bucketed::is_negative(xs[j]));
    };
    GZ_RETURN_IF_ERROR((bucketed::encode<1, false, 1>(grad, n, bucket_, ctx, sink->data, stat, quant)));
    sink->bytes = bucketed::payload_bytes(n, bucket_, 1, 1);
    return Status::Ok();
  }

  bool has_ef_tile() const override { return true; }
  /// Per bucket: compensate into the scratch while classifying, then the scale (the
  /// encoder's canonical L1 sum over the same values); then per block of codes one loop
  /// for the signs and the residual p - (+-a), and the codes packed.
  AbsClass ef_tile(const EfTile& t, const SeedContext&) const override {
    const std::size_t bucket = bucket_;
    const std::size_t nb = bucketed::num_buckets(t.cnt, bucket);
    std::int32_t mx = 0;
    for (std::size_t b = 0; b < nb; ++b) {
      const std::size_t k = b * bucket;
      const std::size_t m = std::min(bucket, t.cnt - k);
      float sum = 0.0f;
      const std::int32_t bm = with_simd([&]() __attribute__((always_inline)) {
        const std::int32_t r = compensate_max_bits(t.g + k, t.e + k, m, t.p + k);
        if (r < kSafeMaxAbsBits) sum = canonical_sum_abs(t.p + k, m);  // a fixed order: same bits in both copies
        return r;
      });
      mx = bm > mx ? bm : mx;
      if (bm >= kSafeMaxAbsBits) return class_of_max_bits(mx);  // the tile stops: outputs unused
      store_le<float>(t.payload + 4 * b, sum / static_cast<float>(m));
    }
    std::uint8_t codes[bucketed::kCodeBlock];
    for (std::size_t i0 = 0; i0 < t.cnt; i0 += bucketed::kCodeBlock) {
      const std::size_t i1 = std::min(t.cnt, i0 + bucketed::kCodeBlock);
      for (std::size_t s0 = i0; s0 < i1;) {
        const std::size_t b = s0 / bucket;
        const std::size_t s1 = std::min(i1, (b + 1) * bucket);
        const std::uint32_t mag = float_bits(load_le<float>(t.payload + 4 * b));
        const float* ps = t.p + s0;
        float* nexts = t.next + s0;
        std::uint8_t* cs = codes + (s0 - i0);
        const std::size_t len = s1 - s0;
        with_simd([&]() __attribute__((always_inline)) {
          // Local restrict copies: the byte stores would otherwise alias the captures.
          const float* __restrict p = ps;
          float* __restrict next = nexts;
          std::uint8_t* __restrict c = cs;
          const std::uint32_t a = mag;
          const std::size_t count = len;
          for (std::size_t j = 0; j < count; ++j) {
            const std::uint32_t neg = bucketed::is_negative(p[j]);
            c[j] = static_cast<std::uint8_t>(neg);
            next[j] = p[j] - bits_float(a | neg << 31);
          }
        });
        s0 = s1;
      }
      pack_fields<1>(codes, i1 - i0, t.payload + 4 * nb + i0 / 8);
    }
    return class_of_max_bits(mx);
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    std::uint32_t bucket = 0;
    GZ_RETURN_IF_ERROR(bucketed::parse_bucket_only(m, bucketed::kScaledSign, &bucket));
    if (accumulate) {
      decode_signs<true>(m, bucket, out, scale);
    } else {
      decode_signs<false>(m, bucket, out, scale);
    }
    return Status::Ok();
  }

 private:
  std::uint32_t bucket_;
};

/// The documented message size: 40 + 4 + 4*ceil(n/bucket) + ceil(n/8) bytes.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>&) {
  const auto bucket = static_cast<std::uint64_t>(p.get_int("bucket"));
  return kHeaderBytes + 4 + 4 * ((n + bucket - 1) / bucket) + (n + 7) / 8;
}

std::unique_ptr<Codec> make_scaled_sign(const Params& p) {
  return std::make_unique<ScaledSignCodec>(bucketed::bucket_from(p));
}

}  // namespace

const CodecEntry& scaled_sign_entry() {
  static const CodecEntry entry{"scaled-sign", CodecId::kScaledSign,
                                "sign times the bucket's mean |x| (1 bit + 32/bucket); use with ef",
                                "Karimireddy et al. 2019, EF-SignSGD (ICML), Algorithm 1",
                                {bucketed::bucket_param("512")}, &make_scaled_sign, {&message_bytes}};
  return entry;
}

}  // namespace gradzip::quant
