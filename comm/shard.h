// Transport-agnostic parameter-server shard: validation, dedup, aggregation (sync /
// async / bounded staleness), server-side optimizer, downlink encoding, checkpoints.
//
// A Shard owns the partition of the flat parameter buffer that comm/layout.h assigns to
// it (its buckets, concatenated in bucket-id order: Bucket::shard_offset). Transports
// (comm/zmq_server.h, comm/inproc.h) feed it requests as frames (comm/protocol.h) and
// send the replies it produces; the same bytes flow in both.
//
// Semantics (see shared DESIGN.md, issue 5):
//  - sync (BSP): pushes of step t are summed per bucket; the step is applied once every
//    live worker pushed all of this shard's buckets for t: g = sum / contributors (or the
//    sign majority vote, Bernstein et al. 2018 signSGD with majority vote, Alg. 3), then
//    one optimizer step. A pull(t) is answered once step t is applied. If a step stays
//    incomplete for worker_timeout_s, missing workers are declared dead (logged,
//    counted) and the step is applied with what arrived; a worker rejoins with a hello.
//    A shard restored from a checkpoint (and only such a shard, until it applied its
//    first step) jumps forward to a step every live worker agrees on: each pushed it or
//    pulled it without pushing (its pushes were lost with the old process).
//  - who may speak for a worker: a hello whose signature matches binds the worker rank
//    to the peer (connection) it came from. Every other request for that rank from
//    another peer is refused (kNotBound), as is any request before a hello. A hello for
//    a live rank bound to another peer is refused (kRankTaken). A rank is declared dead
//    by the step timeout, or, for a worker that announced heartbeats in its hello (aux =
//    interval in ms), after worker_timeout_s without any request; its requests are then
//    refused (kDeclaredDead) until a hello (from any peer) rejoins it explicitly.
//  - async (Hogwild-style PS, Dean et al. 2012 Downpour SGD): each push is applied on
//    arrival; staleness = updates of that bucket since the pushing worker last pulled it.
//  - ssp (Ho et al. 2013, Stale Synchronous Parallel): async application, but pull(t)
//    waits until every live worker completed step t - slack.
//  - downlink "dense": pull replies carry identity (fp32) messages of the parameters.
//    Downlink codec (sync only): the shard keeps the replica x^ that workers hold and
//    sends C(x - x^), then x^ += decode(C(x - x^)); x - x^ is the error-feedback
//    residual (bidirectional compression as in BytePS / 1-bit Adam, Tang et al. 2021).
//    A worker whose replica is not at version-1 gets the dense replica instead.
//  - dedup: a push is identified by (worker, step, seq); a repeat is acknowledged with
//    kFlagDuplicate and not applied again. A second push of the same bucket and step is
//    treated the same way.
//  - PowerSGD (ShardOptions::powersgd_spec; Vogels et al. NeurIPS'19), sync, one shard:
//    a step is two kReduce rounds instead of pushes. Round 1: every worker sends its p
//    (comm/powersgd_tensors.h); once all num_workers did, each gets the sum (added in
//    worker-rank order: the same bytes whatever the arrival order). Round 2: every worker
//    sends its q and its dense (uncompressed) tensors; once all did, the shard rebuilds the
//    mean gradient (P Q^T with P = the orthonormalised sum of p, Q = the sum of q / W; the
//    dense tensors' sum / W), takes one optimizer step as a sync step does (pulls of the
//    step are answered, checkpoints written), and replies with the sum of q, from which
//    every worker computes the same P Q^T for its error feedback and warm start. The shard
//    thus holds the parameters and the workers pull them as in any sync run. A round
//    waits for every worker (a dead one is not excused: the others' requests time out).
//    A repeated request of a completed round gets the same reply; a request of another
//    step or round than the one being gathered is refused (kNotReducing).
//  - bad input (any frame from the network) is answered with kError and logged; never
//    an abort or an exception out of handle().
//
// Thread-safety: none; the owning transport serializes calls (one thread or a mutex).
//
// Implementation, one idea a file: shard.cc (construction and restore, dispatch, init,
// push admission and dedup, checkpoints), shard_workers.cc (handshake and binding,
// liveness, barrier), shard_sync.cc (the sync round), shard_async.cc (async / SSP
// application), shard_downlink.cc (pulls and their replies, compressed downlink),
// shard_stats.cc (ShardStats and counting).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "comm/buffer_pool.h"
#include "comm/layout.h"
#include "comm/optimizer.h"
#include "comm/powersgd_tensors.h"
#include "comm/protocol.h"
#include "comm/transport.h"
#include "quant/codec.h"

