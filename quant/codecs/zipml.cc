// Codec "zipml": stochastic rounding to 2^bits levels chosen per bucket to minimise the
// variance (Zhang, Li, Kara, Alistarh, Liu, Zhang 2017, "ZipML: Training linear models with
// end-to-end low precision, and a little bit of deep learning", ICML, Sec. 3 "optimal
// quantization points": the points minimising the variance of stochastic rounding for a
// given data distribution are found by dynamic programming over a discretization of the
// data). Uniform QSGD spends its levels evenly over [-w, w]; on a peaked (Gaussian,
// heavy-tailed) gradient most levels sit where there is no data, and ZipML moves them to
// where the data is. Unbiased: each element rounds to one of the two levels around it with
// the probabilities that keep its mean.
//
// Params (8 bytes): u8 bits (1..4) | u8 refine (1..floor(255/(2^bits-1))) | u16 reserved (0)
//                   | u32 LE bucket (1..2^24; 0 = one set of levels per message, "scope=tensor").
// Flags: none.
// Payload (quant/codecs/bucketed.h with S = L = 2^bits "scales" per bucket and `bits` bits
// per element), B = bucket (or, for bucket 0, min(max(n, 1), 2^24)), nb = ceil(n / B):
//   [0, 4 L nb)                   the L levels of each bucket, float32 LE, bucket-major,
//                                 sorted non-decreasing; level 0 = min, level L-1 = max of
//                                 the bucket
//   [4 L nb, 4 L nb + ceil(n*bits/8)) code of element i = index of its level, LSB-first
//                                 (quant/bitpack.h)
// Size: 4*2^bits*ceil(n/B) + ceil(n*bits/8) bytes. Byte cost of the levels: 32*2^bits/B
// bits per element; the default B = 512*2^bits (8192 at 4 bits) makes it 0.0625
// bit/element, the same as qsgd's one fp32 norm per 512 elements (byte parity at the same
// bits); scope=tensor sends 4*2^bits bytes per message.
//
// Encode, bucket b (m elements x, the compensated gradient):
//   every x finite and |x| <= 2^126, else kNonFiniteInput.
//   lo = min x + 0.0f, hi = max x + 0.0f (the + 0 turns -0 into +0, so the order of a
//   min/max reduction does not matter); M = refine*(L-1)+1 candidate points
//   lo + g*delta, delta = (hi - lo)/(M-1) (fp32 division), the last point exactly hi.
//   hi - lo >= 2^-100: histogram of the M-1 cells (cell_of: t = (x - lo)*inv,
//     inv = (M-1)/(hi - lo), cell = min(trunc t, M-2)) and the exact integer DP of zipml.h
//     picks L points with the first at lo and the last at hi (ties: smallest point);
//   else the uniform points g = k*refine.
//   level k = level_at(g_k); the candidate points contain the L uniform levels (every
//   refine-th point), so the DP's (histogram) variance is at most uniform rounding's.
//   Element i: u = uniform01 of word i % 4 of random_block(ctx, RandomStream::kRounding,
//   i / 4) (i = index in the message), code = zipml::round_code(x_i, levels, u).
// Decode: y_i = levels[code_i] of its bucket (every code is a valid index).
// Validation before output: params (bits, refine, reserved, bucket), flags == 0, payload
// length == formula, every level finite and |level| <= 2^126 (kNonFiniteScale), levels of
// each bucket sorted (kBadParams).
// Cost: the DP is O(L * M^2 / 2) integer steps per bucket (about 30k for the defaults,
// ~4 per element of an 8192-element bucket), the rest one pass over the bucket.
// Variance factor: the registry states omega = B/(2 (L-1)^2), the bound of uniform
// stochastic rounding over [min, max] with L levels: spacing (max-min)/(L-1), variance per
// element <= spacing^2/4, and (max-min)^2 <= 2 (max^2 + min^2) <= 2 ||x||^2; the DP chooses
// among level sets that include the uniform one (for the histogram's variance).
#include <vector>

#include "quant/codecs/codecs.h"
#include "quant/codecs/zipml.h"

