// Host-side message checks of the natural codec, shared by the CPU codec (natural.cc) and
// its CUDA twin (natural.cu). The format is documented at the top of natural.cc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/bitpack.h"
#include "quant/status.h"
#include "quant/wire.h"

namespace gradzip::quant::natural {

/// The decoder's checks, run by both twins before anything is written: no params, no
/// flags, payload n + ceil(n/8) bytes, no exponent code 255 (Inf/NaN: never encoded).
inline Status check_message(const MessageView& m) {
  if (m.params_bytes != 0) return Status(Errc::kBadParams, "natural takes no params");
  if (m.flags != 0) return Status(Errc::kBadParams, "unknown header flags");
  if (m.payload_bytes != m.numel + packed_bytes(m.numel, 1)) {
    return Status(Errc::kBadLength, "payload is not n + ceil(n/8) bytes");
  }
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < m.numel; ++i) bad |= m.payload[i] == 0xFFu;
  if (bad) return Status(Errc::kNonFiniteScale, "an exponent code in the message is 255 (Inf/NaN)");
  return Status::Ok();
}

}  // namespace gradzip::quant::natural