namespace gradzip::comm {

enum class SyncMode { kSync, kAsync, kSsp };
enum class Aggregation { kMean, kMajorityVote };
/// "sync" | "async" | "ssp"; "mean" | "majority". Parsers throw std::invalid_argument.
const char* sync_mode_name(SyncMode m);
SyncMode parse_sync_mode(const std::string& name);
const char* aggregation_name(Aggregation a);
Aggregation parse_aggregation(const std::string& name);

/// Settings of one shard (filled by the CLI / tests). Plain value type.
struct ShardOptions {
  std::uint32_t shard_id = 0;
  std::uint32_t num_workers = 1;
  SyncMode mode = SyncMode::kSync;
  std::uint32_t ssp_slack = 0;                  ///< steps of slack in ssp mode
  Aggregation aggregation = Aggregation::kMean;
  OptimizerOptions optimizer;
  double worker_timeout_s = 0.0;                ///< sync: 0 = wait forever
  std::uint64_t step_window = 1u << 20;         ///< pushes/pulls more steps ahead are refused
  std::uint32_t max_pending_steps = 4;          ///< sync: accumulators alive at once
  std::string checkpoint_dir;                   ///< "" = no checkpoints
  std::uint64_t checkpoint_every = 0;           ///< steps; 0 = never
  bool restore = false;                         ///< load the newest valid checkpoint at start
  std::uint64_t restore_version = 0;            ///< with restore: exactly this step (0 = the newest valid)
  unsigned keep_checkpoints = 3;
  std::uint64_t downlink_seed = 0;              ///< Philox seed of a stochastic downlink codec
  /// "powersgd[:rank=R,...]": PowerSGD over this shard (kReduce, see the top of the file);
  /// "" = off. Needs sync mode, mean aggregation, one shard and a dense downlink.
  std::string powersgd_spec;
};

/// A frame of a received multipart message (non-owning).
struct FrameView {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
};
/// One reply to send: frames[0] is the envelope.
struct OutMessage {
  std::string peer;
  std::vector<SharedBytes> frames;
};

/// Counters of one shard, cumulative since start. `workers[w].up` = requests received
/// from worker w, `.down` = replies sent to it.
struct ShardStats {
  std::uint32_t shard_id = 0;
  std::uint64_t version = 0;                ///< steps applied
  std::vector<TrafficCounters> workers;
  TrafficCounters total;                    ///< includes requests with an invalid worker rank
  std::uint64_t pushes_applied = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t stale_dropped = 0;
  std::uint64_t refused = 0;
  std::map<std::string, std::uint64_t> refused_by_reason;
  std::uint64_t timeout_completions = 0;    ///< sync steps applied without every worker
  std::uint64_t workers_declared_dead = 0;
  std::uint64_t rejoins = 0;                ///< hellos that took back a rank declared dead
  std::uint64_t staleness_count = 0, staleness_sum = 0, staleness_max = 0;
  std::map<std::uint64_t, std::uint64_t> staleness_histogram;  ///< staleness -> pushes (async/ssp)
  std::uint64_t checkpoints_written = 0;
  double apply_seconds = 0.0;               ///< time in aggregation + optimizer + downlink encode
  /// One JSON object (for the run directory's metrics).
  std::string to_json() const;
};

class Shard {
 public:
  using Clock = std::chrono::steady_clock;

  /// Builds the shard's partition for `layout` (which must come from make_layout with
  /// signature.placement's options). Throws std::invalid_argument on a bad configuration
  /// (unknown codec spec, compressed downlink outside sync mode, shard id >= shards).
  /// With options.restore, loads the newest valid checkpoint (corrupt ones are logged
  /// and skipped), or the one of step restore_version, whose absence throws
  /// std::runtime_error; otherwise the shard waits for worker 0's kInit.
  Shard(ShardOptions options, ModelSignature signature, Layout layout);

