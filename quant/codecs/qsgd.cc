// Codec "qsgd": QSGD stochastic quantization (Alistarh, Grubic, Li, Tomioka, Vojnovic
// 2017, "QSGD: Communication-efficient SGD via gradient quantization and encoding",
// NeurIPS, Section 3.1, eq. (1)-(2)), per bucket, with s = 2^(bits-1) - 1 levels:
//   Q_s(v_i) = ||v|| * sgn(v_i) * xi_i(v, s),
//   xi_i = (l + 1)/s with probability p = |v_i| s / ||v|| - l, else l/s,
//   where l = floor(|v_i| s / ||v||).
// E[Q_s(v)] = v (unbiased) and E||Q_s(v) - v||^2 <= min(n/s^2, sqrt(n)/s) ||v||^2 (Lemma 3.1).
// Instead of the paper's Elias coding, sign and level are bit-packed at exactly `bits`
// bits per element.
//
// Params (8 bytes): u8 bits (2..8) | u8 norm (0 = l2, 1 = max) | u16 reserved (0) |
//                   u32 LE bucket (1..2^24).
// Flags: none.
// Payload (quant/codecs/bucketed.h; S = 1 scale per bucket, `bits` bits per element):
//   [0, 4 nb)              w_b, the bucket norm, float32
//   [4 nb, 4 nb + ceil(n*bits/8)) field of element i = level_i | sign_i << (bits-1),
//                          packed LSB-first (quant/bitpack.h): level in the low bits-1
//                          bits, the sign bit on top; sign_i = bit 31 of x_i (so -0.0
//                          gives sign 1, level 0, decoded as -0.0).
// Size: 4*ceil(n/bucket) + ceil(n*bits/8) bytes.
//
// Encode, bucket b (m elements), s = 2^(bits-1) - 1 as float (exact):
//   norm=l2:  w = sqrtf(canonical_sum_sq(bucket)) (quant/reduce.h order); a non-finite
//             sum -> kNonFiniteInput (NaN/Inf input, or sum of squares overflow).
//   norm=max: w = max_abs(bucket); non-finite or > 2^126 -> kNonFiniteInput.
//   w < 2^-120 -> w written as 0, inv = 0 (every level 0); else inv = s / w (fp32
//   division, once per bucket; the GPU must use IEEE division, not a reciprocal).
//   Element i: r = min(|x_i| * inv, s); l = floorf(r) (= truncation, r >= 0); p = r - l (exact);
//   u = uniform01(R_i) = float(R_i >> 8) * 2^-24 where R_i = word i % 4 of
//   random_block(ctx, RandomStream::kRounding, i / 4), i = element index in the message;
//   level = l + (u < p ? 1 : 0). (P[level = l+1] = ceil(p 2^24)/2^24: exact to 2^-24.)
// Decode: step = w / s (fp32 division, per bucket), y_i = float(level_i) * step, with the
//   sign bit set when sign_i = 1. Every field value is a valid (sign, level) pair.
// Validation before output: params size, bits 2..8, norm 0/1, reserved 0, bucket range,
// flags == 0, payload length == formula, every w finite (kNonFiniteScale), >= 0
// (kBadParams), <= 2^126 (kNonFiniteScale).
#include "quant/codecs/bucketed.h"
#include "quant/codecs/bucketed_ef.h"
#include "quant/codecs/codecs.h"
#include "quant/codecs/qsgd.h"
#include "quant/half.h"
#include "quant/reduce.h"

