// Byte accounting: what each message costs on the wire, split into
//   payload  = gradzip bytes (quant/wire.h messages, handshake JSON, error text),
//   framing  = the 40-byte protocol envelope (comm/protocol.h) + ZMTP 3.x frame headers,
//   tcpip    = an estimate of TCP/IP/Ethernet header bytes (formula below).
//
// ZMTP 3 frame header (RFC 23/ZMTP): 1 flags byte + 1 size byte for bodies <= 255 bytes,
// or 1 flags byte + 8 size bytes ("long" frames). A ROUTER adds no bytes on the wire
// (the routing id is local), so a multipart message of k frames costs sum(header_i).
//
// TCP/IP estimate, modelling a standard Ethernet link with MTU 1500 (not loopback's
// 64 KiB MTU, so numbers transfer to a real cluster): a burst of B application bytes
// is cut into S = ceil(B / 1448) segments (MSS = 1500 - 20 IP - 32 TCP with timestamps);
// each data segment costs 20 (IPv4) + 32 (TCP + timestamp option) + 38 (Ethernet:
// 14 header + 4 FCS + 8 preamble/SFD + 12 inter-frame gap) = 90 bytes; the receiver
// sends one delayed ACK per 2 segments (RFC 1122 4.2.3.2), each a minimum Ethernet frame
// 64 + 8 + 12 = 84 bytes, counted with the direction of the data it acknowledges:
//   tcpip(B) = 90 * S + 84 * ceil(S / 2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "comm/transport.h"

namespace gradzip::comm {

constexpr std::uint64_t kModelMss = 1448;
constexpr std::uint64_t kSegmentOverheadBytes = 90;
constexpr std::uint64_t kAckFrameBytes = 84;

/// ZMTP 3 header bytes of one frame of `frame_bytes` body bytes (2 or 9).
std::uint64_t zmtp_frame_overhead(std::uint64_t frame_bytes);
/// tcpip(B) from the formula above; 0 for B == 0.
std::uint64_t estimate_tcpip_bytes(std::uint64_t app_bytes);

/// Adds one multipart message to `c`: frame 0 is the envelope (framing), the rest are
/// payload. `seconds` is added to c->seconds.
void count_message(DirectionCounters* c, const std::size_t* frame_bytes, std::size_t frames, double seconds = 0.0);

/// Adds b into a.
void accumulate(DirectionCounters* a, const DirectionCounters& b);
void accumulate(TrafficCounters* a, const TrafficCounters& b);

/// JSON object text {"messages":..,"payload_bytes":..,...} of counters (for run directories).
std::string counters_json(const TrafficCounters& c);

}  // namespace gradzip::comm
