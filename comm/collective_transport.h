// Aggregation by collectives, behind the worker's transport interface (comm/transport.h):
// push(bucket) runs the bucket's collective and a local replica of the shard's optimizer
// (comm/optimizer.h mean_sgd_step, as comm/shard_sync.cc applies it) updates this rank's
// copy of the parameters; pull returns them. The trainer, its bucket pipeline and its
// overlap are unchanged; no shard process exists.
//
// Modes (`gradzip train --aggregation`):
//  - allreduce: dense allreduce of the bucket in the compressor's element type (the DDP
//    baseline): identity -> fp32 (sum, then /R as the shard does), fp16 or bf16 -> the
//    gradient is divided by R in fp32, rounded, summed in that type with a rounding after
//    every add (as PyTorch's fp16 compression hook), decoded once. Uncompressed (small)
//    buckets go fp32; with compressor rules each bucket takes its own spec's type. Other
//    codecs are refused: use allgather.
//  - allgather (GRACE's way, Xu et al. 2021): every rank's encoded message is gathered;
//    each rank decodes and sums them in rank order (rank 0 decoded, the others
//    decode_add), so every replica holds bitwise the same parameters.
//  - homomorphic (THC, Li et al. NSDI'24; quant/homomorphic.h): the worker pushes fp32
//    (identity) messages; here each bucket (optionally rotated, plus an error-feedback
//    residual with "ef+thc") is quantized with a scale agreed by a max-allreduce, the
//    integer codes are summed by the allreduce in the narrowest integer type that cannot
//    overflow (int8, int16 or int32 for R * levels), decoded once.
//  - powersgd (Vogels et al. NeurIPS'19; quant/powersgd.h): the worker pushes fp32; the
//    step's buckets are gathered, and the last one runs two allreduces over every tensor
//    (P of the matrices with the dense tensors, then Q), rank-r approximation with error
//    feedback inside PowerSgdState. Both modes' state travels in the worker
//    checkpoints (save_state / restore_state).
//
// Threading: push/pull/barrier enqueue work for one communication thread that runs the
// collectives in call order (so they overlap the caller's compute); wait() blocks on a
// handle and rethrows its failure (CollectiveError names the rank blamed). After a
// failure every later operation fails with it. One thread drives the transport
// (WorkerTransport is thread-compatible); counters() may be called from any thread.
//
// Start-up: connect() rendezvouses (comm/collective.h), exchanges a fingerprint of the
// configuration (model tensors, compressor, placement, mode, optimizer, ranks) and throws
// CollectiveError kRefused naming both ranks when two differ; then rank 0's parameters
// (fresh run) or its checkpoint (restore) are broadcast.
//
// Checkpoints: rank 0 writes parameters and momentum as the one-shard checkpoint
// "shard-0-step-<step>.ckpt" (comm/checkpoint.h; layout with one shard, so the partition is
// the flat buffer) once every bucket of every checkpoint_every-th step is applied; each
// worker's own compressor state and this transport's (save_state) go into its worker
// checkpoint (trainer/worker_state.h). find_resume_point works unchanged.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/collective.h"
#include "comm/layout.h"
#include "comm/optimizer.h"
#include "comm/transport.h"
#include "quant/codec.h"

namespace gradzip::comm {

enum class CollectiveMode { kAllreduce, kAllgather, kHomomorphic, kPowerSgd };
/// "allreduce" | "allgather" | "homomorphic" | "powersgd"; the parser throws std::invalid_argument naming the allowed values.
const char* collective_mode_name(CollectiveMode m);
CollectiveMode parse_collective_mode(const std::string& name);

/// Settings (filled by the CLI). Plain value type.
struct CollectiveTransportOptions {
  CollectiveMode mode = CollectiveMode::kAllreduce;
  CollectiveOptions collective;        ///< engine, rank, size, store directory, host, timeout
  PlacementOptions placement;          ///< the trainer's (bucket cut); num_shards must be 1
  OptimizerOptions optimizer;
  std::string checkpoint_dir;          ///< "" = no checkpoints
  std::uint64_t checkpoint_every = 0;  ///< steps; 0 = never
  std::uint64_t restore_step = 0;      ///< > 0: start from the checkpoint of exactly this step
  unsigned keep_checkpoints = 3;
  /// homomorphic / powersgd: the aggregation-only spec ("ef+thc:levels=127",
  /// "powersgd:rank=4"); the worker's own compressor is identity in these modes.
  std::string aggregation_spec;
  std::uint64_t seed = 1;              ///< Philox seed of THC rounding/rotation and PowerSGD's initial Q
};

class CollectiveTransport final : public WorkerTransport {
 public:
  /// Throws std::invalid_argument for placement.num_shards != 1.
  explicit CollectiveTransport(CollectiveTransportOptions options);
  /// Lets the collective in flight finish (or time out) and drops queued work.
  ~CollectiveTransport() override;