namespace gradzip::quant {
namespace {

using zipml::Settings;

/// Scratch of one encode call (the codec itself stays immutable and thread-safe).
struct DpScratch {
  std::vector<std::uint32_t> counts = std::vector<std::uint32_t>(zipml::kMaxGrid);
  std::vector<std::int64_t> p0 = std::vector<std::int64_t>(zipml::kMaxGrid);
  std::vector<std::int64_t> p1 = std::vector<std::int64_t>(zipml::kMaxGrid);
  std::vector<std::int64_t> p2 = std::vector<std::int64_t>(zipml::kMaxGrid);
  std::vector<std::int64_t> f_prev = std::vector<std::int64_t>(zipml::kMaxGrid);
  std::vector<std::int64_t> f_cur = std::vector<std::int64_t>(zipml::kMaxGrid);
  std::vector<std::uint16_t> arg = std::vector<std::uint16_t>(zipml::kMaxLevels * zipml::kMaxGrid);
};

/// The L levels of one bucket (see the file comment).
Status select_levels(const Settings& st, const float* x, std::size_t m, DpScratch* w, float* levels) {
  if (!all_finite(x, m)) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
  float lo = x[0], hi = x[0];
  for (std::size_t i = 1; i < m; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  if (-lo > bucketed::kMaxScale || hi > bucketed::kMaxScale) {
    return Status(Errc::kNonFiniteInput, "a gradient element exceeds 2^126");
  }
  lo += 0.0f;
  hi += 0.0f;
  const unsigned L = zipml::levels_of(st.bits), M = zipml::grid_of(st.bits, st.refine);
  const float range = hi - lo;
  const float delta = range / static_cast<float>(M - 1);
  unsigned g[zipml::kMaxLevels];
  if (!(range >= zipml::kMinRange)) {
    for (unsigned k = 0; k < L; ++k) g[k] = zipml::uniform_point(k, st.refine);
  } else {
    const float inv = static_cast<float>(M - 1) / range;
    std::fill(w->counts.begin(), w->counts.begin() + (M - 1), 0u);
    for (std::size_t i = 0; i < m; ++i) ++w->counts[zipml::cell_of(x[i], lo, inv, M)];
    zipml::prefix_sums(w->counts.data(), M, w->p0.data(), w->p1.data(), w->p2.data());
    w->f_prev[0] = 0;
    for (unsigned l = 1; l < L; ++l) {
      for (unsigned j = zipml::first_point(l, L, M); j <= zipml::last_point(l, L, M); ++j) {
        zipml::dp_cell(w->f_prev.data(), w->p0.data(), w->p1.data(), w->p2.data(), l, j, &w->f_cur[j],
                       &w->arg[l * M + j]);
      }
      std::swap(w->f_prev, w->f_cur);
    }
    g[L - 1] = M - 1;
    for (unsigned l = L - 1; l >= 1; --l) g[l - 1] = w->arg[l * M + g[l]];
  }
  for (unsigned k = 0; k < L; ++k) levels[k] = zipml::level_at(g[k], M, lo, hi, delta);
  return Status::Ok();
}

template <int kBits>
Status encode_bits(const Settings& st, const float* grad, std::size_t n, const SeedContext& ctx,
                   std::uint8_t* payload) {
  static constexpr unsigned kLevels = 1u << kBits;  // static: clang 14 would need it captured
  DpScratch scratch;
  auto stat = [&](const float* xb, std::size_t m, float* s) { return select_levels(st, xb, m, &scratch, s); };
  auto quant = [](const float* __restrict xs, std::size_t m, const float* s, const std::uint32_t* __restrict rnd,
                  std::uint8_t* __restrict codes) {
    float levels[kLevels];
    for (unsigned k = 0; k < kLevels; ++k) levels[k] = s[k];
    for (std::size_t j = 0; j < m; ++j) {
      codes[j] = static_cast<std::uint8_t>(zipml::round_code<kLevels>(xs[j], levels, bucketed::uniform24(rnd[j])));
    }
  };
  const auto bucket = static_cast<std::size_t>(zipml::effective_bucket(st.bucket, n));
  return bucketed::encode<kBits, true, static_cast<int>(kLevels)>(grad, n, bucket, ctx, payload, stat, quant);
}

template <int kBits, bool kAcc>
void decode_bits(const MessageView& m, std::size_t bucket, float* out, float scale) {
  constexpr int kLevels = 1 << kBits;
  bucketed::decode<kBits, kLevels>(m.payload, m.numel, bucket,
                                   [&](const std::uint8_t* __restrict codes, std::size_t cnt, const float* s,
                                       std::size_t first) {
                                     float* __restrict o = out + first;
                                     for (std::size_t j = 0; j < cnt; ++j) emit<kAcc>(o, j, s[codes[j]], scale);
                                   });
}

class ZipmlCodec final : public Codec {
 public:
  explicit ZipmlCodec(Settings s) : s_(s) {}
  CodecId id() const override { return CodecId::kZipml; }
  std::string spec() const override {
    const std::uint32_t bucket = s_.bucket == 0 ? zipml::default_bucket(s_.bits) : s_.bucket;
    return "zipml:bits=" + std::to_string(s_.bits) + ",bucket=" + std::to_string(bucket) +
           ",refine=" + std::to_string(s_.refine) + ",scope=" + (s_.bucket == 0 ? "tensor" : "bucket");
  }
  bool unbiased() const override { return true; }

 protected:
  std::size_t params_bytes() const override { return zipml::kParamsBytes; }
  void write_params(std::uint8_t* dst) const override { zipml::write_params(s_, dst); }
  std::size_t max_payload_bytes(std::size_t n) const override { return zipml::payload_bytes(s_, n); }
  // Tiles of the fused EF path (quant/feedback.h): region 0 the levels, region 1 the codes;
  // each bucket's levels depend only on its own elements. scope=tensor has one set of
  // levels per message, which no tile can compute: untiled.
  std::size_t tile_alignment() const override { return s_.bucket == 0 ? 0 : bucketed::tile_alignment(s_.bucket); }
  std::size_t tile_region_bytes(int r, std::size_t c) const override {
    return bucketed::tile_region_bytes(r, c, s_.bucket, zipml::levels_of(s_.bits), s_.bits);
  }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext& ctx, PayloadSink* sink) const override {
    switch (s_.bits) {
      case 1: GZ_RETURN_IF_ERROR(encode_bits<1>(s_, grad, n, ctx, sink->data)); break;
      case 2: GZ_RETURN_IF_ERROR(encode_bits<2>(s_, grad, n, ctx, sink->data)); break;
      case 3: GZ_RETURN_IF_ERROR(encode_bits<3>(s_, grad, n, ctx, sink->data)); break;
      case 4: GZ_RETURN_IF_ERROR(encode_bits<4>(s_, grad, n, ctx, sink->data)); break;
      default: return Status(Errc::kInvalidArgument, "zipml: bits outside 1..4");
    }
    sink->bytes = zipml::payload_bytes(s_, n);
    return Status::Ok();
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    Settings p;
    GZ_RETURN_IF_ERROR(zipml::parse_message(m, &p));
    const auto bucket = static_cast<std::size_t>(zipml::effective_bucket(p.bucket, m.numel));
    if (accumulate) {
      dispatch<true>(p.bits, m, bucket, out, scale);
    } else {
      dispatch<false>(p.bits, m, bucket, out, scale);
    }
    return Status::Ok();
  }

 private:
  template <bool kAcc>
  static void dispatch(unsigned bits, const MessageView& m, std::size_t bucket, float* out, float scale) {
    switch (bits) {
      case 1: decode_bits<1, kAcc>(m, bucket, out, scale); break;
      case 2: decode_bits<2, kAcc>(m, bucket, out, scale); break;
      case 3: decode_bits<3, kAcc>(m, bucket, out, scale); break;
      default: decode_bits<4, kAcc>(m, bucket, out, scale); break;
    }
  }

  Settings s_;
};

/// The documented message size: 40 + 8 + 4*2^bits*ceil(n/B) + ceil(n*bits/8) bytes.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>&) {
  return kHeaderBytes + zipml::kParamsBytes + zipml::payload_bytes(zipml::from_params(p), n);
}

/// omega = B / (2 (L-1)^2) (see the file comment); B = bucket (scope=tensor: the message
/// size is not known here, so the bound of the largest set, 2^24 elements).
double variance_factor(const Params& p) {
  const Settings s = zipml::from_params(p);
  const double b = s.bucket == 0 ? static_cast<double>(bucketed::kMaxBucket) : static_cast<double>(s.bucket);
  const double gaps = static_cast<double>(zipml::levels_of(s.bits) - 1);
  return b / (2.0 * gaps * gaps);
}

std::unique_ptr<Codec> make_zipml(const Params& p) {
  const Settings s = zipml::from_params(p);
  if (s.refine > zipml::max_refine(s.bits)) {
    throw SpecError("zipml: refine=" + std::to_string(s.refine) + " is out of range for bits=" +
                    std::to_string(s.bits) + "; allowed: integer 1.." + std::to_string(zipml::max_refine(s.bits)) +
                    " (refine*(2^bits-1)+1 candidate points <= 256)");
  }
  return std::make_unique<ZipmlCodec>(s);
}

}  // namespace

