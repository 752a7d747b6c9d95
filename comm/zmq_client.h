// ZeroMQ worker transport: one DEALER socket per shard, the RequestClient protocol
// (comm/client.h) on top. Routing id "w<rank>-<64 random bits>", fixed for the life of
// the transport: a reconnect after a cut link keeps it (the server sets
// ZMQ_ROUTER_HANDOVER, so the new connection takes over the old one's id), while a
// restarted worker gets a new one and must rejoin by hello (comm/shard.h). The id is a
// bearer token on plaintext TCP; use CURVE where the network is not trusted.
//
// Push bodies given as SharedBytes (WorkerTransport::push overload) are sent without a
// copy: libzmq holds a reference until the bytes are on the socket. Borrowed bodies (the
// pointer overload: the caller may reuse its buffer once wait() returns while a retried
// copy may still sit in a queue) are copied once into a pooled buffer. Pull replies are
// decoded straight from the received zmq frames into the caller's params.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/client.h"

namespace gradzip::comm {

struct ZmqClientOptions {
  ClientOptions client;
  std::vector<std::string> shard_endpoints;  ///< one per shard, index = shard id
  int heartbeat_ivl_ms = 1000;
  int heartbeat_timeout_ms = 10000;
  std::string curve_server_public_key;       ///< Z85; "" = no CURVE
  std::string curve_key_file;                ///< this client's key pair (with CURVE)
};

/// WorkerTransport over ZeroMQ. Thread-compatible: one thread drives it.
class ZmqWorkerTransport final : public RequestClient {
 public:
  /// Throws std::invalid_argument when the endpoint count differs from the shard count.
  explicit ZmqWorkerTransport(ZmqClientOptions options);
  ~ZmqWorkerTransport() override;

 protected:
  void open(std::uint32_t num_shards, std::uint32_t worker_rank) override;
  void send_frames(std::uint32_t shard, const std::vector<FrameView>& frames,
                   const std::vector<SharedBytes>& owners) override;
  bool receive(double timeout_s, Received* out) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gradzip::comm
