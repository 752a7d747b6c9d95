// Shared body of the 16-bit float codecs (fp16, bf16): everything but the conversion.
//
// Wire format of both (the codec files document their conversion and overflow policy):
//   Params: none (params_bytes = 0). Flags: none.
//   Payload: n little-endian uint16 bit patterns, element i at bytes [2i, 2i+2).
//   Size: 2n bytes.
// Encode: a NaN/Inf input element makes encode fail with kNonFiniteInput.
// Decode: validates params size 0, flags 0, payload length 2n, and refuses (with
// kNonFiniteScale) any value whose exponent field is all ones (Inf/NaN: never written by
// the encoder), all before writing output. decode_add: acc_i += scale * y_i.
//
// A codec file defines a traits struct (in its own anonymous namespace, so each
// instantiation stays in that file and keeps that file's compile options, e.g. fp16.cc's
// no-trapping-math) and instantiates HalfCodec<Traits>:
//   static constexpr CodecId kId;             codec id on the wire
//   static constexpr elementwise::HalfFormat kFormat;  name, exponent mask, Inf/NaN error
//                                                      (quant/codecs/elementwise.h)
//   static std::uint16_t encode(float x);     bits of finite x (saturating), inlinable
//   static float decode(std::uint16_t h);     value of finite h, exact
//   static BlockEncoder block_encoder();      a vectorized encode_block for this CPU
//                                             (same bits, same NaN/Inf flag), or nullptr
//   static BlockFeedback block_feedback();    a vectorized feedback_block for this CPU
//                                             (same bits), or nullptr
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "quant/codec.h"
#include "quant/codecs/elementwise.h"
#include "quant/cpu.h"
#include "quant/half.h"
#include "quant/wire.h"

namespace gradzip::quant {

/// h[j] = Traits::encode(x[j]) for j < cnt; returns 1 if some x[j] is NaN/Inf, else 0.
using BlockEncoder = std::uint32_t (*)(const float* x, std::size_t cnt, std::uint16_t* h);
/// Fused error feedback of a block (Codec::ef_tile): with p = g[j] + e[j], h[j] =
/// Traits::encode(p), next[j] = p - Traits::decode(h[j]); returns the largest |p| bit
/// pattern (compensate_max_bits, quant/ef_tile.h).
using BlockFeedback = std::int32_t (*)(const float* g, const float* e, std::size_t cnt, std::uint16_t* h,
                                       float* next);

template <typename Traits>
class HalfCodec final : public Codec {
 public:
  CodecId id() const override { return Traits::kId; }
  std::string spec() const override { return Traits::kFormat.name; }

 protected:
  std::size_t params_bytes() const override { return 0; }
  void write_params(std::uint8_t*) const override {}
  std::size_t max_payload_bytes(std::size_t n) const override { return 2 * n; }
  std::size_t tile_alignment() const override { return 1; }
  std::size_t tile_region_bytes(int r, std::size_t c) const override { return r == 0 ? 2 * c : 0; }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext&, PayloadSink* sink) const override {
    // Blocks through a local array: the conversion loop then has no aliasing between
    // the float input and the byte output and vectorizes.
    std::uint32_t nonfinite = 0;
    std::uint16_t h[kBlock];
    BlockEncoder block = Traits::block_encoder();  // fp16 with F16C: the instruction's conversion
#if defined(GZ_HAVE_AVX2_CLONES)
    if (block == nullptr && cpu_has_avx2()) block = &encode_block_avx2;
#endif
    if (block == nullptr) block = &encode_block;
    for (std::size_t i0 = 0; i0 < n; i0 += kBlock) {
      const std::size_t cnt = std::min(kBlock, n - i0);
      nonfinite |= block(grad + i0, cnt, h);
      std::memcpy(sink->data + 2 * i0, h, 2 * cnt);
    }
    if (nonfinite) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
    sink->bytes = 2 * n;
    return Status::Ok();
  }

  bool has_ef_tile() const override { return true; }
  /// One loop per block: compensate, classify, encode, decode and the next residual.
  AbsClass ef_tile(const EfTile& t, const SeedContext&) const override {
    BlockFeedback block = Traits::block_feedback();  // fp16 with F16C: both conversions by instruction
#if defined(GZ_HAVE_AVX2_CLONES)
    if (block == nullptr && cpu_has_avx2()) block = &feedback_block_avx2;
#endif
    if (block == nullptr) block = &feedback_block;
    std::int32_t mx = 0;
    std::uint16_t h[kBlock];
    for (std::size_t i0 = 0; i0 < t.cnt; i0 += kBlock) {
      const std::size_t cnt = std::min(kBlock, t.cnt - i0);
      mx = std::max(mx, block(t.g + i0, t.e + i0, cnt, h, t.next + i0));
      std::memcpy(t.payload + 2 * i0, h, 2 * cnt);
    }
    return class_of_max_bits(mx);
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    // check_half_message (quant/codecs/elementwise.h) with its Inf/NaN scan compiled
    // for AVX2 where the CPU has it (the fused error-feedback path decodes every tile).
    GZ_RETURN_IF_ERROR(elementwise::check_message(m, Traits::kFormat.name, 2));
    const std::uint8_t* payload = m.payload;
    const std::size_t numel = m.numel;
    const std::uint32_t bad = with_simd([&]() __attribute__((always_inline)) {
      std::uint32_t any = 0;
      for (std::size_t i = 0; i < numel; ++i) {
        any |= (load_le<std::uint16_t>(payload + 2 * i) & Traits::kFormat.exp_mask) == Traits::kFormat.exp_mask;
      }
      return any;
    });
    if (bad) return Status(Errc::kNonFiniteScale, Traits::kFormat.nonfinite_message);
    if (accumulate) {
      run<true>(m, out, scale);
    } else {
      run<false>(m, out, scale);
    }
    return Status::Ok();
  }

