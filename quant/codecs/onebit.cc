// Codec "onebit": 1-bit SGD (Seide, Fu, Droppo, Li, Yu 2014, "1-bit stochastic gradient
// descent and its application to data-parallel distributed training of speech DNNs",
// Interspeech, Sec. 3): each element is quantized to 1 bit with threshold 0, and the two
// reconstruction values of a bucket are the means of its non-negative and of its negative
// elements (so the bucket sum is preserved). Biased; meant to be used with the "ef"
// memory (the paper's error feedback).
//
// Params (4 bytes): u32 LE bucket (1..2^24). Flags: none.
// Payload (quant/codecs/bucketed.h; S = 2 scales per bucket, 1 bit per element):
//   [0, 8 nb)                  per bucket b: float32 P_b (mean of the x_i >= 0, or 0 if
//                              none), then float32 N_b (mean of the x_i < 0, or 0 if none)
//   [8 nb, 8 nb + ceil(n/8))   bit i = 1 iff x_i < 0, LSB-first (quant/bitpack.h)
// Size: 8*ceil(n/bucket) + ceil(n/8) bytes.
// Encode, bucket b of m elements (x < 0 decides the group; -0.0 and 0 are non-negative):
//   SP = canonical_sum(bucket, v -> v < 0 ? 0 : v), SN = canonical_sum(bucket,
//   v -> v < 0 ? v : 0) (quant/reduce.h order); k = count of x_i < 0 (exact integer);
//   P = m - k > 0 ? SP / float(m - k) : 0;  N = k > 0 ? SN / float(k) : 0 (fp32 division).
//   A non-finite SP or SN -> kNonFiniteInput (NaN/Inf input, or overflow); |P|, |N| > 2^126
//   -> kNonFiniteInput.
// Decode: y_i = bit_i ? N_b : P_b.
// Validation before output: params size, bucket range, flags == 0, payload length ==
// formula, P_b and N_b finite (kNonFiniteScale) and <= 2^126 in magnitude
// (kNonFiniteScale), P_b >= 0 and N_b <= 0 (kBadParams).
#include <cstdint>

#include "quant/codecs/bucketed.h"
#include "quant/codecs/bucketed_ef.h"
#include "quant/codecs/codecs.h"
#include "quant/reduce.h"

namespace gradzip::quant {
namespace {

constexpr std::size_t kParamsBytes = bucketed::kBucketOnlyParamsBytes;

/// Sign-bit masks instead of v < 0 (vectorizes); they differ only for -0.0, which adds
/// nothing to either sum (partials start at +0), so the bits are the same. Lambdas, not
/// functions: canonical_sum2 is instantiated for them and inlines them.
constexpr auto nonneg_part = [](float v) {
  const std::uint32_t u = bucketed::fbits(v);
  return bucketed::bitsf(u & ((u >> 31) - 1u));
};
constexpr auto neg_part = [](float v) {
  const std::uint32_t u = bucketed::fbits(v);
  return bucketed::bitsf(u & (0u - (u >> 31)));
};

/// The two scales of a bucket of m finite values whose sums are sp (non-negative part)
/// and sn (negative part) and with k negative elements.
inline void means(float sp, float sn, std::size_t m, std::uint32_t k, float* s) {
  s[0] = m > k ? sp / static_cast<float>(m - k) : 0.0f;
  s[1] = k > 0 ? sn / static_cast<float>(k) : 0.0f;
}

template <bool kAcc>
void decode_onebit(const MessageView& m, std::uint32_t bucket, float* out, float scale) {
  bucketed::decode<1, 2>(m.payload, m.numel, bucket,
                         [&](const std::uint8_t* __restrict codes, std::size_t cnt, const float* s, std::size_t first) {
                           const float pos = s[0], neg = s[1];
                           float* __restrict o = out + first;
                           for (std::size_t j = 0; j < cnt; ++j) emit<kAcc>(o, j, codes[j] ? neg : pos, scale);
                         });
}

class OneBitCodec final : public Codec {
 public:
  explicit OneBitCodec(std::uint32_t bucket) : bucket_(bucket) {}
  CodecId id() const override { return CodecId::kOneBit; }
  std::string spec() const override { return "onebit:bucket=" + std::to_string(bucket_); }

