// The fused error-feedback driver (quant/feedback.h) and Memory::encode_step's default.
#include "quant/feedback.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(GZ_HAVE_AVX2_CLONES)
#include <immintrin.h>
#endif

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include "quant/checksum_avx2.h"
#include "quant/memory.h"
#include "quant/wire.h"

namespace gradzip::quant {

namespace detail {
/// The protected parts of Codec that the tile path needs (a friend of Codec).
struct CodecTiles {
  static std::size_t params_bytes(const Codec& c) { return c.params_bytes(); }
  static void write_params(const Codec& c, std::uint8_t* dst) { c.write_params(dst); }
  static std::size_t max_payload_bytes(const Codec& c, std::size_t n) { return c.max_payload_bytes(n); }
  static Status encode_payload(const Codec& c, const float* x, std::size_t n, const SeedContext& ctx,
                               PayloadSink* sink) {
    return c.encode_payload(x, n, ctx, sink);
  }
  static Status decode_payload(const Codec& c, const MessageView& m, float* out) {
    return c.decode_payload(m, out, 1.0f, false);
  }
};
}  // namespace detail

namespace {
#if defined(GZ_HAVE_AVX2_CLONES)
/// stream_copy with 32-byte non-temporal stores (half the instructions of the SSE2 loop).
__attribute__((target("avx2"))) void stream_copy_avx2(std::uint8_t* d, const std::uint8_t* s, std::size_t bytes) {
  const std::size_t head = std::min(bytes, (32 - (reinterpret_cast<std::uintptr_t>(d) & 31u)) & 31u);
  if (head != 0) std::memcpy(d, s, head);
  std::size_t j = head;
  for (; j + 32 <= bytes; j += 32) {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + j), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + j)));
  }
  if (j < bytes) std::memcpy(d + j, s + j, bytes - j);
}
#endif
}  // namespace

void stream_copy(void* dst, const void* src, std::size_t bytes) {
  auto* d = static_cast<std::uint8_t*>(dst);
  const auto* s = static_cast<const std::uint8_t*>(src);
#if defined(GZ_HAVE_AVX2_CLONES)
  if (cpu_has_avx2()) return stream_copy_avx2(d, s, bytes);
#endif
#if defined(__SSE2__)
  const std::size_t head = std::min(bytes, (16 - (reinterpret_cast<std::uintptr_t>(d) & 15u)) & 15u);
  if (head != 0) std::memcpy(d, s, head);
  std::size_t j = head;
  for (; j + 16 <= bytes; j += 16) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + j), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + j)));
  }
  if (j < bytes) std::memcpy(d + j, s + j, bytes - j);
#else
  if (bytes != 0) std::memcpy(d, s, bytes);
#endif
}

void streaming_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

AbsClass FeedbackOps::classify(std::size_t i0, std::size_t cnt) const {
  float p[1024];
  AbsClass worst = AbsClass::kSmall;
  for (std::size_t k0 = 0; k0 < cnt; k0 += 1024) {
    const std::size_t m = std::min<std::size_t>(1024, cnt - k0);
    compensated(i0 + k0, m, p);
    worst = std::max(worst, classify_values(m, [&](std::size_t j) { return p[j]; }));
  }
  return worst;
}

AbsClass FeedbackOps::compensated_class(std::size_t i0, std::size_t cnt, float* p) const {
  compensated(i0, cnt, p);
  return classify_values(cnt, [p](std::size_t j) { return p[j]; });
}

namespace {

using detail::CodecTiles;

/// The message's XXH3-64, streamed: by the AVX2 build where it runs (as quant/wire.cc's
/// message_checksum), else by libxxhash. The same hash either way.
class StreamHash {
 public:
  StreamHash() : avx2_(detail::checksum_avx2_built() && cpu_has_avx2()) {
    if (avx2_) {
      detail::xxh3_avx2_reset(&avx2_state_);
    } else {
      XXH3_64bits_reset(&state_);
    }
  }
  void update(const void* data, std::size_t bytes) {
    if (avx2_) {
      detail::xxh3_avx2_update(&avx2_state_, data, bytes);
    } else {
      XXH3_64bits_update(&state_, data, bytes);
    }
  }
  std::uint64_t digest() const { return avx2_ ? detail::xxh3_avx2_digest(&avx2_state_) : XXH3_64bits_digest(&state_); }

