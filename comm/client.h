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
// refused hello (kRankTaken: another live connection holds the rank) surfaces as
// kRefused; so does kDeclaredDead (this worker timed out) unless
// rejoin_when_declared_dead, where the client rejoins with a hello and goes on.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "comm/faults.h"
#include "comm/layout.h"
#include "comm/protocol.h"
#include "comm/shard.h"
#include "comm/transport.h"

namespace gradzip::comm {

/// Settings of a worker client. Plain value type.
struct ClientOptions {
  PlacementOptions placement;       ///< must match the shards' (checked in the handshake)
  double request_timeout_s = 2.0;   ///< resend a request unanswered this long
  double op_timeout_s = 60.0;       ///< give up (CommError kTimeout)
  /// Heartbeat interval announced in the hello (0 = none). A worker that announces
  /// heartbeats must send a request at least every worker timeout of the shards, or be
  /// declared dead; RequestClient::heartbeat() sends one to every shard.
  double heartbeat_interval_s = 0.0;
  /// A shard that declared this worker dead (its step timeout, e.g. a stalled machine or
  /// a cut link) gets a hello at once (an explicit rejoin, logged and counted by both
  /// sides) and the request again; false: the request fails with kRefused.
  bool rejoin_when_declared_dead = true;
  FaultInjection faults;            ///< tests: faults on requests and replies (comm/faults.h)
};

class RequestClient : public WorkerTransport {
 public:
  explicit RequestClient(ClientOptions options);
  ~RequestClient() override;

  void connect(const ModelSignature& signature, std::uint32_t worker_rank, float* params) override;
  std::uint64_t resume_step() const override { return resume_step_; }
  Handle push(std::uint64_t step, std::uint32_t bucket, const std::uint8_t* msg, std::size_t bytes) override;
  Handle push(std::uint64_t step, std::uint32_t bucket, SharedBytes msg) override;
  Handle pull(std::uint64_t step, float* params) override;
  Handle pull_bucket(std::uint64_t step, std::uint32_t bucket, float* params, bool dense) override;
  void wait(Handle handle) override;
  void abort() override { aborted_.store(true); }
  void barrier() override;
  TrafficCounters counters() const override {
    std::lock_guard<std::mutex> lock(io_mu_);
    return counters_;
  }
  /// What fault injection did to this worker's requests and to the replies it received.
  FaultCounts request_fault_counts() const { return request_faults_.counts(); }
  FaultCounts reply_fault_counts() const { return reply_faults_.counts(); }
  /// Rejoins after a shard declared this worker dead (rejoin_when_declared_dead).
  std::uint64_t rejoins() const { return rejoins_; }

  /// PowerSGD over the parameter server (comm/protocol.h kReduce, to shard 0): sends round
  /// `round` (1 or 2) of `step` carrying `msg` (an identity message); once every worker
  /// sent the round, *reply receives the shard's reply message (the sum). *reply must
  /// stay valid until wait() returns. Retried and timed out like every request.
  Handle reduce(std::uint64_t step, std::uint32_t round, SharedBytes msg, std::vector<std::uint8_t>* reply);
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
    /// Non-empty instead of frames: the transport learned that `shard` refuses this
    /// worker's connection (e.g. a failed CURVE handshake); every request waiting for
    /// that shard fails with CommError(kRefused, refused).
    std::string refused;
  };
  /// Called once from connect() with the number of shards, before any send.
  virtual void open(std::uint32_t num_shards, std::uint32_t worker_rank) = 0;
  /// Sends one multipart message to `shard`. owners[i] (when owners is not empty and
  /// owners[i] is set) holds frame i's bytes: the transport may keep a reference and send
  /// them without a copy. Frames without an owner stay valid only during the call.
  /// Throws CommError(kIo) on failure.
  virtual void send_frames(std::uint32_t shard, const std::vector<FrameView>& frames,
                           const std::vector<SharedBytes>& owners) = 0;
  /// Waits up to timeout_s for one reply; false on timeout.
  virtual bool receive(double timeout_s, Received* out) = 0;
  /// Stops the heartbeat thread (heartbeat_interval_s > 0), which calls send_frames():
  /// a transport's destructor calls it first, before it closes what send_frames uses.
  void stop_heartbeats();