  /// Processes one received multipart message from `peer` (an opaque connection id that
  /// the transport guarantees no other connection can present) and
  /// appends 0..n replies (to this or other peers: completed pulls) to `out`. Never
  /// throws on bad frames.
  void handle(const std::string& peer, const FrameView* frames, std::size_t count, Clock::time_point now,
              std::vector<OutMessage>* out);
  /// Periodic work (step timeouts, silent workers). Call at least every ~100 ms.
  void tick(Clock::time_point now, std::vector<OutMessage>* out);

  /// Sets the partition directly (tests, simulation); same effect as a kInit.
  void initialize(const float* partition, std::vector<OutMessage>* out);
  bool initialized() const { return initialized_; }
  /// The partition (shard_numel elements, bucket order).
  const std::vector<float>& params() const { return params_; }
  /// The replica x^ the workers hold under a compressed downlink (partition layout as
  /// params(); with a dense downlink it stays at the initial parameters).
  const std::vector<float>& replica() const { return replica_; }
  std::uint64_t version() const { return version_; }
  /// True once every worker sent kShutdown or was declared dead (and one shut down).
  bool all_workers_shut_down() const;
  /// Largest frame a valid request can carry (for ZMQ_MAXMSGSIZE).
  std::uint64_t max_frame_bytes() const;
  ShardStats stats() const { return stats_; }
  const Layout& layout() const { return layout_; }

 private:
  struct Pending {  // one sync step being accumulated
    std::vector<float> acc;
    std::vector<std::uint32_t> contributors;          // per local bucket
    std::vector<std::vector<bool>> received;          // [worker][local bucket]
    std::vector<std::uint32_t> done;                  // per worker: buckets received
    std::vector<bool> applied;                        // per local bucket: optimizer step taken
    Clock::time_point first_push;
  };
  struct PendingPull {
    std::string peer;
    Envelope env;
    std::vector<bool> parts_sent;  // dense pulls: buckets already sent (kFlagPart); empty = none
  };
  /// What became of a push that passed validation (on_push replies accordingly).
  enum class PushOutcome { kApplied, kDuplicate, kStale, kRefused };

  static SharedBytes share(std::vector<std::uint8_t> bytes);

  // Requests, handshake, init, push admission and dedup, checkpoints: shard.cc.
  void restore_from_checkpoint();
  void reply(const std::string& peer, std::uint32_t worker, Envelope env, std::vector<SharedBytes> bodies,
             std::vector<OutMessage>* out);
  void refuse(const std::string& peer, const Envelope& req, ProtoErr err, const std::string& text,
              std::vector<OutMessage>* out);
  /// The reply envelope to `req`: echoed fields, the reply type, aux = version_.
  Envelope ack(const Envelope& req) const;
  /// True for a request of a step step_window or more steps ahead (refused: kWrongStep).
  bool beyond_step_window(const Envelope& e) const;
  /// True when `peer` is bound to e.worker and the rank is live (or e is a shutdown);
  /// otherwise refuses the request (kNotBound / kDeclaredDead) and returns false.
  bool admit_sender(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out);
  void on_hello(const std::string& peer, const Envelope& e, const FrameView* body, std::size_t n,
                Clock::time_point now, std::vector<OutMessage>* out);
  /// Marks worker w dead (logged, counted) and completes what waited for it.
  void declare_dead(std::uint32_t w, const std::string& why, std::vector<OutMessage>* out);
  /// Forgets the pulls and barrier entries worker w left on `peer` (a rebound rank).
  void drop_waiting(std::uint32_t w);
  void release_barrier(std::vector<OutMessage>* out);
  void on_init(const std::string& peer, const Envelope& e, const FrameView* body, std::size_t n,
               std::vector<OutMessage>* out);
  void on_push(const std::string& peer, const Envelope& e, const FrameView& msg, Clock::time_point now,
               std::vector<OutMessage>* out);
  /// Checks a push (shard initialized, bucket owned, step); refuses it and returns
  /// false, or sets *local to the bucket's local index.
  bool admit_push(const std::string& peer, const Envelope& e, std::size_t* local, std::vector<OutMessage>* out);
  /// Refuses a push whose message failed to decode: kCodecMismatch, kSizeMismatch or
  /// kBadMessage from the decoder's status.
  void refuse_message(const std::string& peer, const Envelope& e, std::size_t local, const quant::Status& st,
                      std::vector<OutMessage>* out);
  void forget_old_pushes();
  void on_barrier(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out);
  /// Validates a gradzip message for local bucket `local`; empty string when valid.
  std::string check_message(const FrameView& msg, std::size_t local, bool must_be_identity, ProtoErr* err) const;
  void maybe_checkpoint();

