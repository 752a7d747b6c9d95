// Wire format v1 of a gradzip message. Every encoded bucket that crosses a process or
// a link has this layout; the decoder validates all of it before it reads the payload.
//
// All integers little-endian. Offsets in bytes:
//
//   off  size  field
//    0    4    magic          0x47 0x44 0x5A 0x51 ("GDZQ")
//    4    2    version        kWireVersion (1)
//    6    1    codec id       CodecId
//    7    1    flags          codec-specific bits (kFlag*); unknown bits are refused
//    8    8    numel          number of fp32 elements the message describes
//   16    8    payload_bytes  length of the payload that follows the params
//   24    4    params_bytes   length of the codec parameter block
//   28    4    reserved       must be 0
//   32    8    checksum       XXH3-64 (seed 0) of bytes [0, 32) ++ params ++ payload
//   40    P    params         codec parameters (layout documented in each codec file)
//   40+P  L    payload        codec payload (layout documented in each codec file)
//
// Total size = kHeaderBytes + params_bytes + payload_bytes, exactly (no padding).
// A change to any of this is a version bump; golden vectors in tests/ pin it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "quant/status.h"

namespace gradzip::quant {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "gradzip's wire helpers assume a little-endian host");

constexpr std::uint32_t kWireMagic = 0x515A4447u;  // bytes "GDZQ"
constexpr std::uint16_t kWireVersion = 1;
constexpr std::size_t kHeaderBytes = 40;
/// Largest element count a message may declare (2^34: the Philox counter layout limit).
constexpr std::uint64_t kMaxMessageNumel = std::uint64_t{1} << 34;

/// Codec ids on the wire, one per row of quant/codecs/codec_list.inc (the codec list).
/// Stable: never renumber, only append.
enum class CodecId : std::uint8_t {
#define GRADZIP_CODEC(enumerator, wire_id, stem, twin) enumerator = wire_id,
#include "quant/codecs/codec_list.inc"
#undef GRADZIP_CODEC
};

/// Header flag bits. A codec declares which it may set; others are refused on decode.
constexpr std::uint8_t kFlagDeltaVarintIndices = 0x01;  ///< sparse indices are delta-varint coded

/// Little-endian stores/loads through memcpy (no alignment assumptions).
template <typename T>
inline void store_le(std::uint8_t* dst, T value) {
  std::memcpy(dst, &value, sizeof(T));
}
template <typename T>
inline T load_le(const std::uint8_t* src) {
  T value;
  std::memcpy(&value, src, sizeof(T));
  return value;
}

/// A validated, non-owning view of one message (points into the caller's bytes).
struct MessageView {
  CodecId codec = CodecId::kIdentity;
  std::uint8_t flags = 0;
  std::uint64_t numel = 0;
  const std::uint8_t* params = nullptr;
  std::size_t params_bytes = 0;
  const std::uint8_t* payload = nullptr;
  std::size_t payload_bytes = 0;
};

/// Validates magic, version, reserved bits, lengths and checksum of `bytes` bytes at
/// `msg` and fills `view`. Reads nothing outside [msg, msg + bytes). Does not look at
/// codec-specific params or payload (the codec does that).
Status parse_message(const std::uint8_t* msg, std::size_t bytes, MessageView* view);

/// Writes the header for a message whose params and payload are already in place at
/// msg + kHeaderBytes, and computes the checksum. `msg` must hold
/// kHeaderBytes + params_bytes + payload_bytes bytes.
void write_header(std::uint8_t* msg, CodecId codec, std::uint8_t flags, std::uint64_t numel,
                  std::size_t params_bytes, std::size_t payload_bytes);

/// write_header without the checksum: bytes [0, 32) of the header, so a writer that
/// produces the payload piece by piece can hash it while it is in cache (quant/feedback.cc)
/// and store the XXH3-64 of [0, 32) ++ params ++ payload at msg + 32 itself.
void write_header_fields(std::uint8_t* msg, CodecId codec, std::uint8_t flags, std::uint64_t numel,
                         std::size_t params_bytes, std::size_t payload_bytes);

/// XXH3-64 of the checksummed ranges of a complete message (see the table above).
std::uint64_t message_checksum(const std::uint8_t* msg, std::size_t params_bytes, std::size_t payload_bytes);

/// Reads the codec id of a message without validating the rest (for routing/logging);
/// kUnknownCodec-style errors are reported by parse_message, not here.
inline bool peek_codec(const std::uint8_t* msg, std::size_t bytes, CodecId* codec) {
  if (bytes < kHeaderBytes) return false;
  *codec = static_cast<CodecId>(msg[6]);
  return true;
}

}  // namespace gradzip::quant
