// The worker side of the parameter-server protocol, shared by every transport:
// request ids, handles, timeouts and retries, reply decoding into the flat parameter
// buffer, byte counters. A transport (ZeroMQ, in-process) only moves frames:
// send_frames() and receive().
//
// Retries: a request without a reply after request_timeout_s is sent again with the
// same (worker, step, seq); the shard applies a push once (comm/shard.h) and answers a
// repeated pull again, so retries are safe. After op_timeout_s wait() throws
// CommError(kTimeout). Replies of an already completed request are ignored.
//
// Binding: a shard accepts requests for this worker's rank only from the connection
// whose hello it accepted (comm/shard.h). A shard that answers kNotBound (restarted, it
// has not seen this connection) gets a new hello, then the waiting requests again. A
// refused hello (kRankTaken: another live connection holds the rank) and kDeclaredDead
// (this worker timed out; call connect() again to rejoin) surface as kRefused.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "comm/layout.h"
#include "comm/protocol.h"
#include "comm/shard.h"
#include "comm/transport.h"

namespace gradzip::comm {

/// Fault injection for tests (drop / duplicate / reorder outgoing requests). Off by default.
struct FaultInjection {
  double drop_probability = 0.0;       ///< request not sent (the retry recovers it)
  double duplicate_probability = 0.0;  ///< request sent twice
  double reorder_probability = 0.0;    ///< request held back and sent after the next one
  std::uint64_t seed = 1;
};

/// Settings of a worker client. Plain value type.
struct ClientOptions {
  PlacementOptions placement;       ///< must match the shards' (checked in the handshake)
  double request_timeout_s = 2.0;   ///< resend a request unanswered this long
  double op_timeout_s = 60.0;       ///< give up (CommError kTimeout)
  /// Heartbeat interval announced in the hello (0 = none). A worker that announces
  /// heartbeats must send a request at least every worker timeout of the shards, or be
  /// declared dead; RequestClient::heartbeat() sends one to every shard.
  double heartbeat_interval_s = 0.0;
  FaultInjection faults;
};

class RequestClient : public WorkerTransport {
 public:
  explicit RequestClient(ClientOptions options);
  ~RequestClient() override;

  void connect(const ModelSignature& signature, std::uint32_t worker_rank, float* params) override;
  std::uint64_t resume_step() const override { return resume_step_; }
  Handle push(std::uint64_t step, std::uint32_t bucket, const std::uint8_t* msg, std::size_t bytes) override;
  Handle pull(std::uint64_t step, float* params) override;
  void wait(Handle handle) override;
  void barrier() override;
  TrafficCounters counters() const override { return counters_; }

  /// Tells every shard this worker is done (best effort, bounded by op_timeout_s).
  void shutdown();
  /// Sends a heartbeat to every shard and waits for the replies.
  void heartbeat();
  const Layout& layout() const { return layout_; }

 protected:
  /// A received reply; `frames` stay valid while `owner` lives.
  struct Received {
    std::uint32_t shard = 0;
    std::vector<FrameView> frames;
    std::shared_ptr<void> owner;
  };
  /// Called once from connect() with the number of shards, before any send.
  virtual void open(std::uint32_t num_shards, std::uint32_t worker_rank) = 0;
  /// Sends one multipart message to `shard`; the frame bytes stay valid until the reply
  /// arrives (zero-copy sends may keep pointers). Throws CommError(kIo) on failure.
  virtual void send_frames(std::uint32_t shard, const std::vector<FrameView>& frames) = 0;
  /// Waits up to timeout_s for one reply; false on timeout.
  virtual bool receive(double timeout_s, Received* out) = 0;

 private:
  using Clock = std::chrono::steady_clock;
  struct Request {
    Handle handle = 0;
    std::uint32_t shard = 0;
    std::vector<std::uint8_t> envelope;
    std::vector<FrameView> frames;   // envelope + bodies
    std::vector<std::vector<std::uint8_t>> owned_bodies;
    Envelope env;
    Clock::time_point started, last_sent;
    bool done = false;
    std::string error;
    CommError::Kind error_kind = CommError::Kind::kProtocol;
    float* params = nullptr;          // pull target
    bool is_push = false;
  };
  std::uint64_t start(std::uint32_t shard, Envelope env, std::vector<FrameView> bodies,
                      std::vector<std::vector<std::uint8_t>> owned, Handle handle, float* params = nullptr);
  void transmit(Request& r);
  void dispatch(Received& rx);
  void on_pull_reply(Request& r, const Envelope& e, Received& rx);
  void send_hello(std::uint32_t shard, Handle handle);
  /// Sends a hello to `shard` (once at a time) after it answered kNotBound.
  void rebind(std::uint32_t shard);
  /// Fails every waiting request to `shard` with `error` (a refused rebind).
  void fail_shard(std::uint32_t shard, const std::string& error, CommError::Kind kind);
  /// Handle of internal hellos that rebind a restarted shard (nobody waits on it).
  static constexpr Handle kRebindHandle = 0;
  Handle new_handle() { return ++last_handle_; }
  std::vector<std::uint32_t> active_shards() const;

  ClientOptions opt_;
  ModelSignature sig_;
  std::string hello_json_;
  Layout layout_;
  std::uint32_t worker_ = 0;
  bool connected_ = false;
  std::uint64_t next_seq_ = 1;
  Handle last_handle_ = 0;
  std::uint64_t resume_step_ = 0;
  std::map<std::uint64_t, Request> requests_;   // seq -> request
  std::vector<std::uint64_t> replica_version_;  // per shard: version of the params we hold
  std::vector<bool> uninitialized_;
  TrafficCounters counters_;
  std::mt19937_64 fault_rng_;
  std::vector<std::pair<std::uint32_t, std::vector<FrameView>>> held_;  // reordered sends
};

}  // namespace gradzip::comm
