// Codec "natural": natural compression (Horvath, Ho, Horvath, Sahu, Canini, Richtarik
// 2019, "Natural compression for distributed deep learning", arXiv:1905.10988, Sec. 2,
// eq. (2)): unbiased stochastic rounding of each element to a power of two,
//   C_nat(t) = sign(t) * 2^floor(log2|t|)   with probability (2^ceil(log2|t|) - |t|) / 2^floor(log2|t|),
//              sign(t) * 2^ceil(log2|t|)    otherwise,
// so E[C_nat(t)] = t, sent as sign + 8-bit exponent (9 bits per element).
//
// For an fp32 t with biased exponent e and mantissa field f (23 bits), |t| = 2^(e-127)
// (1 + f 2^-23) when e >= 1, and the round-up probability above is exactly f / 2^23. For
// subnormals (e = 0), rounding to 0 or 2^-126 unbiasedly also rounds up with probability
// f / 2^23. Hence, exactly (no float arithmetic at all):
//   code_i = min(e_i + (U_i < f_i ? 1 : 0), 254),   U_i = R_i >> 9 (23 random bits),
// R_i = word i % 4 of random_block(ctx, RandomStream::kRounding, i / 4), i = element index.
// code 0 means zero; code c >= 1 means 2^(c - 127). The clamp to 254 (|t| >= 2^127 could
// round up to 2^128 = Inf) is the only bias. NaN/Inf input -> kNonFiniteInput.
//
// Params: none (params_bytes = 0). Flags: none.
// Payload: [0, n)                 code_i as uint8, element i at byte i
//          [n, n + ceil(n/8))     sign bits: bit i = bit 31 of t_i, LSB-first
//                                 (quant/bitpack.h), so -0.0 decodes as -0.0
// Size: n + ceil(n/8) bytes (9 bits per element, the two parts byte-aligned).
// Decode: y_i = float with bits sign_i << 31 | code_i << 23 (exact).
// Validation before output: params size 0, flags == 0, payload length == formula, no
// code equal to 255 (Inf/NaN; kNonFiniteScale).
#include <algorithm>
#include <cstring>

#include "quant/bitpack.h"
#include "quant/codecs/bucketed.h"
#include "quant/codecs/bucketed_ef.h"
#include "quant/codecs/codecs.h"
#include "quant/codecs/natural.h"
#include "quant/cpu.h"
#include "quant/half.h"

namespace gradzip::quant {
namespace {

constexpr std::size_t kBlock = 1024;

class NaturalCodec final : public Codec {
 public:
  CodecId id() const override { return CodecId::kNatural; }
  std::string spec() const override { return "natural"; }
  bool unbiased() const override { return true; }

 protected:
  std::size_t params_bytes() const override { return 0; }
  void write_params(std::uint8_t*) const override {}
  std::size_t max_payload_bytes(std::size_t n) const override { return n + packed_bytes(n, 1); }
  // Region 0: the exponent bytes, region 1: the sign bits.
  std::size_t tile_alignment() const override { return 8; }
  std::size_t tile_region_bytes(int r, std::size_t c) const override { return r == 0 ? c : packed_bytes(c, 1); }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext& ctx, PayloadSink* sink) const override {
    std::uint8_t* exps = sink->data;
    std::uint8_t* signs = sink->data + n;
    std::uint8_t codes[kBlock], ecodes[kBlock];
    std::uint32_t rnd[kBlock];
    std::uint32_t nonfinite = 0;
#if defined(GZ_HAVE_AVX2_CLONES)
    const bool avx2 = cpu_has_avx2();
#endif
    for (std::size_t i0 = 0; i0 < n; i0 += kBlock) {
      const std::size_t cnt = std::min(kBlock, n - i0);
      bucketed::rounding_words(ctx, i0 / 4, (cnt + 3) / 4, rnd);
#if defined(GZ_HAVE_AVX2_CLONES)
      nonfinite |= avx2 ? encode_block_avx2(grad + i0, cnt, rnd, ecodes, codes)
                        : encode_block(grad + i0, cnt, rnd, ecodes, codes);
#else
      nonfinite |= encode_block(grad + i0, cnt, rnd, ecodes, codes);
#endif
      std::memcpy(exps + i0, ecodes, cnt);
      pack_fields<1>(codes, cnt, signs + i0 / 8);
    }
    if (nonfinite) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
    sink->bytes = n + packed_bytes(n, 1);
    return Status::Ok();
  }

