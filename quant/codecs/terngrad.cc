// Codec "terngrad": ternary stochastic gradients (Wen, Xu, Yan, Wu, Wang, Chen, Li 2017,
// "TernGrad: Ternary gradients to reduce communication in distributed deep learning",
// NeurIPS, eq. (3)-(4) with per-bucket scalers and the gradient clipping of Sec. 3.3):
//   g~_i = s * sgn(g_i) * b_i,   b_i ~ Bernoulli(|g_i| / s),   s = max_i |g_i|,
// which is unbiased: E[g~] = g. With clipping (param clip = c > 0), each g_i is first
// clipped to [-c*sigma, c*sigma], i.e. s = min(max|g|, c*sigma) and b_i = 1 whenever
// |g_i| >= s (clipping biases the estimate; the paper uses c = 2.5).
//
// Params (8 bytes): u32 LE bucket (1..2^24) | f32 LE clip (finite, >= 0; 0 = no clipping).
// Flags: none.
// Payload (quant/codecs/bucketed.h; S = 1 scale per bucket, 2 bits per element):
//   [0, 4 nb)                   s_b as float32
//   [4 nb, 4 nb + ceil(n/4))    field of element i = b_i | sign_i << 1, packed LSB-first
//                               (element i in bits 2(i%4), 2(i%4)+1 of byte i/4);
//                               sign_i = bit 31 of g_i. Field values: 00 -> +0,
//                               01 -> +s, 10 -> -0, 11 -> -s.
// Size: 4*ceil(n/bucket) + ceil(n/4) bytes (the same layout as qsgd bits=2).
//
// Encode, bucket b of m elements:
//   mx = max_abs(bucket); non-finite or > 2^126 -> kNonFiniteInput.
//   clip > 0: sigma = sqrtf(canonical_sum_sq(bucket) / float(m)) (quant/reduce.h order;
//     sigma is the root mean square, the standard deviation of the paper's zero-mean
//     gradient model, so a constant bucket is not clipped to 0); s = min(mx, float(c) *
//     sigma) in fp32. clip == 0: s = mx.
//   s < 2^-120 -> s written as 0 and every b_i = 0; else inv = 1.0f / s (fp32 division).
//   Element i: p = |g_i| * inv; u = uniform01(R_i) with R_i = word i % 4 of
//   random_block(ctx, RandomStream::kRounding, i / 4) (i = index in the message);
//   b_i = (u < p) (so b_i = 1 for every |g_i| >= s).
// Decode: y_i = float(b_i) * s, with the sign bit set when sign_i = 1.
// Validation before output: params size, bucket range, clip finite and >= 0 (kBadParams),
// flags == 0, payload length == formula, every s finite (kNonFiniteScale), >= 0
// (kBadParams), <= 2^126 (kNonFiniteScale).
#include "quant/codecs/bucketed.h"
#include "quant/codecs/bucketed_ef.h"
#include "quant/codecs/codecs.h"
#include "quant/codecs/terngrad.h"
#include "quant/half.h"
#include "quant/reduce.h"

#include <utility>

namespace gradzip::quant {
namespace {

using terngrad::kParamsBytes;

template <bool kAcc>
void decode_ternary(const MessageView& m, std::uint32_t bucket, float* out, float scale) {
  bucketed::decode<2, 1>(m.payload, m.numel, bucket,
                         [&](const std::uint8_t* __restrict codes, std::size_t cnt, const float* s, std::size_t first) {
                           const float step = s[0];
                           float* __restrict o = out + first;
                           for (std::size_t j = 0; j < cnt; ++j) {
                             const float mag = static_cast<float>(codes[j] & 1u) * step;
                             const std::uint32_t sign = static_cast<std::uint32_t>(codes[j] >> 1) << 31;
                             emit<kAcc>(o, j, bits_float(float_bits(mag) | sign), scale);
                           }
                         });
}

class TernGradCodec final : public Codec {
 public:
  TernGradCodec(std::uint32_t bucket, float clip, std::string spec)
      : bucket_(bucket), clip_(clip), spec_(std::move(spec)) {}
  CodecId id() const override { return CodecId::kTernGrad; }
  std::string spec() const override { return spec_; }
  bool unbiased() const override { return clip_ == 0.0f; }