namespace gradzip::quant {
namespace {

using qsgd::kParamsBytes;
using qsgd::Norm;
using QsgdParams = qsgd::Settings;

Status bucket_norm(Norm norm, const float* xb, std::size_t m, float* s) {
  float w;
  if (norm == Norm::kL2) {
    const float sum = canonical_sum_sq(xb, m);
    if (!std::isfinite(sum)) return bucketed::nonfinite_bucket(xb, m, "the sum of squares");
    w = std::sqrt(sum);
  } else {
    w = bucketed::max_abs_bits(xb, m);
    if (!std::isfinite(w)) return bucketed::nonfinite_bucket(xb, m, "max |x|");
    if (w > bucketed::kMaxScale) return Status(Errc::kNonFiniteInput, "a gradient element exceeds 2^126");
  }
  s[0] = w < bucketed::kMinScale ? 0.0f : w;
  return Status::Ok();
}

template <int kBits>
Status encode_bits(const QsgdParams& p, const float* grad, std::size_t n, const SeedContext& ctx,
                   std::uint8_t* payload) {
  constexpr float kLevels = static_cast<float>((1 << (kBits - 1)) - 1);
  auto stat = [&p](const float* xb, std::size_t m, float* s) { return bucket_norm(p.norm, xb, m, s); };
  auto quant = [](const float* __restrict xs, std::size_t m, const float* s,
                  const std::uint32_t* __restrict rnd, std::uint8_t* __restrict codes) {
    const float inv = s[0] > 0.0f ? kLevels / s[0] : 0.0f;
    for (std::size_t j = 0; j < m; ++j) {
      const std::uint32_t bits = float_bits(xs[j]);
      float r = bits_float(bits & 0x7FFFFFFFu) * inv;
      r = bucketed::min_nonneg(r, kLevels);
      // floor(r) by truncation (r >= 0); r - l is exact.
      const auto li = static_cast<std::int32_t>(r);
      const float frac = r - static_cast<float>(li);
      const std::uint32_t level = static_cast<std::uint32_t>(li) + bucketed::less_nonneg(bucketed::uniform24(rnd[j]), frac);
      codes[j] = static_cast<std::uint8_t>(level | ((bits >> 31) << (kBits - 1)));
    }
  };
  return bucketed::encode<kBits, true, 1>(grad, n, p.bucket, ctx, payload, stat, quant);
}

/// The fused EF kernel (bucketed::ef_tile): the bucket norm of p (as bucket_norm; the
/// max norm is the largest |p| the compensation found), then per element the stochastic
/// level of the encoder and its decoded value w / s * level with p's sign.
template <int kBits>
AbsClass ef_tile_bits(Norm norm, std::size_t bucket, const EfTile& t, const SeedContext& ctx) {
  static constexpr float kLevels = static_cast<float>((1 << (kBits - 1)) - 1);
  auto stat = [norm](const float* __restrict p, std::size_t m, std::int32_t max_bits, float* s)
                  __attribute__((always_inline)) {
    // |p| < 2^50: the sum of squares is finite, the max below 2^126.
    const float w = norm == Norm::kL2 ? std::sqrt(canonical_sum_sq(p, m))
                                      : bucketed::bitsf(static_cast<std::uint32_t>(max_bits));
    s[0] = w < bucketed::kMinScale ? 0.0f : w;
  };
  auto coder = [](const float* s) __attribute__((always_inline)) {
    const float inv = s[0] > 0.0f ? kLevels / s[0] : 0.0f;
    const float step = s[0] / kLevels;
    return [inv, step](float p, std::uint32_t rnd) __attribute__((always_inline)) {
      const std::uint32_t bits = float_bits(p);
      const float r = bucketed::min_nonneg(bits_float(bits & 0x7FFFFFFFu) * inv, kLevels);
      const auto li = static_cast<std::int32_t>(r);
      const float frac = r - static_cast<float>(li);
      const std::uint32_t level =
          static_cast<std::uint32_t>(li) + bucketed::less_nonneg(bucketed::uniform24(rnd), frac);
      const float mag = static_cast<float>(static_cast<std::int32_t>(level)) * step;
      const std::uint32_t sign = bits >> 31;
      return bucketed::Coded{level | sign << (kBits - 1), bits_float(float_bits(mag) | sign << 31)};
    };
  };
  return bucketed::ef_tile<kBits, true, 1>(t, ctx, bucket, stat, coder);
}

template <int kBits, bool kAcc>
void decode_bits(const MessageView& m, std::uint32_t bucket, float* out, float scale) {
  constexpr float kLevels = static_cast<float>((1 << (kBits - 1)) - 1);
  constexpr std::uint8_t kLevelMask = (1u << (kBits - 1)) - 1;
  bucketed::decode<kBits, 1>(m.payload, m.numel, bucket,
                             [&](const std::uint8_t* __restrict codes, std::size_t cnt, const float* s, std::size_t first) {
                               const float step = s[0] / kLevels;
                               float* __restrict o = out + first;
                               for (std::size_t j = 0; j < cnt; ++j) {
                                 const float mag = static_cast<float>(codes[j] & kLevelMask) * step;
                                 const std::uint32_t sign = static_cast<std::uint32_t>(codes[j] >> (kBits - 1)) << 31;
                                 emit<kAcc>(o, j, bits_float(float_bits(mag) | sign), scale);
                               }
                             });
}

class QsgdCodec final : public Codec {
 public:
  explicit QsgdCodec(QsgdParams p) : p_(p) {}
  CodecId id() const override { return CodecId::kQsgd; }
  std::string spec() const override {
    return "qsgd:bits=" + std::to_string(p_.bits) + ",bucket=" + std::to_string(p_.bucket) +
           ",norm=" + (p_.norm == Norm::kL2 ? "l2" : "max");
  }
  bool unbiased() const override { return true; }