 private:
  static constexpr std::size_t kBlock = 2048;

  /// h[j] = Traits::encode(x[j]) for j < cnt; returns 1 if some x[j] is NaN/Inf, else 0.
  /// Always inlined into the two compiled copies below (baseline and AVX2).
  __attribute__((always_inline)) static inline std::uint32_t encode_block_body(const float* __restrict x,
                                                                               std::size_t cnt,
                                                                               std::uint16_t* __restrict h) {
    std::uint32_t nonfinite = 0;
    for (std::size_t j = 0; j < cnt; ++j) {
      nonfinite |= (float_bits(x[j]) & 0x7F800000u) == 0x7F800000u;
      h[j] = Traits::encode(x[j]);
    }
    return nonfinite;
  }

  static std::uint32_t encode_block(const float* x, std::size_t cnt, std::uint16_t* h) {
    return encode_block_body(x, cnt, h);
  }

#if defined(GZ_HAVE_AVX2_CLONES)
  /// encode_block compiled for AVX2: the same source, so the same bits (integer ops and
  /// one IEEE fp32 addition, no contraction); GCC vectorizes it 8 floats wide, where
  /// baseline SSE2 lacks unsigned min/compare and blends.
  __attribute__((target("avx2"))) static std::uint32_t encode_block_avx2(const float* x, std::size_t cnt,
                                                                         std::uint16_t* h) {
    return encode_block_body(x, cnt, h);
  }
#endif

  /// BlockFeedback of Traits::encode/decode; inlined into the two copies below.
  __attribute__((always_inline)) static inline std::int32_t feedback_block_body(const float* __restrict g,
                                                                                const float* __restrict e,
                                                                                std::size_t cnt,
                                                                                std::uint16_t* __restrict h,
                                                                                float* __restrict next) {
    std::int32_t mx = 0;
    for (std::size_t j = 0; j < cnt; ++j) {
      const float p = compensate_one(g[j], e[j], &mx);
      const std::uint16_t q = Traits::encode(p);
      h[j] = q;
      next[j] = p - Traits::decode(q);
    }
    return mx;
  }

  static std::int32_t feedback_block(const float* g, const float* e, std::size_t cnt, std::uint16_t* h, float* next) {
    return feedback_block_body(g, e, cnt, h, next);
  }

#if defined(GZ_HAVE_AVX2_CLONES)
  __attribute__((target("avx2"))) static std::int32_t feedback_block_avx2(const float* g, const float* e,
                                                                          std::size_t cnt, std::uint16_t* h,
                                                                          float* next) {
    return feedback_block_body(g, e, cnt, h, next);
  }
#endif

  /// o[j] = (or +=) scale * Traits::decode(h[j]) for j < cnt; inlined into the baseline
  /// and AVX2 copies below.
  template <bool kAcc>
  __attribute__((always_inline)) static inline void decode_block_body(const std::uint16_t* __restrict h,
                                                                      std::size_t cnt, float* __restrict o,
                                                                      float scale) {
    for (std::size_t j = 0; j < cnt; ++j) emit<kAcc>(o, j, Traits::decode(h[j]), scale);
  }

  template <bool kAcc>
  static void decode_block(const std::uint16_t* h, std::size_t cnt, float* o, float scale) {
    decode_block_body<kAcc>(h, cnt, o, scale);
  }

#if defined(GZ_HAVE_AVX2_CLONES)
  /// decode_block for AVX2 (as encode_block_avx2: same source, integer ops, exact
  /// int-to-float conversions, and without FMA in the target no contraction of the
  /// accumulate's multiply-add: the same bits).
  template <bool kAcc>
  __attribute__((target("avx2"))) static void decode_block_avx2(const std::uint16_t* h, std::size_t cnt, float* o,
                                                                float scale) {
    decode_block_body<kAcc>(h, cnt, o, scale);
  }
#endif

  template <bool kAcc>
  static void run(const MessageView& m, float* out, float scale) {
    std::uint16_t h[kBlock];
#if defined(GZ_HAVE_AVX2_CLONES)
    const bool avx2 = cpu_has_avx2();
#endif
    for (std::size_t i0 = 0; i0 < m.numel; i0 += kBlock) {
      const std::size_t cnt = std::min<std::size_t>(kBlock, m.numel - i0);
      std::memcpy(h, m.payload + 2 * i0, 2 * cnt);
#if defined(GZ_HAVE_AVX2_CLONES)
      if (avx2) {
        decode_block_avx2<kAcc>(h, cnt, out + i0, scale);
        continue;
      }
#endif
      decode_block<kAcc>(h, cnt, out + i0, scale);
    }
  }
};

}  // namespace gradzip::quant