  bool has_ef_tile() const override { return true; }
  bool ef_tile_scales() const override { return true; }
  AbsClass ef_tile(const EfTile& t, const SeedContext& ctx) const override {
    return t.scale == 1.0f ? ef_tile_at<false>(t, ctx) : ef_tile_at<true>(t, ctx);
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    GZ_RETURN_IF_ERROR(natural::check_message(m));
    if (accumulate) {
      run<true>(m, out, scale);
    } else {
      run<false>(m, out, scale);
    }
    return Status::Ok();
  }

 private:
  /// Codes of one block: ecodes[j] = exponent code of x[j] rounded with random word
  /// rnd[j], signs[j] = sign bit of x[j]; returns 1 if some x[j] is NaN/Inf, else 0.
  /// Always inlined into the two compiled copies below (baseline and AVX2).
  __attribute__((always_inline)) static inline std::uint32_t encode_block_body(const float* __restrict x,
                                                                               std::size_t cnt,
                                                                               const std::uint32_t* __restrict rnd,
                                                                               std::uint8_t* __restrict ecodes,
                                                                               std::uint8_t* __restrict signs) {
    std::uint32_t nonfinite = 0;
    for (std::size_t j = 0; j < cnt; ++j) {
      const std::uint32_t u = float_bits(x[j]);
      const std::uint32_t e = (u >> 23) & 0xFFu;
      nonfinite |= e == 0xFFu;
      std::uint32_t code = e + ((rnd[j] >> 9) < (u & 0x7FFFFFu) ? 1u : 0u);
      code = code < 254u ? code : 254u;
      ecodes[j] = static_cast<std::uint8_t>(code);
      signs[j] = static_cast<std::uint8_t>(u >> 31);
    }
    return nonfinite;
  }

  static std::uint32_t encode_block(const float* x, std::size_t cnt, const std::uint32_t* rnd, std::uint8_t* ecodes,
                                    std::uint8_t* signs) {
    return encode_block_body(x, cnt, rnd, ecodes, signs);
  }

#if defined(GZ_HAVE_AVX2_CLONES)
  /// encode_block compiled for AVX2 (same source, integer ops only: same bytes); GCC
  /// vectorizes it 8 elements wide.
  __attribute__((target("avx2"))) static std::uint32_t encode_block_avx2(const float* x, std::size_t cnt,
                                                                         const std::uint32_t* rnd,
                                                                         std::uint8_t* ecodes, std::uint8_t* signs) {
    return encode_block_body(x, cnt, rnd, ecodes, signs);
  }
#endif

  /// One block of the fused EF kernel: p = ef_value(g, e, s), its exponent code (the
  /// encoder's, with random word rnd[j]) and sign, and the next residual p / s - decoded
  /// (the code's power of two with p's sign); returns the largest |p| bits. Restrict
  /// parameters: GCC ignores restrict locals here and would give up on the 11 alias checks.
  template <bool kScaled>
  __attribute__((always_inline)) static inline std::int32_t ef_block(
      const float* __restrict g, const float* __restrict e, std::size_t cnt, float s, const std::uint32_t* __restrict rnd,
      std::uint8_t* __restrict ecodes, std::uint8_t* __restrict signs, float* __restrict next) {
    std::int32_t mx = 0;
    for (std::size_t j0 = 0; j0 < cnt; j0 += 4 * bucketed::kPrefetchStep) {
      const std::size_t j1 = std::min(cnt, j0 + 4 * bucketed::kPrefetchStep);
      // The next block's lines into L2 (bucketed_ef.h's ef_segment): they arrive while
      // this block and the next block's random words are computed.
      for (std::size_t k = j0; k < j1; k += bucketed::kPrefetchStep) {
        __builtin_prefetch(g + kBlock + k, 0, 2);
        __builtin_prefetch(e + kBlock + k, 0, 2);
      }
      for (std::size_t j = j0; j < j1; ++j) {
        const float p = bucketed::ef_value<kScaled>(g[j], e[j], s);
        const std::uint32_t u = float_bits(p);
        const auto a = static_cast<std::int32_t>(u & 0x7FFFFFFFu);
        mx = a > mx ? a : mx;
        std::uint32_t code = ((u >> 23) & 0xFFu) + ((rnd[j] >> 9) < (u & 0x7FFFFFu) ? 1u : 0u);
        code = code < 254u ? code : 254u;
        ecodes[j] = static_cast<std::uint8_t>(code);
        signs[j] = static_cast<std::uint8_t>(u >> 31);
        next[j] = bucketed::ef_next<kScaled>(p, s, bits_float((u & 0x80000000u) | code << 23));
      }
    }
    return mx;
  }

