// Codec "int8": uniform 8-bit quantization with a per-bucket max-abs scale,
// round to nearest (deterministic). The classic linear quantizer used e.g. by
// Dettmers 2016 ("8-bit approximations for parallelism in deep learning", ICLR) for
// gradients: q = round(x * 127 / max|x|).
//
// Params (4 bytes): u32 LE bucket (elements per bucket, 1..2^24).  Flags: none.
// Payload (see quant/codecs/bucketed.h; S = 1 scale per bucket, 8 bits per element):
//   [0, 4 nb)        m_b = max_{i in bucket b} |x_i| as float32 (exact, order-free)
//   [4 nb, 4 nb + n) q_i as int8 (two's complement), element i at byte 4 nb + i
// Size: 4*ceil(n/bucket) + n bytes.
//
// Encode, bucket b with m = m_b:
//   m NaN/Inf -> kNonFiniteInput; m > 2^126 -> kNonFiniteInput;
//   m < 2^-120 -> m is written as 0 and every q_i = 0;
//   otherwise inv = 127.0f / m (one fp32 division per bucket) and
//   q_i = rne(x_i * inv), clamped to [-127, 127] (the clamp never triggers: |x_i * inv|
//   <= 127*(1+2^-23)^2), where rne rounds to nearest, ties to even, computed in fp32 as
//   (y + 0x1.8p23f) - 0x1.8p23f (== __float2int_rn on the GPU for |y| < 2^22).
// Decode: step = m / 127.0f (fp32 division, once per bucket), y_i = float(q_i) * step.
//   q = -128 is never written by the encoder but is accepted (decodes to -128*step).
// Validation before output: params size, bucket range, flags == 0, payload length ==
// formula, every m finite (kNonFiniteScale), >= 0 (kBadParams), <= 2^126 (kNonFiniteScale).
#include "quant/codecs/bucketed.h"
#include "quant/codecs/codecs.h"
#include "quant/cpu.h"

namespace gradzip::quant {
namespace {

constexpr std::size_t kParamsBytes = bucketed::kBucketOnlyParamsBytes;

/// Round to nearest, ties to even, for |y| < 2^22 (no dependence on the FP environment's
/// rint implementation; the same two additions on CPU and GPU).
inline float round_even(float y) {
  constexpr float kMagic = 0x1.8p23f;
  return (y + kMagic) - kMagic;
}

class Int8Codec final : public Codec {
 public:
  explicit Int8Codec(std::uint32_t bucket) : bucket_(bucket) {}
  CodecId id() const override { return CodecId::kInt8; }
  std::string spec() const override { return "int8:bucket=" + std::to_string(bucket_); }

 protected:
  std::size_t params_bytes() const override { return kParamsBytes; }
  void write_params(std::uint8_t* dst) const override { store_le<std::uint32_t>(dst, bucket_); }
  std::size_t max_payload_bytes(std::size_t n) const override { return bucketed::payload_bytes(n, bucket_, 1, 8); }
  std::size_t tile_alignment() const override { return bucketed::tile_alignment(bucket_); }
  std::size_t tile_region_bytes(int r, std::size_t c) const override {
    return bucketed::tile_region_bytes(r, c, bucket_, 1, 8);
  }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext& ctx, PayloadSink* sink) const override {
    auto stat = [](const float* xb, std::size_t m, float* s) -> Status {
      const float mx = bucketed::max_abs_bits(xb, m);
      if (!std::isfinite(mx)) return bucketed::nonfinite_bucket(xb, m, "max |x|");
      if (mx > bucketed::kMaxScale) return Status(Errc::kNonFiniteInput, "a gradient element exceeds 2^126");
      s[0] = mx < bucketed::kMinScale ? 0.0f : mx;
      return Status::Ok();
    };
    auto quant = [](const float* __restrict xs, std::size_t m, const float* s, const std::uint32_t*,
                    std::uint8_t* __restrict codes) {
      const float inv = s[0] > 0.0f ? 127.0f / s[0] : 0.0f;
      for (std::size_t j = 0; j < m; ++j) {
        auto q = static_cast<std::int32_t>(round_even(xs[j] * inv));  // exact: |q| <= 128
        q = q > 127 ? 127 : (q < -127 ? -127 : q);
        codes[j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(q));
      }
    };
    GZ_RETURN_IF_ERROR((bucketed::encode<8, false, 1>(grad, n, bucket_, ctx, sink->data, stat, quant)));
    sink->bytes = bucketed::payload_bytes(n, bucket_, 1, 8);
    return Status::Ok();
  }

