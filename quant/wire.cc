#include "quant/wire.h"

#include <string>

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack (no heap allocation per message)
#include <xxhash.h>

#include "quant/checksum_avx2.h"
#include "quant/cpu.h"

namespace gradzip::quant {

std::uint64_t message_checksum(const std::uint8_t* msg, std::size_t params_bytes, std::size_t payload_bytes) {
  // The same XXH3-64 either way (quant/checksum_avx2.cc); the AVX2 build where it runs.
  static const bool avx2_built = detail::checksum_avx2_built();
  if (avx2_built && cpu_has_avx2()) {
    return detail::xxh3_two_ranges_avx2(msg, 32, msg + kHeaderBytes, params_bytes + payload_bytes);
  }
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, msg, 32);
  XXH3_64bits_update(&state, msg + kHeaderBytes, params_bytes + payload_bytes);
  return XXH3_64bits_digest(&state);
}

void write_header_fields(std::uint8_t* msg, CodecId codec, std::uint8_t flags, std::uint64_t numel,
                         std::size_t params_bytes, std::size_t payload_bytes) {
  store_le<std::uint32_t>(msg + 0, kWireMagic);
  store_le<std::uint16_t>(msg + 4, kWireVersion);
  msg[6] = static_cast<std::uint8_t>(codec);
  msg[7] = flags;
  store_le<std::uint64_t>(msg + 8, numel);
  store_le<std::uint64_t>(msg + 16, payload_bytes);
  store_le<std::uint32_t>(msg + 24, static_cast<std::uint32_t>(params_bytes));
  store_le<std::uint32_t>(msg + 28, 0);
}

void write_header(std::uint8_t* msg, CodecId codec, std::uint8_t flags, std::uint64_t numel,
                  std::size_t params_bytes, std::size_t payload_bytes) {
  write_header_fields(msg, codec, flags, numel, params_bytes, payload_bytes);
  store_le<std::uint64_t>(msg + 32, message_checksum(msg, params_bytes, payload_bytes));
}

Status parse_message(const std::uint8_t* msg, std::size_t bytes, MessageView* view) {
  if (msg == nullptr && bytes != 0) return Status(Errc::kInvalidArgument, "null message pointer");
  if (bytes < kHeaderBytes) {
    return Status(Errc::kTruncated, "message of " + std::to_string(bytes) + " bytes is shorter than the " +
                                        std::to_string(kHeaderBytes) + "-byte header");
  }
  if (load_le<std::uint32_t>(msg) != kWireMagic) return Status(Errc::kBadMagic, "not a gradzip message");
  const auto version = load_le<std::uint16_t>(msg + 4);
  if (version != kWireVersion) {
    return Status(Errc::kBadVersion, "wire version " + std::to_string(version) + ", this build reads " +
                                         std::to_string(kWireVersion));
  }
  if (load_le<std::uint32_t>(msg + 28) != 0) return Status(Errc::kBadLength, "reserved header word is not zero");
  const auto numel = load_le<std::uint64_t>(msg + 8);
  const auto payload_bytes = load_le<std::uint64_t>(msg + 16);
  const auto params_bytes = load_le<std::uint32_t>(msg + 24);
  if (numel > kMaxMessageNumel) {
    return Status(Errc::kBadLength, "element count " + std::to_string(numel) + " exceeds the limit 2^34");
  }
  const std::uint64_t body = bytes - kHeaderBytes;
  if (params_bytes > body || payload_bytes > body - params_bytes) {
    return Status(Errc::kTruncated, "header declares " + std::to_string(params_bytes) + " param + " +
                                        std::to_string(payload_bytes) + " payload bytes, message has " +
                                        std::to_string(body));
  }
  if (params_bytes + payload_bytes != body) {
    return Status(Errc::kBadLength, "message has " + std::to_string(body - params_bytes - payload_bytes) +
                                        " trailing bytes after the payload");
  }
  const auto stored = load_le<std::uint64_t>(msg + 32);
  const auto computed = message_checksum(msg, params_bytes, payload_bytes);
  if (stored != computed) return Status(Errc::kBadChecksum, "xxh3 checksum mismatch");
  view->codec = static_cast<CodecId>(msg[6]);
  view->flags = msg[7];
  view->numel = numel;
  view->params = msg + kHeaderBytes;
  view->params_bytes = params_bytes;
  view->payload = msg + kHeaderBytes + params_bytes;
  view->payload_bytes = payload_bytes;
  return Status::Ok();
}

}  // namespace gradzip::quant