 protected:
  std::size_t params_bytes() const override { return kParamsBytes; }
  void write_params(std::uint8_t* dst) const override { terngrad::write_params({bucket_, clip_}, dst); }
  std::size_t max_payload_bytes(std::size_t n) const override { return bucketed::payload_bytes(n, bucket_, 1, 2); }
  std::size_t tile_alignment() const override { return bucketed::tile_alignment(bucket_); }
  std::size_t tile_region_bytes(int r, std::size_t c) const override {
    return bucketed::tile_region_bytes(r, c, bucket_, 1, 2);
  }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext& ctx, PayloadSink* sink) const override {
    const float clip = clip_;
    auto stat = [clip](const float* xb, std::size_t m, float* s) -> Status {
      float mx = bucketed::max_abs_bits(xb, m);
      if (!std::isfinite(mx)) return bucketed::nonfinite_bucket(xb, m, "max |x|");
      if (mx > bucketed::kMaxScale) return Status(Errc::kNonFiniteInput, "a gradient element exceeds 2^126");
      if (clip > 0.0f) {
        const float sum = canonical_sum_sq(xb, m);
        if (!std::isfinite(sum)) return bucketed::nonfinite_bucket(xb, m, "the sum of squares");
        const float limit = clip * std::sqrt(sum / static_cast<float>(m));
        mx = limit < mx ? limit : mx;
      }
      s[0] = mx < bucketed::kMinScale ? 0.0f : mx;
      return Status::Ok();
    };
    auto quant = [](const float* __restrict xs, std::size_t m, const float* s,
                  const std::uint32_t* __restrict rnd, std::uint8_t* __restrict codes) {
      const float inv = s[0] > 0.0f ? 1.0f / s[0] : 0.0f;
      for (std::size_t j = 0; j < m; ++j) {
        const std::uint32_t bits = float_bits(xs[j]);
        const float p = bits_float(bits & 0x7FFFFFFFu) * inv;
        codes[j] = static_cast<std::uint8_t>(bucketed::less_nonneg(bucketed::uniform24(rnd[j]), p) | ((bits >> 31) << 1));
      }
    };
    GZ_RETURN_IF_ERROR((bucketed::encode<2, true, 1>(grad, n, bucket_, ctx, sink->data, stat, quant)));
    sink->bytes = bucketed::payload_bytes(n, bucket_, 1, 2);
    return Status::Ok();
  }

  bool has_ef_tile() const override { return true; }
  bool ef_tile_scales() const override { return true; }
  /// bucketed::ef_tile: the scaler of p (its largest |p|, clipped as the encoder's stat
  /// does), then per element the stochastic b, the code and its decoded value b * s.
  AbsClass ef_tile(const EfTile& t, const SeedContext& ctx) const override {
    const float clip = clip_;
    auto stat = [clip](const float* __restrict p, std::size_t m, std::int32_t max_bits, float* s)
                    __attribute__((always_inline)) {
      float mx = bucketed::bitsf(static_cast<std::uint32_t>(max_bits));  // < 2^50: finite sums below
      if (clip > 0.0f) {
        const float limit = clip * std::sqrt(canonical_sum_sq(p, m) / static_cast<float>(m));
        mx = limit < mx ? limit : mx;
      }
      s[0] = mx < bucketed::kMinScale ? 0.0f : mx;
    };
    auto coder = [](const float* s) __attribute__((always_inline)) {
      const float inv = s[0] > 0.0f ? 1.0f / s[0] : 0.0f;
      const float step = s[0];
      return [inv, step](float p, std::uint32_t rnd) __attribute__((always_inline)) {
        const std::uint32_t bits = float_bits(p);
        const std::uint32_t b = bucketed::less_nonneg(bucketed::uniform24(rnd), bits_float(bits & 0x7FFFFFFFu) * inv);
        const float mag = static_cast<float>(static_cast<std::int32_t>(b)) * step;
        const std::uint32_t sign = bits >> 31;
        return bucketed::Coded{b | sign << 1, bits_float(float_bits(mag) | sign << 31)};
      };
    };
    return bucketed::ef_tile<2, true, 1>(t, ctx, bucket_, stat, coder);
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    terngrad::Settings p;
    GZ_RETURN_IF_ERROR(terngrad::parse_message(m, &p));
    if (accumulate) {
      decode_ternary<true>(m, p.bucket, out, scale);
    } else {
      decode_ternary<false>(m, p.bucket, out, scale);
    }
    return Status::Ok();
  }

 private:
  std::uint32_t bucket_;
  float clip_;
  std::string spec_;
};

/// The documented message size: 40 + 8 + 4*ceil(n/bucket) + ceil(n/4) bytes.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>&) {
  const auto bucket = static_cast<std::uint64_t>(p.get_int("bucket"));
  return kHeaderBytes + 8 + 4 * ((n + bucket - 1) / bucket) + (n + 3) / 4;
}

/// clip=0: per bucket of d elements, s = max|g|: var_i = |g_i| (s - |g_i|) <= s |g_i|, so
/// sum <= s ||g||_1 <= sqrt(d) ||g||^2, and <= d s^2 / 4 <= d/4 ||g||^2: omega = min(d/4, sqrt(d))
/// (QSGD's Lemma 3.1 argument with one level).
double variance_factor(const Params& p) {
  const double d = static_cast<double>(p.get_int("bucket"));
  return std::min(d / 4.0, std::sqrt(d));
}

std::unique_ptr<Codec> make_terngrad(const Params& p) {
  const terngrad::Settings t = terngrad::from_params(p);
  return std::make_unique<TernGradCodec>(t.bucket, t.clip, "terngrad:" + p.canonical());
}

}  // namespace

const CodecEntry& terngrad_entry() {
  static const CodecEntry entry{
      "terngrad", CodecId::kTernGrad,
      "unbiased stochastic ternary {-s, 0, +s}, per-bucket scaler s = max|g| (2 bits + 32/bucket)",
      "Wen et al. 2017, TernGrad (NeurIPS), eq. (3)-(4), clipping Sec. 3.3",
      {bucketed::bucket_param("512"),
       {"clip", ParamKind::kFloat, "0", 0, 100, {}, "clip |g| to clip*sigma before scaling (0 = off; paper: 2.5)"}},
      &make_terngrad, {&message_bytes},
      {&variance_factor, "min(bucket/4, sqrt(bucket)) when clip=0"}};
  return entry;
}

}  // namespace gradzip::quant