 private:
  bool avx2_;
  detail::Xxh3Avx2State avx2_state_;
  XXH3_state_t state_;
};

/// Elements per tile: ~8 KB of floats per buffer (p, d, a payload tile and the streamed
/// state chunk stay within a 48 KB L1), whole multiples of the alignment.
constexpr std::size_t kTileTarget = 2048;

struct Scratch {
  std::vector<float> p, d;              // tile buffers, or n floats on the untiled paths
  std::vector<std::uint8_t> payload;    // one tile's payload
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}
float* sized(std::vector<float>* v, std::size_t n) {
  if (v->size() < n) v->resize(n);
  return v->data();
}


/// The tile pass (step 2 of quant/feedback.h). With a double-buffered ops each tile's p
/// is classified first; a tile that is not AbsClass::kSmall stops the pass (*stopped set,
/// Ok returned, nothing committed). Otherwise the caller commits.
Status tiled(const Codec& codec, FeedbackOps& ops, std::size_t n, const SeedContext& ctx, std::uint8_t* out,
             std::size_t* out_bytes, bool* stopped) {
  const std::size_t align = codec.tile_alignment();
  const std::size_t tile = align * std::max<std::size_t>(1, kTileTarget / align);
  Scratch& s = scratch();
  float* p = sized(&s.p, tile);
  float* d = sized(&s.d, tile);
  const std::size_t tile_payload = CodecTiles::max_payload_bytes(codec, tile);
  if (s.payload.size() < tile_payload) s.payload.resize(tile_payload);
  const std::size_t params = CodecTiles::params_bytes(codec);
  const std::size_t payload = codec.tile_region_bytes(0, n) + codec.tile_region_bytes(1, n);
  write_header_fields(out, codec.id(), 0, n, params, payload);
  CodecTiles::write_params(codec, out + kHeaderBytes);
  std::uint8_t* region0 = out + kHeaderBytes + params;
  std::uint8_t* region1 = region0 + codec.tile_region_bytes(0, n);
  const bool one_region = codec.tile_region_bytes(1, n) == 0;
  // One-region payloads are hashed tile by tile, in message order, while in cache.
  StreamHash hash;
  hash.update(out, 32);
  hash.update(out + kHeaderBytes, params);
  const bool check = ops.double_buffered();
  // Memory ef with a codec that has a fused tile kernel for its scale (1, or any where
  // Codec::ef_tile_scales): the kernel replaces compensated_class, encode, decode and
  // update (the next state goes through d when it is streamed).
  FeedbackOps::PlainResidual plain;
  const bool kernel =
      codec.has_ef_tile() && ops.plain_residual(&plain) && (plain.scale == 1.0f || codec.ef_tile_scales());
  // A large one-region payload is encoded into the scratch tile, hashed there and
  // streamed into the message (no read of the message's lines before their write).
  const bool stream_message = one_region && n >= kStreamingNumel;
  SeedContext tctx = ctx;
  for (std::size_t t0 = 0; t0 < n; t0 += tile) {
    const std::size_t cnt = std::min(tile, n - t0);
    // One-region payloads are encoded in place in the message; two-region ones through
    // the scratch payload, whose regions are then copied to their places.
    const bool in_place = one_region && !stream_message;
    std::uint8_t* dst = in_place ? region0 + codec.tile_region_bytes(0, t0) : s.payload.data();
    PayloadSink sink{dst, in_place ? CodecTiles::max_payload_bytes(codec, cnt) : s.payload.size(), 0, 0};
    tctx.first_element = t0;
    const std::size_t r0 = codec.tile_region_bytes(0, cnt);
    if (kernel) {
      const EfTile t{plain.grad + t0, plain.residual + t0, cnt, dst, plain.stream ? d : plain.next + t0, p,
                     plain.scale};
      if (codec.ef_tile(t, tctx) != AbsClass::kSmall) {
        *stopped = true;
        return Status::Ok();
      }
      sink.bytes = r0 + codec.tile_region_bytes(1, cnt);
    } else {
      if (!check) {
        ops.compensated(t0, cnt, p);
      } else if (ops.compensated_class(t0, cnt, p) != AbsClass::kSmall) {
        *stopped = true;
        return Status::Ok();
      }
      // Every |p| is below kSafeMaxAbs: a failure here is a codec bug.
      GZ_RETURN_IF_ERROR(CodecTiles::encode_payload(codec, p, cnt, tctx, &sink));
      if (sink.flags != 0 || sink.bytes != r0 + codec.tile_region_bytes(1, cnt)) {
        return Status(Errc::kInvalidArgument, "codec " + codec.spec() + " broke its tiling contract");
      }
    }
    if (one_region) {
      hash.update(dst, sink.bytes);
      if (stream_message) stream_copy(region0 + codec.tile_region_bytes(0, t0), dst, sink.bytes);
    } else {
      std::memcpy(region0 + codec.tile_region_bytes(0, t0), dst, r0);
      std::memcpy(region1 + codec.tile_region_bytes(1, t0), dst + r0, sink.bytes - r0);
    }
    if (kernel) {
      if (plain.stream) stream_copy(plain.next + t0, d, 4 * cnt);
      continue;
    }
    MessageView view;
    view.codec = codec.id();
    view.numel = cnt;
    view.params = out + kHeaderBytes;
    view.params_bytes = params;
    view.payload = dst;
    view.payload_bytes = sink.bytes;
    GZ_RETURN_IF_ERROR(CodecTiles::decode_payload(codec, view, d));
    ops.update(t0, cnt, p, d);
  }
  if (!one_region) hash.update(out + kHeaderBytes + params, payload);
  if (stream_message) streaming_fence();
  store_le<std::uint64_t>(out + 32, hash.digest());
  *out_bytes = kHeaderBytes + params + payload;
  return Status::Ok();
}

/// The reference's passes on scratch vectors; the state moves only after a good encode.
Status generic(const Codec& codec, FeedbackOps& ops, std::size_t n, const SeedContext& ctx, std::uint8_t* out,
               std::size_t cap, std::size_t* out_bytes) {
  Scratch& s = scratch();
  float* p = sized(&s.p, n);
  ops.compensated(0, n, p);
  GZ_RETURN_IF_ERROR(codec.encode(p, n, ctx, out, cap, out_bytes));
  float* d = sized(&s.d, n);
  GZ_RETURN_IF_ERROR(codec.decode(out, *out_bytes, d, n));
  ops.update(0, n, p, d);
  ops.commit();
  return Status::Ok();
}

Status untiled(const Codec& codec, FeedbackOps& ops, std::size_t n, const SeedContext& ctx, std::uint8_t* out,
               std::size_t cap, std::size_t* out_bytes) {
  switch (ops.sparse()) {
    case FeedbackOps::Sparse::kResidualMinusDecoded: {
      float* e = ops.sparse_target();
      ops.compensated(0, n, e);  // e = p in place; unsent elements keep p - 0 = p
      GZ_RETURN_IF_ERROR(codec.encode(e, n, ctx, out, cap, out_bytes));
      ops.unsent_residual(n);
      return codec.decode_add(out, *out_bytes, e, n, -1.0f);  // kept: e + (-1 * d) == e - d
    }
    case FeedbackOps::Sparse::kStatePlusDecoded: {
      float* p = sized(&scratch().p, n);
      ops.compensated(0, n, p);
      GZ_RETURN_IF_ERROR(codec.encode(p, n, ctx, out, cap, out_bytes));
      return codec.decode_add(out, *out_bytes, ops.sparse_target(), n, 1.0f);
    }
    case FeedbackOps::Sparse::kGeneric: break;
  }
  return generic(codec, ops, n, ctx, out, cap, out_bytes);
}

}  // namespace

