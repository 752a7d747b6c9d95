// Transport decorators (no torch): what the trainer may put between a worker and its
// transport. The first two serve the simulation (run_training over comm/inproc.h).
//
//  - ModeledLinkTransport: the worker's own full-duplex link of a given bandwidth.
//    A push leaves once the uplink has serialized it (bytes / bandwidth after the
//    previous message, the caller sleeps until then); a pull reply counts as arrived
//    once the downlink has serialized its bytes. Latency is not modeled (50 us on
//    eth1g, small against a bucket's transmission time); neither is sharing of a
//    shard's port between workers. Used by --sim-link-delay and the overlap benchmark.
//  - OrderedPushTransport: in sync mode, worker w pushes bucket b only after worker
//    w - 1 did, so the shard sums every bucket in worker order 0, 1, ..., N-1 and a
//    simulated run is bit-for-bit repeatable whatever the threads' timing (float sums
//    depend on their order from three workers on). run_training puts it under the
//    ModeledLinkTransport: a push crosses its worker's link first, then waits for its
//    turn, so no worker holds a turn while its bytes are on its link (over the link,
//    the N workers' links would send each bucket one after another).
//
// Thread-safety: a decorated transport is driven by one thread, like the transport
// under it; PushTurns is shared by the workers' threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "comm/transport.h"

namespace gradzip::trainer {

/// Forwards every call to `inner` (a base for decorators that override a few). Both
/// push overloads forward as they are (a zero-copy push stays zero-copy under any
/// decorator); decorators act on pushes through before_push()/after_push().
class ForwardingTransport : public comm::WorkerTransport {
 public:
  explicit ForwardingTransport(comm::WorkerTransport& inner) : inner_(inner) {}
  void connect(const comm::ModelSignature& signature, std::uint32_t worker_rank, float* params) override {
    inner_.connect(signature, worker_rank, params);
  }
  std::uint64_t resume_step() const override { return inner_.resume_step(); }
  comm::Handle push(std::uint64_t step, std::uint32_t bucket, const std::uint8_t* msg, std::size_t bytes) final {
    before_push(step, bucket, bytes);
    const comm::Handle h = inner_.push(step, bucket, msg, bytes);
    after_push(bucket);
    return h;
  }
  comm::Handle push(std::uint64_t step, std::uint32_t bucket, comm::SharedBytes msg) final {
    before_push(step, bucket, msg->size());
    const comm::Handle h = inner_.push(step, bucket, std::move(msg));
    after_push(bucket);
    return h;
  }
  comm::Handle pull(std::uint64_t step, float* params) override { return inner_.pull(step, params); }
  comm::Handle pull_bucket(std::uint64_t step, std::uint32_t bucket, float* params, bool dense) override {
    return inner_.pull_bucket(step, bucket, params, dense);
  }
  void wait(comm::Handle handle) override { inner_.wait(handle); }
  void abort() override { inner_.abort(); }
  void barrier() override { inner_.barrier(); }
  comm::TrafficCounters counters() const override { return inner_.counters(); }
  std::vector<std::uint8_t> save_state() override { return inner_.save_state(); }
  void restore_state(const std::vector<std::uint8_t>& image) override { inner_.restore_state(image); }
  bool ordered_pushes() const override { return inner_.ordered_pushes(); }

 protected:
  /// Before a push of `bytes` leaves (may sleep or throw); after the inner push returned.
  virtual void before_push(std::uint64_t /*step*/, std::uint32_t /*bucket*/, std::size_t /*bytes*/) {}
  virtual void after_push(std::uint32_t /*bucket*/) {}
  comm::WorkerTransport& inner_;
};

class ModeledLinkTransport final : public ForwardingTransport {
 public:
  /// `bytes_per_s` > 0 in each direction.
  ModeledLinkTransport(comm::WorkerTransport& inner, double bytes_per_s);
  /// Connects; the initial parameters are not charged to the link.
  void connect(const comm::ModelSignature& signature, std::uint32_t worker_rank, float* params) override;
  void wait(comm::Handle handle) override;

 private:
  void before_push(std::uint64_t step, std::uint32_t bucket, std::size_t bytes) override;
  using Clock = std::chrono::steady_clock;
  /// Occupies a direction for `bytes`; sleeps until they are through.
  void transmit(Clock::time_point* free_at, double bytes);
  double bytes_per_s_;
  Clock::time_point up_free_{}, down_free_{};
  double down_charged_ = 0;  // downlink bytes already transmitted
};

/// Whose turn it is to push each bucket (shared by the N workers of one simulation).
class PushTurns {
 public:
  PushTurns(std::uint32_t workers, std::size_t buckets) : workers_(workers), pushes_(buckets, 0) {}
  /// Blocks until worker `w` may push bucket `b`; throws comm::CommError(kClosed) after cancel().
  void await(std::uint32_t w, std::uint32_t b);
  /// Worker `w` pushed bucket `b`: the next worker's turn.
  void done(std::uint32_t b);
  /// Wakes and fails every waiting push (a worker of the run failed).
  void cancel();

 private:
  std::uint32_t workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::uint64_t> pushes_;  // pushes of each bucket so far, all workers
  bool cancelled_ = false;
};

class OrderedPushTransport final : public ForwardingTransport {
 public:
  OrderedPushTransport(comm::WorkerTransport& inner, PushTurns& turns, std::uint32_t rank)
      : ForwardingTransport(inner), turns_(turns), rank_(rank) {}

 private:
  void before_push(std::uint64_t step, std::uint32_t bucket, std::size_t bytes) override;
  void after_push(std::uint32_t bucket) override { turns_.done(bucket); }
  PushTurns& turns_;
  std::uint32_t rank_;
};

class FaultyPushTransport final : public ForwardingTransport {
 public:
  FaultyPushTransport(comm::WorkerTransport& inner, std::uint64_t fail_step)
      : ForwardingTransport(inner), fail_step_(fail_step) {}

 private:
  void before_push(std::uint64_t step, std::uint32_t bucket, std::size_t bytes) override;
  std::uint64_t fail_step_;
};

}  // namespace gradzip::trainer
