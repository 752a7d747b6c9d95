#include "quant/codec.h"

#include <cmath>
#include <cstring>
#include <string>

#include "quant/cpu.h"
#include "quant/registry.h"

namespace gradzip::quant {

bool all_finite(const float* x, std::size_t n) {
  // An IEEE binary32 is NaN or Inf iff its exponent bits are all ones. OR-ing the
  // "exponent all ones" test over integer lanes has no loop-carried float dependency,
  // so it vectorizes (a float accumulation chain would run serially).
  // Compiled for AVX2 where the CPU has it (quant/cpu.h).
  const std::uint32_t bad = with_simd([&]() __attribute__((always_inline)) {
    std::uint32_t any = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t u;
      std::memcpy(&u, x + i, 4);
      any |= static_cast<std::uint32_t>((u & 0x7F800000u) == 0x7F800000u);
    }
    return any;
  });
  return bad == 0;
}

Status Codec::encode(const float* grad, std::size_t n, const SeedContext& ctx, std::uint8_t* out,
                     std::size_t out_capacity, std::size_t* out_bytes) const {
  if ((grad == nullptr && n != 0) || out == nullptr || out_bytes == nullptr) {
    return Status(Errc::kInvalidArgument, "null pointer passed to encode");
  }
  if (n > kMaxMessageNumel) return Status(Errc::kInvalidArgument, "bucket larger than 2^34 elements");
  if (ctx.first_element != 0) return Status(Errc::kInvalidArgument, "encode of a whole message needs first_element 0");
  const std::size_t need = max_encoded_bytes(n);
  if (out_capacity < need) {
    return Status(Errc::kBufferTooSmall, "encode of " + std::to_string(n) + " elements needs " +
                                             std::to_string(need) + " bytes, got " + std::to_string(out_capacity));
  }
  const std::size_t pbytes = params_bytes();
  write_params(out + kHeaderBytes);
  PayloadSink sink{out + kHeaderBytes + pbytes, out_capacity - kHeaderBytes - pbytes, 0, 0};
  GZ_RETURN_IF_ERROR(encode_payload(grad, n, ctx, &sink));
  write_header(out, id(), sink.flags, n, pbytes, sink.bytes);
  *out_bytes = kHeaderBytes + pbytes + sink.bytes;
  return Status::Ok();
}

std::vector<std::uint8_t> Codec::encode(const float* grad, std::size_t n, const SeedContext& ctx) const {
  std::vector<std::uint8_t> out(max_encoded_bytes(n));
  std::size_t bytes = 0;
  const Status st = encode(grad, n, ctx, out.data(), out.size(), &bytes);
  if (!st.ok()) throw QuantError(st);
  out.resize(bytes);
  return out;
}

Status parse_message_for(const std::uint8_t* msg, std::size_t bytes, CodecId expected, std::size_t n,
                         MessageView* view) {
  GZ_RETURN_IF_ERROR(parse_message(msg, bytes, view));
  if (view->codec != expected) {
    return Status(Errc::kCodecMismatch, std::string("message holds codec '") + codec_name(view->codec) +
                                            "', expected '" + codec_name(expected) + "'");
  }
  if (view->numel != n) {
    return Status(Errc::kSizeMismatch, "message has " + std::to_string(view->numel) + " elements, buffer has " +
                                           std::to_string(n));
  }
  return Status::Ok();
}

Status Codec::decode_impl(const std::uint8_t* msg, std::size_t bytes, float* out, std::size_t n, float scale,
                          bool accumulate) const {
  if (out == nullptr && n != 0) return Status(Errc::kInvalidArgument, "null output pointer");
  MessageView m;
  GZ_RETURN_IF_ERROR(parse_message_for(msg, bytes, id(), n, &m));
  if (accumulate && !std::isfinite(scale)) return Status(Errc::kInvalidArgument, "non-finite decode_add scale");
  return decode_payload(m, out, scale, accumulate);
}

Status Codec::decode(const std::uint8_t* msg, std::size_t bytes, float* out, std::size_t n) const {
  return decode_impl(msg, bytes, out, n, 1.0f, false);
}

Status Codec::decode_add(const std::uint8_t* msg, std::size_t bytes, float* acc, std::size_t n,
                         float scale) const {
  return decode_impl(msg, bytes, acc, n, scale, true);
}

namespace {
Status codec_for_message(const std::uint8_t* msg, std::size_t bytes, std::unique_ptr<Codec>* codec) {
  CodecId id;
  if (!peek_codec(msg, bytes, &id)) return Status(Errc::kTruncated, "message shorter than the header");
  const CodecEntry* entry = find_codec(id);
  if (entry == nullptr) {
    return Status(Errc::kUnknownCodec, "codec id " + std::to_string(static_cast<int>(id)) + " is not registered");
  }
  *codec = make_codec(entry->name, {});
  return Status::Ok();
}
}  // namespace

Status decode_any(const std::uint8_t* msg, std::size_t bytes, float* out, std::size_t n) {
  std::unique_ptr<Codec> codec;
  GZ_RETURN_IF_ERROR(codec_for_message(msg, bytes, &codec));
  return codec->decode(msg, bytes, out, n);
}

Status decode_add_any(const std::uint8_t* msg, std::size_t bytes, float* acc, std::size_t n, float scale) {
  std::unique_ptr<Codec> codec;
  GZ_RETURN_IF_ERROR(codec_for_message(msg, bytes, &codec));
  return codec->decode_add(msg, bytes, acc, n, scale);
}

}  // namespace gradzip::quant
