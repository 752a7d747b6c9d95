#include "comm/zmq_handshake.h"

#include <cstring>

#include <fmt/format.h>

namespace gradzip::comm {

HandshakeWatch::HandshakeWatch(zmq::context_t& ctx, zmq::socket_t& socket, const std::string& name, bool curve)
    : monitor_(ctx, zmq::socket_type::pair), curve_(curve) {
  const int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
  if (zmq_socket_monitor(socket.handle(), name.c_str(), events) != 0) throw zmq::error_t();
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(name);
}

std::string HandshakeWatch::drain() {
  std::string refused;
  for (;;) {
    zmq::message_t event, address;
    if (!monitor_.recv(event, zmq::recv_flags::dontwait)) break;
    if (!event.more() || !monitor_.recv(address, zmq::recv_flags::dontwait) || event.size() < 6) continue;
    std::uint16_t id = 0;
    std::uint32_t value = 0;
    std::memcpy(&id, event.data(), 2);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, 4);
    switch (id) {
      case ZMQ_EVENT_CONNECTED:
      case ZMQ_EVENT_ACCEPTED: connected_ = true; break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        connected_ = false;
        silent_failures_ = 0;
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        ++failures_;
        connected_ = false;
        refused = fmt::format("the peer's ZAP handler refused this CURVE key (status {})", value);
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        ++failures_;
        connected_ = false;
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
          refused = "security mechanism mismatch (one side uses CURVE, the other plaintext)";
        } else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC || value == ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE) {
          refused = "CURVE handshake failed (wrong server public key?)";
        } else {
          refused = fmt::format("handshake protocol error 0x{:x}", value);
        }
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_DISCONNECTED:
        if (connected_ || id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
          ++failures_;
          if (curve_ && ++silent_failures_ >= kSilentFailuresRefused) {
            refused = fmt::format(
                "the peer closed {} CURVE handshakes in a row without a reply (wrong server public key?)",
                silent_failures_);
          }
        }
        connected_ = false;
        break;
      default: break;
    }
  }
  return refused;
}

}  // namespace gradzip::comm