  // The sync round: shard_sync.cc.
  PushOutcome accumulate_sync(const std::string& peer, const Envelope& e, std::size_t local, const FrameView& msg,
                              Clock::time_point now, std::vector<OutMessage>* out);
  /// Decodes `msg` into (first) or onto the accumulator slice `acc` of a sync step.
  quant::Status accumulate_message(const FrameView& msg, const quant::Codec& codec, float* acc, std::size_t numel,
                                   bool first);
  Pending new_pending(Clock::time_point now);
  /// True when every live worker pushed all of this shard's buckets for the step.
  bool step_complete(const Pending& p) const;
  /// Applies what is complete: first the buckets of the current step that every live
  /// worker pushed (their optimizer step and reply message while other buckets are still
  /// arriving), then whole steps.
  void try_complete(std::vector<OutMessage>* out);
  /// True when every live worker pushed local bucket i of p.
  bool bucket_complete(const Pending& p, std::size_t i) const;
  /// Mean (or vote) and optimizer step of local bucket i at `step`, once; then its part
  /// of the waiting dense pulls of that step goes out.
  void apply_bucket(std::uint64_t step, Pending& p, std::size_t i, std::vector<OutMessage>* out);
  /// Applies the buckets not applied yet, then moves the shard to step + 1.
  void apply_sync(std::uint64_t step, Pending& p, std::vector<OutMessage>* out);
  /// Sync pull of a step whose pushes this (restarted) shard lost: excuses the worker;
  /// true if the pull was answered.
  bool excuse_lost_pushes(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out);

  // PowerSGD rounds (kReduce): shard_reduce.cc.
  /// Checks the options (std::invalid_argument) and builds the plans; no-op when off.
  void setup_reduce();
  void on_reduce(const std::string& peer, const Envelope& e, const FrameView* body, std::size_t n,
                 Clock::time_point now, std::vector<OutMessage>* out);
  /// Every worker sent the round: sums, replies, and after round 2 applies the step.
  void complete_reduce(Clock::time_point now, std::vector<OutMessage>* out);
  /// Largest kReduce body a worker may send (bytes; 0 when off).
  std::uint64_t max_reduce_bytes() const;

  // Async / SSP application: shard_async.cc.
  PushOutcome apply_async(const std::string& peer, const Envelope& e, std::size_t local, const FrameView& msg,
                          std::vector<OutMessage>* out);
  /// SSP: true when every live worker completed step - slack.
  bool ssp_ready(std::uint64_t step) const;

  // Downlink (pull replies): shard_downlink.cc.
  void on_pull(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out);
  bool pull_ready(const Envelope& e) const;
  /// Answers a pull: a delta or a one-bucket (kFlagOneBucket) reply in one message, or the
  /// dense parts (kFlagPart) not in *sent yet.
  void answer_pull(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out,
                   std::vector<bool>* sent = nullptr);
  /// The dense reply to a kFlagOneBucket pull of a bucket applied `steps` steps (sync:
  /// sent by apply_bucket as soon as that bucket is complete).
  void answer_one_bucket(const std::string& peer, const Envelope& e, std::uint64_t steps,
                         std::vector<OutMessage>* out);
  /// Sends local bucket i of a dense pull reply (kFlagPart), reflecting `steps` steps.
  void send_part(const std::string& peer, const Envelope& e, std::size_t i, std::uint64_t steps,
                 std::vector<OutMessage>* out);
  void after_version_change(std::vector<OutMessage>* out);
  SharedBytes dense_message(std::size_t local);
  /// Compressed downlink of local bucket i after sync step `step`: encodes C(x - x^),
  /// x^ += it.
  void encode_downlink(std::uint64_t step, std::size_t i);

