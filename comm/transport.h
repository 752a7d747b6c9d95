// The worker-facing transport interface: how a training worker sends encoded gradient
// buckets to the parameter-server shards and gets parameters back.
//
// Implementations: ZeroMQ (real processes over TCP) and in-process (same wire bytes, for
// simulation and tests). The trainer only sees this header.
//
// Flow of one step for worker w (see shared DESIGN.md):
//   for each bucket b:  h_b = push(step, b, message_b)     // encoded by quant/
//   wait(h_b) for all b
//   h = pull(step, params)   // params after `step` is applied (sync) or latest (async)
//   wait(h)                  // or one pull_bucket(step, b, params, false) per bucket
// push() may return before the bytes are sent; the message bytes must stay valid and
// unchanged until wait() on its handle returns. Errors surface from wait() as CommError.
// pull(step) must follow the wait() of every push of that step: a shard restored from a
// checkpoint recognises lost pushes by a pull that arrives without them (comm/shard.h).
// After connect(), start at resume_step(), not at 0 (a restarted or rejoining worker).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace gradzip::comm {

/// Transport failures (timeouts, refused handshakes, closed peers). Carries a kind so
/// callers can retry or give up deliberately.
class CommError : public std::runtime_error {
 public:
  enum class Kind { kTimeout, kRefused, kProtocol, kClosed, kIo, kInvalidArgument };
  CommError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const noexcept { return kind_; }

 private:
  Kind kind_;
};

/// One parameter tensor of the model, in flat-buffer order.
struct TensorInfo {
  std::string name;
  std::vector<std::int64_t> shape;
  std::uint64_t numel = 0;
};

/// What a worker and the shards must agree on before any gradient flows (checked in the
/// handshake; a mismatch is refused with a message saying what differs).
struct ModelSignature {
  std::vector<TensorInfo> tensors;     ///< all parameters, in flat-buffer order
  std::string compressor_spec;         ///< uplink, e.g. "ef+qsgd:bits=4,bucket=512"
  std::string downlink_spec = "dense"; ///< "dense" (fp32 parameters) or a codec spec
  std::string placement;               ///< PlacementOptions::canonical() (comm/layout.h); "" = not set
  std::uint64_t total_numel() const;
  /// First difference from `other` in words ("tensor 3 'fc.weight': shape [10,64] vs [10,32]"),
  /// or an empty string when equal.
  std::string diff(const ModelSignature& other) const;
};

/// Bytes and time of one direction, cumulative since connect(). Units in the names.
struct DirectionCounters {
  std::uint64_t messages = 0;
  std::uint64_t payload_bytes = 0;   ///< gradzip messages (header + params + payload)
  std::uint64_t framing_bytes = 0;   ///< ZeroMQ frame headers and protocol envelopes
  std::uint64_t tcpip_bytes = 0;     ///< estimated TCP/IP/Ethernet header bytes (see comm/accounting.h)
  double seconds = 0.0;              ///< wall time spent in push/pull until completion
};

/// Staleness of this worker's applied pushes (async/ssp; the shard reports each in its
/// acknowledgement: updates of the bucket applied since the worker last pulled it).
struct StalenessCounters {
  std::uint64_t pushes = 0;  ///< pushes with a reported staleness
  std::uint64_t sum = 0;     ///< sum of their staleness (updates)
  std::uint64_t max = 0;     ///< largest staleness seen
};

struct TrafficCounters {
  DirectionCounters up;    ///< worker -> shards
  DirectionCounters down;  ///< shards -> worker
  StalenessCounters staleness;
};

/// Asynchronous operation handle; pass to wait().
using Handle = std::uint64_t;

/// Immutable shared bytes (a message). Transports keep a reference while they need the
/// bytes, so a message can be sent without a copy (zero-copy) and resent on a retry.
using SharedBytes = std::shared_ptr<const std::vector<std::uint8_t>>;

class WorkerTransport {
 public:
  virtual ~WorkerTransport() = default;

  /// Handshake with every shard as worker `worker_rank`; on success copies the current
  /// parameters into params[0, total_numel). Throws CommError (kRefused names the
  /// signature difference). `params` is also read: worker 0 initializes shards that hold
  /// no parameters yet (fresh start, no checkpoint) with its values, so every worker
  /// starts from worker 0's initialization.
  virtual void connect(const ModelSignature& signature, std::uint32_t worker_rank, float* params) = 0;

  /// After connect(): the step this worker should push next (0 on a fresh run; the
  /// number of steps the shards already applied after a restart, rejoin or restore).
  virtual std::uint64_t resume_step() const { return 0; }

  /// Sends the encoded message of bucket `bucket` for `step`. `msg` must stay valid until
  /// wait(). Thread-compatible: one thread drives a transport.
  virtual Handle push(std::uint64_t step, std::uint32_t bucket, const std::uint8_t* msg, std::size_t bytes) = 0;
  /// Same, for a message the transport may hold on to (no copy: zero-copy sends); the
  /// caller must not change its bytes afterwards. Build it on a pooled buffer
  /// (comm/buffer_pool.h) to avoid page faults on fresh memory every step.
  virtual Handle push(std::uint64_t step, std::uint32_t bucket, SharedBytes msg) {
    return push(step, bucket, msg->data(), msg->size());
  }

  /// Asks for the parameters after `step` (sync: once every live worker's push for it
  /// was applied) and writes them into params[0, total_numel) when complete.
  virtual Handle pull(std::uint64_t step, float* params) = 0;

  /// Asks for bucket `bucket` only, after `step` as pull() does, and writes it into
  /// params[offset, offset + numel) of that bucket when complete; the rest of params is
  /// not touched, so other buckets may be read meanwhile. `dense`: ask for the dense
  /// parameters even under a compressed downlink (a resync of this worker's replica).
  virtual Handle pull_bucket(std::uint64_t step, std::uint32_t bucket, float* params, bool dense) = 0;

  /// Blocks until the operation completes; throws CommError on failure or timeout.
  virtual void wait(Handle handle) = 0;

  /// Makes a wait() blocked on another thread, and every later one, throw
  /// CommError(kClosed) within about 50 ms: how a worker whose training thread failed
  /// stops the thread that drives its transport. Thread-safe; irreversible.
  virtual void abort() = 0;

  /// Blocks until every live worker reached the barrier.
  virtual void barrier() = 0;

  /// Cumulative byte and time counters of this worker.
  virtual TrafficCounters counters() const = 0;

  /// The transport's own state of this worker between steps, as bytes for the worker
  /// checkpoint (comm/checkpoint.h): compressors that run inside the aggregation keep it
  /// here (the collectives' THC error-feedback residual, PowerSGD's warm-started Q and
  /// residual). Empty for a transport without state. Runs after every operation issued
  /// before it; throws CommError as wait() does.
  virtual std::vector<std::uint8_t> save_state() { return {}; }

  /// Restores an image of save_state() after connect(), before the first push. Throws
  /// CommError kInvalidArgument when it does not fit this transport (here: any image
  /// but an empty one).
  virtual void restore_state(const std::vector<std::uint8_t>& image) {
    if (!image.empty()) {
      throw CommError(CommError::Kind::kInvalidArgument,
                      std::to_string(image.size()) + " bytes of transport state for a transport that keeps none");
    }
  }

  /// True when every rank must push a step's buckets in one canonical order, descending
  /// bucket id (backward order): collectives, whose ranks must start the same operation
  /// at the same time. A parameter server takes pushes in any order (false).
  virtual bool ordered_pushes() const { return false; }
};

}  // namespace gradzip::comm
