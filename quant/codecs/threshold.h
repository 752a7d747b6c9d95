// Host-side definition of the threshold codec shared by the CPU codec (threshold.cc) and
// its CUDA twin (threshold.cu): its parameters, read once from a spec or from a message's
// params block, and the decoder's checks of a message. The format and the selection rule
// are documented at the top of threshold.cc.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "quant/sparse.h"

namespace gradzip::quant::threshold {

/// Params block: u8 values | u8x3 reserved (0) | f32 tau.
constexpr std::size_t kParamsBytes = 8;

struct Settings {
  float tau = 0.001f;                         ///< magnitude threshold, finite and >= 0
  SparseValues values = SparseValues::kFp32;  ///< value format on the wire
};

/// From a spec's params (already validated by the registry).
inline Settings from_params(const Params& p) {
  return {static_cast<float>(p.get_float("tau")), sparse_values_from_name(p.get_enum("values"))};
}

inline void write_params(const Settings& s, std::uint8_t* dst) {
  std::fill(dst, dst + kParamsBytes, std::uint8_t{0});
  dst[0] = static_cast<std::uint8_t>(s.values);
  store_le<float>(dst + 4, s.tau);
}

/// The decoder's checks, run by both twins before anything is written: params block
/// (size, value format, reserved 0, tau finite and >= 0) and the sparse block (any count).
/// Sets *s and *view (the validated block).
inline Status parse_message(const MessageView& m, Settings* s, SparseBlockView* view) {
  if (m.params_bytes != kParamsBytes) return Status(Errc::kBadParams, "threshold params must be 8 bytes");
  GZ_RETURN_IF_ERROR(sparse_values_from_wire(m.params[0], &s->values));
  if (m.params[1] != 0 || m.params[2] != 0 || m.params[3] != 0) {
    return Status(Errc::kBadParams, "threshold reserved param bytes are not zero");
  }
  s->tau = load_le<float>(m.params + 4);
  if (!(s->tau >= 0.0f && s->tau <= 3.4e38f)) {
    return Status(Errc::kBadParams, "threshold tau " + std::to_string(s->tau) + " is not finite and >= 0");
  }
  return parse_sparse_block(m.payload, m.payload_bytes, m.numel, m.flags, s->values, view);
}

}  // namespace gradzip::quant::threshold