  // Counting: shard_stats.cc.
  static void count_request(const FrameView* frames, std::size_t count, DirectionCounters* c);
  void count_reply(const OutMessage& msg, std::uint32_t worker);
  /// Counts a refusal; true when it should be logged (rate-limited: a barrage must not
  /// turn into a disk-filling log).
  bool count_refusal(ProtoErr err);
  void record_staleness(std::uint64_t staleness);
  void add_apply_time(Clock::time_point since);

  std::size_t nlocal() const { return local_ids_.size(); }
  const Bucket& local_bucket(std::size_t local) const { return layout_.buckets[local_ids_[local]]; }
  /// The codec of the gradients pushed for bucket `b` (identity for uncompressed buckets;
  /// with compressor rules, the codec of the bucket's spec).
  const quant::Codec& push_codec(const Bucket& b) const { return b.compressed ? *uplinks_[b.spec] : *identity_; }

  ShardOptions opt_;
  ModelSignature sig_;
  Layout layout_;
  std::uint64_t sig_hash_ = 0;
  std::vector<std::unique_ptr<quant::Codec>> uplinks_;  // one per Layout::specs entry
  std::unique_ptr<quant::Codec> identity_;
  std::unique_ptr<quant::Codec> downlink_;  // null = dense
  std::vector<std::uint32_t> local_ids_;    // local index -> bucket id
  std::vector<std::int64_t> local_of_;      // bucket id -> local index or -1
  std::vector<float> params_, momentum_, replica_, scratch_;
  bool initialized_ = false;
  bool may_jump_ = false;  // restored from a checkpoint and no step applied since
  std::uint64_t version_ = 0;
  std::uint64_t last_checkpoint_version_ = 0;

  std::vector<bool> live_, shut_down_;
  std::vector<std::string> bound_peer_;                     // per worker: its hello's peer ("" = none)
  std::vector<Clock::time_point> last_heard_;               // per worker: last admitted request
  std::vector<bool> heartbeats_;                            // per worker: announced heartbeats
  std::vector<std::uint64_t> clock_;                        // async/ssp: steps completed per worker
  std::vector<std::map<std::uint64_t, std::uint32_t>> async_progress_;  // worker -> step -> buckets
  std::vector<std::uint64_t> bucket_updates_;               // async: updates per local bucket
  std::uint64_t last_staleness_ = 0;                        // async: of the push apply_async applied last
  std::vector<std::vector<std::uint64_t>> seen_updates_;    // [worker][local] at last pull
  std::map<std::uint64_t, Pending> pending_;
  std::vector<std::vector<float>> acc_pool_;  // accumulators of applied steps, reused
  std::set<std::tuple<std::uint32_t, std::uint64_t, std::uint64_t>> seen_pushes_;
  std::uint64_t pruned_at_version_ = 0;  // version_ when seen_pushes_ was last pruned
  std::vector<PendingPull> pending_pulls_;
  std::vector<PendingPull> barrier_waiting_;
  std::vector<std::uint64_t> barrier_released_seq_;  // per worker: seq of its last released barrier
  BufferPool message_pool_;  // dense parameter messages (declared before their cache: outlives it)
  std::vector<SharedBytes> dense_cache_, delta_cache_;
  std::vector<std::uint64_t> dense_cache_tag_;
  ShardStats stats_;

  /// PowerSGD over this shard (null when off) and the round being gathered.
  struct ReduceState {
    std::unique_ptr<PowerSgdTensors> power;
    std::uint32_t round = 1;                   // of step version_
    std::vector<std::vector<float>> received;  // [worker]: its floats of the round
    std::vector<bool> has;                     // [worker]: sent the round
    std::vector<PendingPull> waiting;          // requests to answer when the round is complete
    std::vector<float> p_sum, sum;             // round 1's sum (kept for round 2), scratch
    std::uint64_t done_step[2] = {0, 0};       // per round: the step of done_reply
    SharedBytes done_reply[2];                 // per round: the last reply sent (repeats)
  };
  ReduceState reduce_;
};

}  // namespace gradzip::comm
