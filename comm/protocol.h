// The parameter-server protocol: the envelope that precedes every gradzip message
// between a worker and a shard. The ZeroMQ transport sends it as the first frame of a
// multipart message; the in-process transport hands the same bytes to the same Shard.
//
// A request or reply = [envelope (40 bytes)] [body frame 0] [body frame 1] ...
//
// Envelope, little-endian, offsets in bytes:
//   off size field
//    0   4   magic     "GZPS" (0x47 0x5A 0x50 0x53)
//    4   2   version   kProtocolVersion (2)
//    6   1   type      MsgType (requests < 0x80; reply = request | 0x80; kError = 0xFF)
//    7   1   flags     kFlag* bits below; a request carries none but kFlagOneBucket on a
//                      pull (anything else is refused: kMalformed)
//    8   4   worker    worker rank (requests) / echoed (replies)
//   12   4   bucket    push: bucket id; pull with kFlagOneBucket: the bucket asked for;
//                      pull reply: number of body frames (kFlagPart: the bucket's index in
//                      Layout::shard_buckets); error: ProtoErr;
//                      push reply with kFlagStaleness: the push's staleness
//   16   8   step      training step (0-based) of a push or pull; kLatestStep = "now"
//   24   8   seq       request id, unique per worker and monotonic; echoed in the reply;
//                      a retried request reuses it (dedup key (worker, step, seq))
//   32   8   aux       hello/push/pull reply: shard version (steps applied);
//                      hello request: heartbeat interval the worker promises, ms (0 = none);
//                      pull request: the step of the worker's replica (compressed downlink)
//
// Bodies by type:
//   kHello     [signature JSON (signature_to_json)]      reply: none (flag kFlagUninitialized)
//              A matching hello binds `worker` to the connection it came from; every
//              other request type is refused (kNotBound) unless it comes from that
//              connection (comm/shard.h, "who may speak for a worker").
//   kInit      [one identity message per shard bucket]   reply: none (first init wins)
//   kPush      [gradzip message of bucket `bucket`]      reply: none (flags stale/duplicate)
//   kPull      none                                      reply: one gradzip message per
//              shard bucket in Layout::shard_buckets order (with kFlagOneBucket: of
//              bucket `bucket` only, in one reply without kFlagPart): dense = identity
//              message of the parameters; with kFlagDelta = the compressed update to add.
//              A dense reply to a whole-model pull comes as one message per bucket
//              (kFlagPart, one body frame, aux = the step count the bucket reflects), each
//              sent as soon as its bucket is final, so a worker decodes while the rest is
//              in flight
//   kBarrier, kHeartbeat, kShutdown: none                reply: none
//   kReduce    [identity message of the round's floats]  reply: [identity message of the sum]
//              PowerSGD over the shard (--compressor powersgd with --aggregation ps; one
//              shard, sync): `bucket` = round (1: every worker's p -> the sum of p; 2: q
//              then the dense tensors -> the sum of q only). Sizes and order in
//              comm/powersgd_tensors.h; semantics in comm/shard.h. A shard answers once
//              every live worker sent the round (a repeat gets the same reply again).
//   kError (reply only) [UTF-8 text naming what was wrong]; bucket = ProtoErr
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "comm/transport.h"

