// Watches the ZMTP security handshakes of one ZeroMQ socket (a socket monitor, RFC 27
// ZAP status included) and says when a peer refuses this side for good: the ZAP
// handler denied the CURVE key (status 4xx/5xx), the security mechanisms differ
// (plaintext vs CURVE), a CURVE box failed to open, or, with CURVE, the peer closed the
// connection in the middle of the handshake again and again (what a server does when
// the client encrypted to the wrong server public key: it cannot read the client's
// HELLO and says nothing).
//
// Thread-compatible: drain from the thread that owns the watched socket. Not in a poll
// set: each zmq socket polled costs a poll(2) per pass on the request path; owners drain
// when their poll comes back empty and every few tens of ms while traffic flows.
#pragma once

#include <cstdint>
#include <string>

#include <zmq.hpp>

namespace gradzip::comm {

class HandshakeWatch {
 public:
  /// Starts a monitor of `socket` on inproc endpoint `name` (unique per context).
  /// `curve` enables the repeated-failure rule. Throws zmq::error_t.
  HandshakeWatch(zmq::context_t& ctx, zmq::socket_t& socket, const std::string& name, bool curve);
  /// Reads every queued event; returns a non-empty reason when the peer refused this
  /// side (once per failure kind; the caller decides what fails).
  std::string drain();
  /// Failed handshakes seen so far (any kind).
  std::uint64_t failures() const { return failures_; }

  /// Consecutive handshakes cut without a word before a CURVE peer counts as refusing.
  static constexpr int kSilentFailuresRefused = 3;

 private:
  zmq::socket_t monitor_;
  bool curve_ = false;
  bool connected_ = false;  // a connection is up and its handshake has not succeeded yet
  int silent_failures_ = 0;
  std::uint64_t failures_ = 0;
};

}  // namespace gradzip::comm