  /// The fused EF kernel at scale 1 (kScaled false) or t.scale: per block, the block's
  /// random words, then one loop that compensates, classifies, writes the exponent code
  /// (region 0, in place) and the sign, and the next residual p / s - decoded (the decoded
  /// value is the code's power of two with p's sign); then the signs packed (region 1).
  template <bool kScaled>
  static AbsClass ef_tile_at(const EfTile& t, const SeedContext& ctx) {
    std::uint8_t signs[kBlock];
    std::uint32_t rnd[kBlock];
    std::int32_t mx = 0;
    for (std::size_t i0 = 0; i0 < t.cnt; i0 += kBlock) {
      const std::size_t len = std::min(kBlock, t.cnt - i0);
      bucketed::rounding_words(ctx, i0 / 4, (len + 3) / 4, rnd);  // message index first_element + i0 ...
      const float* gi = t.g + i0;
      const float* ei = t.e + i0;
      float* nexti = t.next + i0;
      std::uint8_t* codes = t.payload + i0;
      const float scale = t.scale;
      const std::int32_t bm = with_simd([&]() __attribute__((always_inline)) {
        return ef_block<kScaled>(gi, ei, len, scale, rnd, codes, signs, nexti);
      });
      mx = bm > mx ? bm : mx;
      pack_fields<1>(signs, len, t.payload + t.cnt + i0 / 8);
    }
    return class_of_max_bits(mx);
  }

  template <bool kAcc>
  static void run(const MessageView& m, float* out, float scale) {
    const std::uint8_t* exps = m.payload;
    const std::uint8_t* signs = m.payload + m.numel;
    std::uint8_t codes[kBlock], ecodes[kBlock];
    for (std::size_t i0 = 0; i0 < m.numel; i0 += kBlock) {
      const std::size_t cnt = std::min<std::size_t>(kBlock, m.numel - i0);
      unpack_fields<1>(signs + i0 / 8, cnt, codes);
      std::memcpy(ecodes, exps + i0, cnt);
      float* __restrict o = out + i0;
      for (std::size_t j = 0; j < cnt; ++j) {
        const std::uint32_t bits = static_cast<std::uint32_t>(codes[j]) << 31 | static_cast<std::uint32_t>(ecodes[j]) << 23;
        emit<kAcc>(o, j, bits_float(bits), scale);
      }
    }
  }
};

/// The documented message size: 40 + n + ceil(n/8) bytes.
std::size_t message_bytes(const Params&, std::uint64_t n, const std::vector<std::uint64_t>&) {
  return kHeaderBytes + n + (n + 7) / 8;
}

std::unique_ptr<Codec> make_natural(const Params&) { return std::make_unique<NaturalCodec>(); }

/// Horvath et al. 2019, Theorem 1: natural compression has variance factor 1/8.
double variance_factor(const Params&) { return 0.125; }

}  // namespace

const CodecEntry& natural_entry() {
  static const CodecEntry entry{"natural", CodecId::kNatural,
                                "unbiased stochastic rounding to a power of two: sign + 8-bit exponent (9 bits/element)",
                                "Horvath et al. 2019, Natural compression for distributed deep learning "
                                "(arXiv:1905.10988), eq. (2)",
                                {}, &make_natural, {&message_bytes},
                                {&variance_factor, "1/8 (Horvath et al. 2019, Theorem 1)"}};
  return entry;
}

}  // namespace gradzip::quant