  /// Rendezvous, fingerprint check, state broadcast (see top of file). worker_rank must
  /// equal options.collective.rank. Throws CollectiveError, std::invalid_argument (an
  /// allreduce of a codec that is not identity/fp16/bf16), CheckpointError (restore).
  void connect(const ModelSignature& signature, std::uint32_t worker_rank, float* params) override;
  std::uint64_t resume_step() const override { return resume_step_; }
  using WorkerTransport::push;  // the SharedBytes overload (copies: no zero-copy path here)
  Handle push(std::uint64_t step, std::uint32_t bucket, const std::uint8_t* msg, std::size_t bytes) override;
  Handle pull(std::uint64_t step, float* params) override;
  /// Writes bucket `bucket` of this rank's parameters after `step`'s pushes queued before
  /// it (`dense` is irrelevant: collectives always hold dense parameters).
  Handle pull_bucket(std::uint64_t step, std::uint32_t bucket, float* params, bool dense) override;
  void wait(Handle handle) override;
  /// Makes every wait() (blocked now or later) throw CommError(kClosed); a collective in
  /// flight on the communication thread still runs to completion or its timeout.
  void abort() override;
  void barrier() override;
  TrafficCounters counters() const override;
  /// Collectives run in call order on every rank: pushes must come in one order.
  bool ordered_pushes() const override { return true; }
  /// The engine's own counters (per kind of collective).
  CollectiveCounters collective_counters() const;
  /// homomorphic: THC's error-feedback residual; powersgd: every compressed tensor's
  /// warm-started Q, residual and step count (layout in collective_transport_algos.cc);
  /// empty in the other modes. Runs on the communication thread after the operations
  /// queued before it.
  std::vector<std::uint8_t> save_state() override;
  /// Restores an image of save_state() of the same mode and model. CommError
  /// kInvalidArgument (nothing changed) for an image of another mode or size, a
  /// truncated one, or an empty one in homomorphic/powersgd.
  void restore_state(const std::vector<std::uint8_t>& image) override;

 private:
  enum class JobKind { kPush, kPull, kPullBucket, kBarrier, kSaveState, kRestoreState };
  /// One queued operation; the factories name the fields each kind uses (the handle is
  /// set by enqueue).
  struct Job {
    JobKind kind = JobKind::kBarrier;
    Handle handle = 0;
    std::uint64_t step = 0;
    std::uint32_t bucket = 0;
    const std::uint8_t* msg = nullptr;
    std::size_t bytes = 0;
    float* params = nullptr;
    std::vector<std::uint8_t>* state = nullptr;  ///< kSaveState: out; kRestoreState: in

    Job() = default;
    static Job push(std::uint64_t step, std::uint32_t bucket, const std::uint8_t* msg, std::size_t bytes) {
      return Job(JobKind::kPush, step, bucket, msg, bytes, nullptr, nullptr);
    }
    static Job pull(std::uint64_t step, float* params) {
      return Job(JobKind::kPull, step, 0, nullptr, 0, params, nullptr);
    }
    static Job pull_bucket(std::uint64_t step, std::uint32_t bucket, float* params) {
      return Job(JobKind::kPullBucket, step, bucket, nullptr, 0, params, nullptr);
    }
    static Job barrier() { return Job(); }
    /// kSaveState / kRestoreState of the aggregation-only state into / from *state.
    static Job state_io(JobKind kind, std::vector<std::uint8_t>* state) {
      return Job(kind, 0, 0, nullptr, 0, nullptr, state);
    }

   private:
    Job(JobKind k, std::uint64_t s, std::uint32_t b, const std::uint8_t* m, std::size_t n, float* p,
        std::vector<std::uint8_t>* st)
        : kind(k), step(s), bucket(b), msg(m), bytes(n), params(p), state(st) {}
  };
  Handle enqueue(Job job);
  /// Throws CommError kInvalidArgument for a bucket id outside the layout.
  void check_bucket(const char* op, std::uint32_t bucket) const;
  void comm_loop();
  void run_job(const Job& job);
  void push_allreduce(const Job& job, const Bucket& b);
  void push_allgather(const Job& job, const Bucket& b);
  struct AggregationOnly;  // THC / PowerSGD state: collective_transport_algos.cc
  void setup_aggregation_only(const ModelSignature& signature);
  void push_homomorphic(const Job& job, const Bucket& b, float* g);
  void push_powersgd(const Job& job, const Bucket& b, const float* g);
  void write_state(std::vector<std::uint8_t>* out) const;  // on the communication thread
  void read_state(const std::vector<std::uint8_t>& image);
  void check_fingerprint(const ModelSignature& signature);
  void share_initial_state(const ModelSignature& signature, float* params);
  void maybe_checkpoint(std::uint64_t steps_done);
  /// The codec of the bucket's messages: its spec's (Layout::specs, compressor rules) or identity.
  const quant::Codec& bucket_codec(const Bucket& b) const { return b.compressed ? *uplinks_[b.spec] : *identity_; }

  CollectiveTransportOptions o_;
  std::unique_ptr<Collective> coll_;
  Layout layout_;
  std::uint64_t signature_hash_ = 0;
  std::vector<std::unique_ptr<quant::Codec>> uplinks_;  // one per Layout::specs entry
  std::unique_ptr<quant::Codec> identity_;
  std::vector<DType> spec_dtype_;  // allreduce: element type per Layout::specs entry
  std::shared_ptr<AggregationOnly> algo_;  // shared_ptr: the type is complete only in collective_transport_algos.cc
  std::vector<float> params_, momentum_, grad_;
  std::vector<std::uint16_t> half_;
  std::uint64_t resume_step_ = 0;
  std::uint64_t last_checkpoint_ = 0;
  std::uint64_t applied_step_ = 0;      // step whose pushes are being applied
  std::size_t applied_buckets_ = 0;     // buckets of applied_step_ applied so far

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::map<Handle, std::exception_ptr> done_;  // finished jobs not yet waited for
  std::exception_ptr failure_;                 // the first failure: every later job fails with it
  Handle next_handle_ = 1;
  bool stop_ = false;
  bool aborted_ = false;
  std::thread thread_;
  mutable std::mutex counters_mu_;
  TrafficCounters traffic_;  // messages and seconds; bytes come from coll_'s counters
};

}  // namespace gradzip::comm