 private:
  using Clock = std::chrono::steady_clock;
  struct Request {
    Handle handle = 0;
    std::uint32_t shard = 0;
    std::vector<std::uint8_t> envelope;
    std::vector<FrameView> frames;   // envelope + bodies
    std::vector<SharedBytes> owners; // per frame: the bytes' owner (null: borrowed, or the envelope)
    Envelope env;
    Clock::time_point started, last_sent;
    bool done = false;
    std::string error;
    CommError::Kind error_kind = CommError::Kind::kProtocol;
    float* params = nullptr;          // pull target
    std::vector<bool> parts;          // pull: buckets received as parts (kFlagPart)
    std::size_t parts_received = 0;
    bool is_push = false;
    std::vector<std::uint8_t>* reduce_reply = nullptr;  // kReduce: the reply's body
  };
  /// Starts a request: `borrowed` bodies stay valid until its wait() returns (the
  /// caller's push message); `shared` bodies are held by the request.
  std::uint64_t start(std::uint32_t shard, Envelope env, std::vector<FrameView> borrowed,
                      std::vector<SharedBytes> shared, Handle handle, float* params = nullptr);
  void transmit(Request& r);
  void dispatch(Received& rx);
  /// Decodes a pull reply (whole, or one part); true when the request is complete (or failed).
  bool on_pull_reply(Request& r, const Envelope& e, Received& rx);
  /// A request's bytes, owned (fault injection may send them after the request is gone).
  struct OutgoingCopy {
    std::uint32_t shard = 0;
    std::vector<std::vector<std::uint8_t>> frames;
  };
  void send_copy(const OutgoingCopy& m);
  /// A reply from the transport: through reply fault injection, then dispatch().
  void on_received(Received& rx);
  /// Sends/dispatches delayed messages that are due, and (idle) those held back.
  void release_faults(bool idle);
  /// send_frames() under io_mu_, remembering when `shard` last heard from this worker.
  void send_locked(std::uint32_t shard, const std::vector<FrameView>& frames, const std::vector<SharedBytes>& owners);
  /// The heartbeat thread: a heartbeat to every shard not sent anything for an interval.
  void heartbeat_loop();
  void send_hello(std::uint32_t shard, Handle handle);
  Handle start_push(std::uint64_t step, std::uint32_t bucket, std::vector<FrameView> borrowed,
                    std::vector<SharedBytes> shared);
  /// Sends a hello to `shard` (once at a time) after it answered kNotBound or kDeclaredDead.
  void rebind(std::uint32_t shard, ProtoErr why);
  /// Fails every waiting request to `shard` with `error` (a refused rebind).
  void fail_shard(std::uint32_t shard, const std::string& error, CommError::Kind kind);
  /// Handle of internal hellos that rebind a restarted shard (nobody waits on it).
  static constexpr Handle kRebindHandle = 0;
  Handle new_handle() { return ++last_handle_; }
  /// Drops the requests of `handle` (a wait that gives up).
  void forget(Handle handle);
  std::vector<std::uint32_t> active_shards() const;

  ClientOptions opt_;
  ModelSignature sig_;
  std::string hello_json_;
  Layout layout_;
  std::uint32_t worker_ = 0;
  bool connected_ = false;
  std::atomic<bool> aborted_{false};
  std::uint64_t next_seq_ = 1;
  Handle last_handle_ = 0;
  std::uint64_t resume_step_ = 0;
  std::uint64_t rejoins_ = 0;
  std::map<std::uint64_t, Request> requests_;   // seq -> request
  /// Shard version of the parameters we hold, per bucket (kLatestStep: unknown).
  std::vector<std::uint64_t> replica_version_;
  std::vector<bool> uninitialized_;
  TrafficCounters counters_;
  FaultyChannel<OutgoingCopy> request_faults_;
  FaultyChannel<Received> reply_faults_;
  // The transport's send/receive and counters_ are used by the driving thread, the
  // heartbeat thread and counters() callers: all hold io_mu_ for them.
  mutable std::mutex io_mu_;
  std::vector<Clock::time_point> last_send_;  // per shard (io_mu_)
  std::mutex heartbeat_mu_;
  std::condition_variable heartbeat_cv_;
  bool heartbeat_stop_ = false;
  std::thread heartbeat_thread_;
};

}  // namespace gradzip::comm
