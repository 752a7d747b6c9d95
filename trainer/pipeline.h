// The overlapped push/pull pipeline of one worker (no torch; see shared DESIGN.md, "Data
// flow of one training step").
//
// One step, as the worker thread drives it:
//   begin_step(t)                     // after the parameters the forward needs arrived
//   forward: wait_params(first, last, t) before each layer reads its buckets
//   backward: bucket_ready(b) as autograd completes bucket b (trainer/grad_hooks.h)
//             -> the bucket is encoded on the shared TaskPool (compensate, encode,
//                update; its gradients are zeroed afterwards for the next step)
//             -> the communication thread pushes it as soon as it is encoded
//   end_backward()                    // every bucket was fired
// The communication thread owns the transport (comm::WorkerTransport is driven by one
// thread): once all of step t's pushes are acknowledged it asks for every bucket
// (pull_bucket, bucket 0 first: the first layers, which the next forward needs first)
// and marks each bucket applied as its reply is written into the parameters. Sync,
// async and SSP semantics are the shards' (pull(t) answers when the mode allows).
//
// A compressed downlink: pull replies are deltas decoded into the parameters
// (comm/client.h); every `resync_every` steps each bucket is pulled dense instead, the
// replica is compared with it (max |difference| -> resync_max_abs_diff) and replaced.
//
// Errors: an encode failure (PipelineError), a hook error reported with fail(), or a
// transport failure (comm::CommError) stops the pipeline; every wait then rethrows the
// first error on the worker thread. The destructor aborts the transport and joins.
//
// Thread-safety: bucket_ready() and fail() from any thread; the rest from the worker
// thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "comm/layout.h"
#include "comm/transport.h"
#include "trainer/bucket_encoder.h"
#include "trainer/task_pool.h"

namespace gradzip::trainer {

struct PipelineOptions {
  std::uint64_t resync_every = 0;  ///< dense pull of every bucket each N steps (compressed downlink); 0 = never
  bool compressed_downlink = false;
};

/// Seconds the pipeline spent, cumulative (encode: pool CPU time; push: the
/// communication thread from the first push of a step to its last acknowledgement).
struct PipelineSeconds {
  double encode = 0;
  double push = 0;
};

class BucketPipeline {
 public:
  /// Starts the communication thread. `applied_steps`: the steps the parameters already
  /// reflect (transport.resume_step() after connect). Every reference must outlive the
  /// pipeline.
  BucketPipeline(const comm::Layout& layout, BucketEncoder& encoder, comm::WorkerTransport& transport, TaskPool& pool,
                 PipelineOptions options, std::uint64_t applied_steps);
  ~BucketPipeline();
  BucketPipeline(const BucketPipeline&) = delete;
  BucketPipeline& operator=(const BucketPipeline&) = delete;

  /// Step `step` begins; `grads` and `params` are the flat buffers (total_numel floats).
  /// Waits until the communication thread took the previous step and its pushes are
  /// acknowledged (this step's encodes reuse their buffers).
  void begin_step(std::uint64_t step, float* grads, float* params);
  /// Bucket `b`'s gradients are final for this step. Thread-safe.
  void bucket_ready(std::uint32_t b);
  /// Backward is over and every bucket was fired: the step's pulls may start.
  void end_backward();
  /// Blocks until buckets [first, last] hold the parameters after `steps` steps.
  void wait_params(std::uint32_t first, std::uint32_t last, std::uint64_t steps);
  /// Blocks until the current step is complete (pushes acknowledged, pulls applied).
  void drain();
  /// Stops the pipeline with `error` (e.g. a gradient hook failed). Thread-safe.
  void fail(std::exception_ptr error);

  /// Snapshot of the transport's counters after the last completed step.
  comm::TrafficCounters counters() const;
  PipelineSeconds seconds() const;
  /// Largest |replica - dense parameters| seen at a resync (compressed downlink), and
  /// how many resyncs ran.
  double resync_max_abs_diff() const;
  std::uint64_t resyncs() const;

 private:
  void comm_loop();
  void run_step(std::uint64_t step, std::unique_lock<std::mutex>& lock);
  void pull_all(std::uint64_t step);
  void throw_if_failed() const;  // the caller holds mu_

  const comm::Layout& layout_;
  BucketEncoder& encoder_;
  comm::WorkerTransport& transport_;
  TaskPool& pool_;
  PipelineOptions opt_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::exception_ptr error_;
  enum class Phase { kIdle, kPushing, kPulling };  // of the communication thread
  bool stop_ = false;
  bool pending_ = false;        // begin_step called, the communication thread has not taken the step yet
  Phase phase_ = Phase::kIdle;
  bool backward_done_ = false;
  std::uint64_t step_ = 0;
  float* grads_ = nullptr;
  float* params_ = nullptr;
  std::deque<std::uint32_t> encoded_;         // buckets ready to push, in encode-completion order
  std::size_t encodes_in_flight_ = 0;
  std::vector<std::uint64_t> applied_;        // per bucket: steps its parameters reflect
  std::vector<float> dense_;                  // resync target
  comm::TrafficCounters counters_;
  PipelineSeconds seconds_;
  double resync_diff_ = 0;
  std::uint64_t resyncs_ = 0;
  std::thread comm_;
};

}  // namespace gradzip::trainer