 protected:
  std::size_t params_bytes() const override { return kParamsBytes; }
  void write_params(std::uint8_t* dst) const override { qsgd::write_params(p_, dst); }
  std::size_t max_payload_bytes(std::size_t n) const override {
    return bucketed::payload_bytes(n, p_.bucket, 1, p_.bits);
  }
  std::size_t tile_alignment() const override { return bucketed::tile_alignment(p_.bucket); }
  std::size_t tile_region_bytes(int r, std::size_t c) const override {
    return bucketed::tile_region_bytes(r, c, p_.bucket, 1, p_.bits);
  }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext& ctx, PayloadSink* sink) const override {
    switch (p_.bits) {
      case 2: GZ_RETURN_IF_ERROR(encode_bits<2>(p_, grad, n, ctx, sink->data)); break;
      case 3: GZ_RETURN_IF_ERROR(encode_bits<3>(p_, grad, n, ctx, sink->data)); break;
      case 4: GZ_RETURN_IF_ERROR(encode_bits<4>(p_, grad, n, ctx, sink->data)); break;
      case 5: GZ_RETURN_IF_ERROR(encode_bits<5>(p_, grad, n, ctx, sink->data)); break;
      case 6: GZ_RETURN_IF_ERROR(encode_bits<6>(p_, grad, n, ctx, sink->data)); break;
      case 7: GZ_RETURN_IF_ERROR(encode_bits<7>(p_, grad, n, ctx, sink->data)); break;
      case 8: GZ_RETURN_IF_ERROR(encode_bits<8>(p_, grad, n, ctx, sink->data)); break;
      default: return Status(Errc::kInvalidArgument, "qsgd: bits outside 2..8");
    }
    sink->bytes = bucketed::payload_bytes(n, p_.bucket, 1, p_.bits);
    return Status::Ok();
  }

  bool has_ef_tile() const override { return true; }
  bool ef_tile_scales() const override { return true; }
  AbsClass ef_tile(const EfTile& t, const SeedContext& ctx) const override {
    switch (p_.bits) {
      case 2: return ef_tile_bits<2>(p_.norm, p_.bucket, t, ctx);
      case 3: return ef_tile_bits<3>(p_.norm, p_.bucket, t, ctx);
      case 4: return ef_tile_bits<4>(p_.norm, p_.bucket, t, ctx);
      case 5: return ef_tile_bits<5>(p_.norm, p_.bucket, t, ctx);
      case 6: return ef_tile_bits<6>(p_.norm, p_.bucket, t, ctx);
      case 7: return ef_tile_bits<7>(p_.norm, p_.bucket, t, ctx);
      default: return ef_tile_bits<8>(p_.norm, p_.bucket, t, ctx);
    }
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    QsgdParams p;
    GZ_RETURN_IF_ERROR(qsgd::parse_message(m, &p));
    if (accumulate) {
      dispatch<true>(p.bits, m, p.bucket, out, scale);
    } else {
      dispatch<false>(p.bits, m, p.bucket, out, scale);
    }
    return Status::Ok();
  }

 private:
  template <bool kAcc>
  static void dispatch(unsigned bits, const MessageView& m, std::uint32_t bucket, float* out, float scale) {
    switch (bits) {
      case 2: decode_bits<2, kAcc>(m, bucket, out, scale); break;
      case 3: decode_bits<3, kAcc>(m, bucket, out, scale); break;
      case 4: decode_bits<4, kAcc>(m, bucket, out, scale); break;
      case 5: decode_bits<5, kAcc>(m, bucket, out, scale); break;
      case 6: decode_bits<6, kAcc>(m, bucket, out, scale); break;
      case 7: decode_bits<7, kAcc>(m, bucket, out, scale); break;
      default: decode_bits<8, kAcc>(m, bucket, out, scale); break;
    }
  }

  QsgdParams p_;
};

/// The documented message size: 40 + 8 + 4*ceil(n/bucket) + ceil(n*bits/8) bytes.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>&) {
  const auto bucket = static_cast<std::uint64_t>(p.get_int("bucket"));
  const auto bits = static_cast<std::uint64_t>(p.get_int("bits"));
  return kHeaderBytes + 8 + 4 * ((n + bucket - 1) / bucket) + (n * bits + 7) / 8;
}

/// Alistarh et al. 2017, Lemma 3.1: omega = min(d/s^2, sqrt(d)/s) for a bucket of d
/// elements and s = 2^(bits-1)-1 levels (the l2 norm; the max norm is <= it, so the same
/// bound holds).
double variance_factor(const Params& p) {
  const double d = static_cast<double>(p.get_int("bucket"));
  const double s = static_cast<double>((1 << (p.get_int("bits") - 1)) - 1);
  return std::min(d / (s * s), std::sqrt(d) / s);
}

std::unique_ptr<Codec> make_qsgd(const Params& p) { return std::make_unique<QsgdCodec>(qsgd::from_params(p)); }

}  // namespace

const CodecEntry& qsgd_entry() {
  static const CodecEntry entry{
      "qsgd", CodecId::kQsgd,
      "unbiased stochastic quantization to 2^(bits-1)-1 levels of the bucket norm (bits/element + 32/bucket)",
      "Alistarh et al. 2017, QSGD (NeurIPS), Sec. 3.1 eq. (1)",
      {{"bits", ParamKind::kInt, "4", 2, 8, {}, "bits per element (sign + level)"},
       bucketed::bucket_param("512"),
       {"norm", ParamKind::kEnum, "l2", 0, 0, {"l2", "max"}, "bucket norm the levels are scaled to"}},
      &make_qsgd, {&message_bytes},
      {&variance_factor, "min(bucket/s^2, sqrt(bucket)/s), s = 2^(bits-1)-1 (Lemma 3.1)"}};
  return entry;
}

}  // namespace gradzip::quant
