#include "comm/accounting.h"

#include <nlohmann/json.hpp>

namespace gradzip::comm {

std::uint64_t zmtp_frame_overhead(std::uint64_t frame_bytes) { return frame_bytes <= 255 ? 2 : 9; }

std::uint64_t estimate_tcpip_bytes(std::uint64_t app_bytes) {
  if (app_bytes == 0) return 0;
  const std::uint64_t segments = (app_bytes + kModelMss - 1) / kModelMss;
  return kSegmentOverheadBytes * segments + kAckFrameBytes * ((segments + 1) / 2);
}

void count_message(DirectionCounters* c, const std::size_t* frame_bytes, std::size_t frames, double seconds) {
  std::uint64_t payload = 0, framing = 0;
  for (std::size_t i = 0; i < frames; ++i) {
    framing += zmtp_frame_overhead(frame_bytes[i]);
    if (i == 0) {
      framing += frame_bytes[i];
    } else {
      payload += frame_bytes[i];
    }
  }
  c->messages += 1;
  c->payload_bytes += payload;
  c->framing_bytes += framing;
  c->tcpip_bytes += estimate_tcpip_bytes(payload + framing);
  c->seconds += seconds;
}

void accumulate(DirectionCounters* a, const DirectionCounters& b) {
  a->messages += b.messages;
  a->payload_bytes += b.payload_bytes;
  a->framing_bytes += b.framing_bytes;
  a->tcpip_bytes += b.tcpip_bytes;
  a->seconds += b.seconds;
}

void accumulate(TrafficCounters* a, const TrafficCounters& b) {
  accumulate(&a->up, b.up);
  accumulate(&a->down, b.down);
}

namespace {
nlohmann::json dir_json(const DirectionCounters& c) {
  return {{"messages", c.messages},         {"payload_bytes", c.payload_bytes}, {"framing_bytes", c.framing_bytes},
          {"tcpip_bytes", c.tcpip_bytes}, {"seconds", c.seconds}};
}
}  // namespace

std::string counters_json(const TrafficCounters& c) {
  return nlohmann::json{{"up", dir_json(c.up)}, {"down", dir_json(c.down)}}.dump();
}

}  // namespace gradzip::comm
