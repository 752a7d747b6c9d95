// Host-side message checks of the element-wise codecs (identity, fp16, bf16) shared by
// the CPU codecs (identity.cc, half_codec.h) and their CUDA twins
// (quant/cuda_elementwise.cuh): no params, no flags, one little-endian word per element,
// and for the 16-bit formats no Inf/NaN value (the encoders never write one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "quant/status.h"
#include "quant/wire.h"

namespace gradzip::quant::elementwise {

/// Params size 0, flags 0, payload `word_bytes` per element; `name` is the codec's.
inline Status check_message(const MessageView& m, const char* name, std::size_t word_bytes) {
  if (m.params_bytes != 0) return Status(Errc::kBadParams, std::string(name) + " takes no params");
  if (m.flags != 0) return Status(Errc::kBadParams, "unknown header flags");
  if (m.payload_bytes != word_bytes * m.numel) {
    return Status(Errc::kBadLength, "payload is not " + std::to_string(word_bytes) + " bytes per element");
  }
  return Status::Ok();
}

/// A 16-bit float format on the wire.
struct HalfFormat {
  const char* name;               ///< codec (spec) name
  std::uint16_t exp_mask;         ///< exponent field; all ones = Inf/NaN
  const char* nonfinite_message;  ///< decode error for an Inf/NaN value
};
constexpr HalfFormat kFp16{"fp16", 0x7C00u, "a value in the message is an fp16 Inf or NaN"};
constexpr HalfFormat kBf16{"bf16", 0x7F80u, "a value in the message is a bfloat16 Inf or NaN"};

/// check_message with 2-byte words, then kNonFiniteScale if any value is Inf/NaN.
inline Status check_half_message(const MessageView& m, const HalfFormat& f) {
  GZ_RETURN_IF_ERROR(check_message(m, f.name, 2));
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < m.numel; ++i) {
    bad |= (load_le<std::uint16_t>(m.payload + 2 * i) & f.exp_mask) == f.exp_mask;
  }
  if (bad) return Status(Errc::kNonFiniteScale, f.nonfinite_message);
  return Status::Ok();
}

}  // namespace gradzip::quant::elementwise
