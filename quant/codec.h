// The Codec interface: one compression algorithm (quantizer or sparsifier) on the CPU.
//
// A codec turns n fp32 gradient elements into one self-describing wire message
// (quant/wire.h) and back. It is stateless apart from the SeedContext handed to encode:
// error feedback lives in a separate Memory (quant/memory.h), so any memory composes
// with any codec. Codecs are immutable after construction and safe to use from several
// threads at once.
//
// Adding a codec = one file in quant/codecs/ that subclasses Codec and defines a
// CodecEntry (parameters, defaults, ranges, paper), plus one line in quant/registry.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quant/ef_tile.h"
#include "quant/philox.h"
#include "quant/status.h"
#include "quant/wire.h"

namespace gradzip::quant {

namespace detail {
struct CodecTiles;
}  // namespace detail

/// Where encode_payload writes: payload bytes start at `data`; it has `capacity` bytes
/// (>= max_payload_bytes(n)). The codec sets `bytes` and may set header `flags`.
struct PayloadSink {
  std::uint8_t* data = nullptr;
  std::size_t capacity = 0;
  std::size_t bytes = 0;
  std::uint8_t flags = 0;
};

class Codec {
 public:
  virtual ~Codec() = default;

  /// Wire id of this codec.
  virtual CodecId id() const = 0;
  /// Canonical spec string with every parameter spelled out, e.g. "qsgd:bits=4,bucket=512,norm=l2".
  virtual std::string spec() const = 0;
  /// True when E[decode(encode(x))] == x over the random seed (qsgd, terngrad, natural, randk:scale=1...).
  virtual bool unbiased() const { return false; }

  /// Upper bound, in bytes, of a whole message (header + params + payload) for n elements.
  std::size_t max_encoded_bytes(std::size_t n) const {
    return kHeaderBytes + params_bytes() + max_payload_bytes(n);
  }

  /// Encodes grad[0, n) into out[0, out_capacity). On success *out_bytes is the message
  /// length. Errors: kBufferTooSmall (capacity < max_encoded_bytes(n)), kNonFiniteInput
  /// (a NaN/Inf in grad: nothing usable is written), kInvalidArgument.
  /// `grad` and `out` must not overlap.
  Status encode(const float* grad, std::size_t n, const SeedContext& ctx, std::uint8_t* out,
                std::size_t out_capacity, std::size_t* out_bytes) const;
  /// Convenience: encode into a new vector sized to the message. Throws QuantError.
  std::vector<std::uint8_t> encode(const float* grad, std::size_t n, const SeedContext& ctx) const;

  /// Decodes a message into out[0, n) (overwrites every element). Validates header,
  /// checksum, codec id (kCodecMismatch), n == numel (kSizeMismatch), params and
  /// payload before writing; on error `out` is untouched.
  Status decode(const std::uint8_t* msg, std::size_t bytes, float* out, std::size_t n) const;
  /// acc[i] += scale * decoded[i], without a temporary. Same validation as decode; on
  /// error `acc` is untouched.
  Status decode_add(const std::uint8_t* msg, std::size_t bytes, float* acc, std::size_t n, float scale) const;

  /// Tiling, used by the fused error-feedback path (quant/feedback.h). 0 (the default):
  /// a payload cannot be assembled from separately encoded ranges. A > 0: the payload of
  /// n elements is region 0 of all n elements followed by region 1 of all n elements,
  /// region r of the first c elements taking tile_region_bytes(r, c) bytes; and for every
  /// t0 % A == 0, encode_payload of x[t0, t1) with ctx.first_element = t0 writes region 0
  /// then region 1 of that range, byte-identical to bytes [tile_region_bytes(r, t0),
  /// tile_region_bytes(r, t1)) of the message's regions, with sink flags 0; and
  /// decode_payload accepts that tile payload as a message of t1 - t0 elements.
  virtual std::size_t tile_alignment() const { return 0; }
  virtual std::size_t tile_region_bytes(int region, std::size_t count) const {
    (void)region;
    (void)count;
    return 0;
  }

  /// The fused error-feedback kernel of memory "ef" (quant/ef_tile.h), for codecs with
  /// tile_alignment() > 0: with p = t.g + t.e (at t.scale s != 1: p = (t.g + t.e) * s) it
  /// writes the tile's payload (the bytes encode_payload(p, t.cnt, ctx) writes,
  /// ctx.first_element the tile's start), t.next[j] = p[j] - decode(payload)[j] (at s != 1:
  /// p[j] / s - decode(payload)[j]; the fp32 operations), and returns the AbsClass of p. When that is not kSmall, payload and next are unspecified. Called only
  /// when has_ef_tile(); it cannot fail once every |p| < 2^50. The default is never called.
  virtual bool has_ef_tile() const { return false; }
  /// True when ef_tile also implements memory ef at a scale s != 1 (EfTile::scale: p =
  /// (g + e) * s, next = p / s - decode), the default of ef over an unbiased codec.
  virtual bool ef_tile_scales() const { return false; }
  virtual AbsClass ef_tile(const EfTile& t, const SeedContext& ctx) const {
    (void)t;
    (void)ctx;
    return AbsClass::kNonFinite;
  }

 protected:
  /// Size of this codec's params block (fixed per instance).
  virtual std::size_t params_bytes() const = 0;
  /// Writes params_bytes() bytes describing this instance's parameters.
  virtual void write_params(std::uint8_t* dst) const = 0;
  /// Upper bound of the payload for n elements.
  virtual std::size_t max_payload_bytes(std::size_t n) const = 0;
  /// Writes the payload of grad[0, n) into sink (n >= 0; n == 0 must work).
  /// ctx.first_element is the message index of grad[0] (nonzero only for the tiles of the
  /// fused error-feedback path, above): random words are drawn for index first_element + i.
  virtual Status encode_payload(const float* grad, std::size_t n, const SeedContext& ctx,
                                PayloadSink* sink) const = 0;
  /// Decodes a message whose header and checksum are valid and whose codec id is id().
  /// Must read its parameters from m.params (messages are self-describing: the instance's
  /// own parameters are not assumed), validate params, flags and payload length, and only
  /// then write out[i] = v (accumulate == false) or out[i] += scale * v (accumulate == true).
  virtual Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const = 0;

 private:
  friend struct detail::CodecTiles;  // quant/feedback.cc: tile encodes and decodes
  Status decode_impl(const std::uint8_t* msg, std::size_t bytes, float* out, std::size_t n, float scale,
                     bool accumulate) const;
};

/// parse_message, then checks that the message holds codec `expected` (kCodecMismatch)
/// and exactly `n` elements (kSizeMismatch). What every decoder — CPU or CUDA — runs
/// before it touches its output.
Status parse_message_for(const std::uint8_t* msg, std::size_t bytes, CodecId expected, std::size_t n,
                         MessageView* view);

/// Decodes any message by looking its codec up in the registry (the receiver need not
/// know the codec in advance). Same contract as Codec::decode / decode_add.
Status decode_any(const std::uint8_t* msg, std::size_t bytes, float* out, std::size_t n);
Status decode_add_any(const std::uint8_t* msg, std::size_t bytes, float* acc, std::size_t n, float scale);

/// Writes out[i] = v or out[i] += scale * v; lets a decode loop be written once.
template <bool kAccumulate>
inline void emit(float* out, std::size_t i, float v, float scale) {
  if constexpr (kAccumulate) {
    out[i] += scale * v;
  } else {
    (void)scale;
    out[i] = v;
  }
}

/// True if every element of x[0, n) is finite.
bool all_finite(const float* x, std::size_t n);

}  // namespace gradzip::quant