 protected:
  std::size_t params_bytes() const override { return kParamsBytes; }
  void write_params(std::uint8_t* dst) const override { store_le<std::uint32_t>(dst, bucket_); }
  std::size_t max_payload_bytes(std::size_t n) const override { return bucketed::payload_bytes(n, bucket_, 2, 1); }
  std::size_t tile_alignment() const override { return bucketed::tile_alignment(bucket_); }
  std::size_t tile_region_bytes(int r, std::size_t c) const override {
    return bucketed::tile_region_bytes(r, c, bucket_, 2, 1);
  }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext& ctx, PayloadSink* sink) const override {
    auto stat = [](const float* xb, std::size_t m, float* s) -> Status {
      float sp, sn;
      canonical_sum2(xb, m, nonneg_part, neg_part, &sp, &sn);
      if (!std::isfinite(sp) || !std::isfinite(sn)) return bucketed::nonfinite_bucket(xb, m, "the sum");
      std::uint32_t k = 0;  // m <= 2^24
      for (std::size_t j = 0; j < m; ++j) k += bucketed::is_negative(xb[j]);
      means(sp, sn, m, k, s);
      if (s[0] > bucketed::kMaxScale || s[1] < -bucketed::kMaxScale) {
        return Status(Errc::kNonFiniteInput, "a bucket mean exceeds 2^126");
      }
      return Status::Ok();
    };
    auto quant = [](const float* __restrict xs, std::size_t m, const float*, const std::uint32_t*,
                    std::uint8_t* __restrict codes) {
      for (std::size_t j = 0; j < m; ++j) codes[j] = static_cast<std::uint8_t>(bucketed::is_negative(xs[j]));
    };
    GZ_RETURN_IF_ERROR((bucketed::encode<1, false, 2>(grad, n, bucket_, ctx, sink->data, stat, quant)));
    sink->bytes = bucketed::payload_bytes(n, bucket_, 2, 1);
    return Status::Ok();
  }

  bool has_ef_tile() const override { return true; }
  bool ef_tile_scales() const override { return true; }
  /// bucketed::ef_tile: per bucket the two means of p (the encoder's sums), then the
  /// signs and the residual p - (sign ? N : P).
  AbsClass ef_tile(const EfTile& t, const SeedContext& ctx) const override {
    auto stat = [](const float* __restrict p, std::size_t m, std::int32_t, float* s) __attribute__((always_inline)) {
      float sp, sn;
      canonical_sum2(p, m, nonneg_part, neg_part, &sp, &sn);
      std::uint32_t k = 0;
      for (std::size_t j = 0; j < m; ++j) k += bucketed::is_negative(p[j]);
      means(sp, sn, m, k, s);  // |p| < 2^50: finite sums, means below 2^126
    };
    auto coder = [](const float* s) __attribute__((always_inline)) {
      const float pos = s[0], neg = s[1];
      return [pos, neg](float p, std::uint32_t) __attribute__((always_inline)) {
        const std::uint32_t is_neg = bucketed::is_negative(p);
        return bucketed::Coded{is_neg, is_neg ? neg : pos};
      };
    };
    return bucketed::ef_tile<1, false, 2>(t, ctx, bucket_, stat, coder);
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    std::uint32_t bucket = 0;
    GZ_RETURN_IF_ERROR(bucketed::parse_bucket_only(m, bucketed::kOneBit, &bucket));
    if (accumulate) {
      decode_onebit<true>(m, bucket, out, scale);
    } else {
      decode_onebit<false>(m, bucket, out, scale);
    }
    return Status::Ok();
  }

 private:
  std::uint32_t bucket_;
};

/// The documented message size: 40 + 4 + 8*ceil(n/bucket) + ceil(n/8) bytes.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>&) {
  const auto bucket = static_cast<std::uint64_t>(p.get_int("bucket"));
  return kHeaderBytes + 4 + 8 * ((n + bucket - 1) / bucket) + (n + 7) / 8;
}

std::unique_ptr<Codec> make_onebit(const Params& p) {
  return std::make_unique<OneBitCodec>(bucketed::bucket_from(p));
}

}  // namespace

const CodecEntry& onebit_entry() {
  static const CodecEntry entry{"onebit", CodecId::kOneBit,
                                "1 bit per element, decoded as the bucket's mean of the positive or negative part "
                                "(1 bit + 64/bucket); use with ef",
                                "Seide et al. 2014, 1-bit SGD (Interspeech)",
                                {bucketed::bucket_param("512")}, &make_onebit, {&message_bytes}};
  return entry;
}

}  // namespace gradzip::quant