const CodecEntry& zipml_entry() {
  static const CodecEntry entry{
      "zipml", CodecId::kZipml,
      "unbiased stochastic rounding to 2^bits variance-optimal levels per bucket, chosen by DP over a histogram "
      "(bits/element + 32*2^bits/bucket)",
      "Zhang et al. 2017, ZipML (ICML), Sec. 3 optimal quantization points",
      {{"bits", ParamKind::kInt, "4", 1, zipml::kMaxBits, {}, "bits per element (2^bits levels)"},
       {"bucket", ParamKind::kInt, "0", 0, static_cast<double>(bucketed::kMaxBucket), {},
        "elements per set of levels; 0: 512*2^bits (levels cost 0.0625 bit/element, as qsgd's norms)"},
       {"refine", ParamKind::kInt, "4", 1, zipml::max_refine(1), {},
        "candidate points per uniform level gap (grid refine*(2^bits-1)+1 <= 256; DP cost ~ grid^2 * 2^bits)"},
       {"scope", ParamKind::kEnum, "bucket", 0, 0, {"bucket", "tensor"},
        "levels per bucket, or one set per message (tensor; bucket is then ignored)"}},
      &make_zipml,
      {&message_bytes},
      {&variance_factor, "bucket/(2 (2^bits-1)^2) (uniform rounding over [min,max]; tensor scope: bucket 2^24)"}};
  return entry;
}

}  // namespace gradzip::quant