Status encode_with_feedback(const Codec& codec, FeedbackOps& ops, std::size_t n, const SeedContext& ctx,
                            std::uint8_t* out, std::size_t out_capacity, std::size_t* out_bytes) {
  if (out == nullptr || out_bytes == nullptr) return Status(Errc::kInvalidArgument, "null pointer passed to encode");
  if (n > kMaxMessageNumel) return Status(Errc::kInvalidArgument, "bucket larger than 2^34 elements");
  if (ctx.first_element != 0) return Status(Errc::kInvalidArgument, "encode of a whole message needs first_element 0");
  const std::size_t need = codec.max_encoded_bytes(n);
  if (out_capacity < need) {
    return Status(Errc::kBufferTooSmall, "encode of " + std::to_string(n) + " elements needs " +
                                             std::to_string(need) + " bytes, got " + std::to_string(out_capacity));
  }
  static_assert(kSafeMaxAbs == 0x1p50f, "classify_values compares with the bits of 2^50");
  const bool tiles = codec.tile_alignment() != 0 && n != 0;
  bool stopped = false;
  if (tiles && ops.double_buffered()) {
    GZ_RETURN_IF_ERROR(tiled(codec, ops, n, ctx, out, out_bytes, &stopped));
    if (!stopped) {
      ops.commit();
      return Status::Ok();
    }
    // A tile held a NaN/Inf or a large |p|; nothing was committed: decide on the whole bucket.
  }
  const AbsClass worst = ops.classify(0, n);
  if (worst == AbsClass::kNonFinite) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
  if (worst == AbsClass::kLarge || n == 0) return generic(codec, ops, n, ctx, out, out_capacity, out_bytes);
  if (tiles) {
    GZ_RETURN_IF_ERROR(tiled(codec, ops, n, ctx, out, out_bytes, &stopped));
    ops.commit();
    return Status::Ok();
  }
  return untiled(codec, ops, n, ctx, out, out_capacity, out_bytes);
}

Status Memory::encode_step(const Codec& codec, const float* grad, std::size_t n, const SeedContext& ctx,
                           MemoryState* state, std::uint8_t* out, std::size_t out_capacity,
                           std::size_t* out_bytes) const {
  // A memory without fused operations: the reference on a copy of the state, kept only
  // when the encode succeeded.
  if (grad == nullptr && n != 0) return Status(Errc::kInvalidArgument, "null gradient");
  MemoryState next = *state;
  std::vector<float> p(n), d(n);
  compensate(grad, p.data(), n, &next);
  GZ_RETURN_IF_ERROR(codec.encode(p.data(), n, ctx, out, out_capacity, out_bytes));
  if (needs_decoded()) GZ_RETURN_IF_ERROR(codec.decode(out, *out_bytes, d.data(), n));
  update(p.data(), d.data(), n, &next);
  *state = std::move(next);
  return Status::Ok();
}

}  // namespace gradzip::quant
