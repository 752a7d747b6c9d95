// Host-side definition of the terngrad codec shared by the CPU codec (terngrad.cc) and its
// CUDA twin (terngrad.cu): its parameters, read once from a spec or from a message's params
// block, and the decoder's checks of a message. The format and the algorithm are
// documented at the top of terngrad.cc.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "quant/codecs/bucketed.h"

namespace gradzip::quant::terngrad {

/// Params block: u32 LE bucket | f32 LE clip.
constexpr std::size_t kParamsBytes = 8;

struct Settings {
  std::uint32_t bucket = 512;  ///< elements per bucket
  float clip = 0.0f;           ///< clipping factor c (0: no clipping)
};

/// From a spec's params (already validated by the registry).
inline Settings from_params(const Params& p) {
  return {bucketed::bucket_from(p), static_cast<float>(p.get_float("clip"))};
}

inline void write_params(const Settings& s, std::uint8_t* dst) {
  store_le<std::uint32_t>(dst, s.bucket);
  store_le<float>(dst + 4, s.clip);
}

/// The decoder's checks, run by both twins before anything is written: params block
/// (size, clip finite and >= 0), then bucketed::check_common and every scale. Sets *s to
/// the message's settings.
inline Status parse_message(const MessageView& m, Settings* s) {
  if (m.params_bytes != kParamsBytes) return Status(Errc::kBadParams, "terngrad params block must be 8 bytes");
  const std::uint32_t bucket = load_le<std::uint32_t>(m.params);
  const float clip = load_le<float>(m.params + 4);
  if (!(clip >= 0.0f) || !std::isfinite(clip)) {
    return Status(Errc::kBadParams, "terngrad clip is negative or not finite");
  }
  GZ_RETURN_IF_ERROR(bucketed::check_common(m, kParamsBytes, bucket, 1, 2));
  GZ_RETURN_IF_ERROR(bucketed::check_scales(m.payload, bucketed::num_buckets(m.numel, bucket), 1,
                                            [](std::size_t) { return true; }));
  *s = {bucket, clip};
  return Status::Ok();
}

}  // namespace gradzip::quant::terngrad