namespace gradzip::comm {

constexpr std::uint32_t kProtocolMagic = 0x53505A47u;  // "GZPS"
constexpr std::uint16_t kProtocolVersion = 2;  // 2: pull replies in parts (kFlagPart), one-bucket pulls, staleness
constexpr std::size_t kEnvelopeBytes = 40;
constexpr std::uint64_t kLatestStep = ~std::uint64_t{0};

enum class MsgType : std::uint8_t {
  kHello = 1,
  kInit = 2,
  kPush = 3,
  kPull = 4,
  kBarrier = 5,
  kHeartbeat = 6,
  kShutdown = 7,
  kReduce = 8,  ///< PowerSGD over the parameter server (comm/shard_reduce.cc)
  kError = 0xFF,
};
constexpr std::uint8_t kReplyBit = 0x80;

/// The type of the reply to a request of type `request` (request | kReplyBit).
constexpr MsgType reply_type(MsgType request) {
  return static_cast<MsgType>(static_cast<std::uint8_t>(request) | kReplyBit);
}
/// True for kError and every reply type (what a shard must never receive as a request).
constexpr bool is_reply_type(MsgType t) {
  return t == MsgType::kError || (static_cast<std::uint8_t>(t) & kReplyBit) != 0;
}

constexpr std::uint8_t kFlagDelta = 0x01;          ///< pull reply: frames are updates to add
constexpr std::uint8_t kFlagStale = 0x02;          ///< push reply: step already applied; dropped
constexpr std::uint8_t kFlagDuplicate = 0x04;      ///< push reply: already received; not re-applied
constexpr std::uint8_t kFlagUninitialized = 0x08;  ///< hello reply: shard holds no parameters yet
constexpr std::uint8_t kFlagOneBucket = 0x10;      ///< pull request: only bucket `bucket` (one reply frame)
/// push reply (async/ssp, applied): `bucket` holds the push's staleness, the updates of
/// that bucket applied since the worker last pulled it (saturated at 2^32 - 1).
constexpr std::uint8_t kFlagStaleness = 0x20;
/// pull reply to a whole-model dense pull: one bucket (its index in `bucket`). Never set
/// on the reply to a kFlagOneBucket pull, so the client tells the two apart.
constexpr std::uint8_t kFlagPart = 0x40;

/// Why a request was refused (sent in the error envelope's bucket field). Stable values.
enum class ProtoErr : std::uint32_t {
  kMalformed = 1,          ///< wrong frame count, short envelope, bad magic/version/type
  kSignatureMismatch = 2,  ///< handshake: model signature differs (text says what)
  kUnknownWorker = 3,      ///< worker rank >= number of workers
  kNotOwned = 4,           ///< bucket id not owned by this shard
  kWrongStep = 5,          ///< step outside the accepted window
  kBadMessage = 6,         ///< gradzip message failed validation (quant Errc in the text)
  kCodecMismatch = 7,      ///< message codec differs from the handshake's codec for the bucket
  kSizeMismatch = 8,       ///< message numel differs from the bucket's
  kBusy = 9,               ///< too many steps pending; retry later
  kUninitialized = 10,     ///< push before the shard holds parameters
  kNotBound = 11,          ///< request for a worker rank from a connection its hello did not bind
  kRankTaken = 12,         ///< hello for a live worker rank bound to another connection
  kDeclaredDead = 13,      ///< the rank was declared dead (timeout); a hello rejoins it
  kNotReducing = 14,       ///< kReduce to a shard that runs no PowerSGD, or of another step/round than it expects
};
const char* proto_err_name(ProtoErr e);

/// Decoded envelope (host-order fields).
struct Envelope {
  MsgType type = MsgType::kHello;
  std::uint8_t flags = 0;
  std::uint32_t worker = 0;
  std::uint32_t bucket = 0;
  std::uint64_t step = 0;
  std::uint64_t seq = 0;
  std::uint64_t aux = 0;
};

/// Writes the 40-byte envelope into dst[0, kEnvelopeBytes).
void write_envelope(const Envelope& e, std::uint8_t* dst);
/// Validates magic, version, length and a known type; false (and a reason) otherwise.
/// Reads nothing outside [src, src + bytes).
bool read_envelope(const std::uint8_t* src, std::size_t bytes, Envelope* e, std::string* why);

/// JSON text of a signature (tensors, specs, placement) for the handshake, and back.
/// signature_from_json returns false with a reason on malformed text (never throws).
std::string signature_to_json(const ModelSignature& s);
bool signature_from_json(const std::uint8_t* text, std::size_t bytes, ModelSignature* s, std::string* why);

}  // namespace gradzip::comm
