// ZeroMQ parameter-server shard: a ROUTER socket in front of a comm::Shard.
//
// Socket settings and why:
//  - ZMQ_ROUTER_MANDATORY: a reply to a peer that is gone raises EHOSTUNREACH instead of
//    being dropped silently; it is logged and counted (send_failures).
//  - ZMQ_ROUTER_HANDOVER: a worker reconnecting (cut link) with its routing id takes
//    over its old connection. Workers choose random per-process ids (comm/zmq_client.h);
//    the Shard binds each worker rank to the id of its hello (comm/shard.h).
//  - ZMQ_MAXMSGSIZE = Shard::max_frame_bytes() + 64 KiB: a peer that sends a larger frame
//    is disconnected by libzmq before the bytes are buffered (oversized input refused).
//  - ZMTP heartbeats (ZMQ_HEARTBEAT_IVL / _TIMEOUT / _TTL): dead TCP peers are detected
//    without application traffic.
//  - Replies are sent zero-copy: each frame is a zmq message over the Shard's shared,
//    immutable bytes (cached parameter messages are not copied per worker).
//  - CURVE (optional): the server's key pair from a key file; a ZAP handler (RFC 27)
//    admits only client public keys listed in the authorized-keys file.
//
// Key file format (text, Z85 as produced by zmq_curve_keypair): line 1 public key,
// line 2 secret key. Authorized-keys file: one Z85 public key per line.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "comm/layout.h"
#include "comm/shard.h"
#include "comm/transport.h"

namespace gradzip::comm {

/// Settings of one shard process (filled by `gradzip ps` / gradzip-ps).
struct ShardServerOptions {
  ShardOptions shard;
  ModelSignature signature;        ///< placement filled from `placement` when empty
  PlacementOptions placement;
  std::string bind = "tcp://127.0.0.1:0";  ///< port 0: the OS picks; see endpoint_file
  std::string endpoint_file;       ///< written atomically with the bound endpoint ("" = none)
  int heartbeat_ivl_ms = 1000;
  int heartbeat_timeout_ms = 10000;
  std::string curve_key_file;             ///< server key pair; "" = no encryption
  std::string curve_authorized_keys_file; ///< client public keys admitted (with CURVE)
  std::string stats_file;          ///< JSON lines of ShardStats ("" = none)
  double stats_interval_s = 5.0;
  double idle_exit_s = 0.0;        ///< exit after this long with no request (0 = never)
  double shutdown_linger_s = 0.5;  ///< after every worker's shutdown, keep answering retries this long
};

/// A bound shard server. Construct (binds), then run() on one thread; stop() from any
/// thread (or a signal handler via the flag) ends run().
class ShardServer {
 public:
  /// Binds and starts the ZAP handler when CURVE is on. Throws std::runtime_error
  /// (bind failure, unreadable key file) or std::invalid_argument (bad options).
  explicit ShardServer(const ShardServerOptions& options);
  ~ShardServer();
  ShardServer(const ShardServer&) = delete;
  ShardServer& operator=(const ShardServer&) = delete;

  /// The endpoint actually bound (tcp://127.0.0.1:<port>).
  const std::string& endpoint() const;
  /// Serves until stop(), until shutdown_linger_s after every worker sent shutdown, or
  /// idle_exit_s.
  void run();
  void stop();
  /// Counters (thread-safe snapshot; updated by run()).
  ShardStats stats() const;
  std::uint64_t send_failures() const;
  /// Clients whose CURVE key the ZAP handler refused.
  std::uint64_t auth_refusals() const;
  /// Connections whose ZMTP handshake failed (any cause: unknown key, plaintext client
  /// on a CURVE shard, wrong server key, not ZMTP at all).
  std::uint64_t handshake_failures() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Entry point of a shard process: binds, serves, writes stats. Returns the process exit
/// code (0 after a clean shutdown; 1 with a logged error). SIGINT/SIGTERM stop it cleanly.
int run_shard_server(const ShardServerOptions& options);

/// Writes a new CURVE key pair file (public + secret, Z85) and returns the public key.
std::string generate_curve_keypair(const std::string& path);
/// Reads a key pair file; throws std::runtime_error naming the file on a bad format.
void read_curve_keypair(const std::string& path, std::string* public_key, std::string* secret_key);

}  // namespace gradzip::comm
