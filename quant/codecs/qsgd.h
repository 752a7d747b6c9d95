// Host-side definition of the qsgd codec shared by the CPU codec (qsgd.cc) and its CUDA
// twin (qsgd.cu): its parameters, read once from a spec or from a message's params block,
// and the decoder's checks of a message. The format and the algorithm are documented at
// the top of qsgd.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "quant/codecs/bucketed.h"

namespace gradzip::quant::qsgd {

/// Params block: u8 bits | u8 norm | u16 reserved (0) | u32 LE bucket.
constexpr std::size_t kParamsBytes = 8;
enum class Norm : std::uint8_t { kL2 = 0, kMax = 1 };

struct Settings {
  unsigned bits = 4;           ///< bits per element, 2..8 (sign + level)
  Norm norm = Norm::kL2;       ///< bucket norm the levels are scaled to
  std::uint32_t bucket = 512;  ///< elements per bucket
};

/// From a spec's params (already validated by the registry).
inline Settings from_params(const Params& p) {
  Settings s;
  s.bits = static_cast<unsigned>(p.get_int("bits"));
  s.bucket = bucketed::bucket_from(p);
  s.norm = p.get_enum("norm") == "max" ? Norm::kMax : Norm::kL2;
  return s;
}

inline void write_params(const Settings& s, std::uint8_t* dst) {
  dst[0] = static_cast<std::uint8_t>(s.bits);
  dst[1] = static_cast<std::uint8_t>(s.norm);
  store_le<std::uint16_t>(dst + 2, 0);
  store_le<std::uint32_t>(dst + 4, s.bucket);
}

/// The decoder's checks, run by both twins before anything is written: params block
/// (size, bits 2..8, norm 0/1, reserved 0), then bucketed::check_common and every scale.
/// Sets *s to the message's settings.
inline Status parse_message(const MessageView& m, Settings* s) {
  if (m.params_bytes != kParamsBytes) return Status(Errc::kBadParams, "qsgd params block must be 8 bytes");
  const unsigned bits = m.params[0];
  const std::uint8_t norm = m.params[1];
  const std::uint32_t bucket = load_le<std::uint32_t>(m.params + 4);
  if (bits < 2 || bits > 8) return Status(Errc::kBadParams, "qsgd bits=" + std::to_string(bits) + " outside 2..8");
  if (norm > 1) return Status(Errc::kBadParams, "qsgd norm id " + std::to_string(norm) + " is not 0 (l2) or 1 (max)");
  if (load_le<std::uint16_t>(m.params + 2) != 0) return Status(Errc::kBadParams, "qsgd reserved params are not 0");
  GZ_RETURN_IF_ERROR(bucketed::check_common(m, kParamsBytes, bucket, 1, bits));
  GZ_RETURN_IF_ERROR(bucketed::check_scales(m.payload, bucketed::num_buckets(m.numel, bucket), 1,
                                            [](std::size_t) { return true; }));
  s->bits = bits;
  s->norm = norm == 0 ? Norm::kL2 : Norm::kMax;
  s->bucket = bucket;
  return Status::Ok();
}

}  // namespace gradzip::quant::qsgd