  bool has_ef_tile() const override { return true; }
  /// Per bucket: compensate into the scratch while finding max |p| (the scale), then one
  /// loop that quantizes, dequantizes (decode's step = m / 127) and writes the residual.
  AbsClass ef_tile(const EfTile& t, const SeedContext&) const override {
    const std::size_t bucket = bucket_;
    const std::size_t nb = bucketed::num_buckets(t.cnt, bucket);
    std::uint8_t* __restrict codes = t.payload + 4 * nb;
    const std::int32_t worst = with_simd([&]() __attribute__((always_inline)) {
      std::int32_t all = 0;
      for (std::size_t b = 0; b < nb; ++b) {
        const std::size_t k = b * bucket;
        const std::size_t m = std::min(bucket, t.cnt - k);
        const float* __restrict p = t.p + k;
        const std::int32_t mx = compensate_max_bits(t.g + k, t.e + k, m, t.p + k);
        all = mx > all ? mx : all;
        if (mx >= kSafeMaxAbsBits) continue;  // the verdict stops the tile: outputs unused
        const float s = bucketed::bitsf(static_cast<std::uint32_t>(mx)) < bucketed::kMinScale
                            ? 0.0f
                            : bucketed::bitsf(static_cast<std::uint32_t>(mx));
        store_le<float>(t.payload + 4 * b, s);
        const float inv = s > 0.0f ? 127.0f / s : 0.0f;
        const float step = s / 127.0f;
        std::uint8_t* __restrict c = codes + k;
        float* __restrict next = t.next + k;
        for (std::size_t j = 0; j < m; ++j) {
          auto q = static_cast<std::int32_t>(round_even(p[j] * inv));
          q = q > 127 ? 127 : (q < -127 ? -127 : q);
          c[j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(q));
          next[j] = p[j] - static_cast<float>(q) * step;
        }
      }
      return all;
    });
    return class_of_max_bits(worst);
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    std::uint32_t bucket = 0;
    GZ_RETURN_IF_ERROR(bucketed::parse_bucket_only(m, bucketed::kInt8, &bucket));
    if (accumulate) {
      run<true>(m, bucket, out, scale);
    } else {
      run<false>(m, bucket, out, scale);
    }
    return Status::Ok();
  }

 private:
  template <bool kAcc>
  static void run(const MessageView& m, std::size_t bucket, float* out, float scale) {
    bucketed::decode<8, 1>(m.payload, m.numel, bucket,
                           [&](const std::uint8_t* __restrict codes, std::size_t cnt, const float* s, std::size_t first) {
                             const float step = s[0] / 127.0f;
                             float* __restrict o = out + first;
                             for (std::size_t j = 0; j < cnt; ++j) {
                               const float v = static_cast<float>(static_cast<std::int8_t>(codes[j])) * step;
                               emit<kAcc>(o, j, v, scale);
                             }
                           });
  }

  std::uint32_t bucket_;
};

/// The documented message size: 40 + 4 + 4*ceil(n/bucket) + n bytes.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>&) {
  const auto bucket = static_cast<std::uint64_t>(p.get_int("bucket"));
  return kHeaderBytes + 4 + 4 * ((n + bucket - 1) / bucket) + n;
}

std::unique_ptr<Codec> make_int8(const Params& p) {
  return std::make_unique<Int8Codec>(bucketed::bucket_from(p));
}

}  // namespace

const CodecEntry& int8_entry() {
  static const CodecEntry entry{"int8", CodecId::kInt8,
                                "uniform int8, per-bucket max-abs scale, round to nearest (8 bits + 32/bucket)",
                                "Dettmers 2016, 8-bit approximations for parallelism in deep learning (ICLR)",
                                {bucketed::bucket_param("512")}, &make_int8, {&message_bytes}};
  return entry;
}

}  // namespace gradzip::quant
