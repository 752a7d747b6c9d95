// PowerSGD over the parameter server, the worker's side (`gradzip train --aggregation ps
// --compressor powersgd:rank=R`; Vogels et al. NeurIPS'19, with error feedback and a
// warm-started Q). The shard's side is comm/shard_reduce.cc (semantics: comm/shard.h).
//
// The worker pushes identity (fp32) messages of its buckets, as under --aggregation
// powersgd; this transport gathers them, and once every bucket of the step is in, runs
// the step's two round trips to shard 0 through RequestClient::reduce:
//   round 1  up: p of every compressed tensor      down: the sum of p over the workers
//   round 2  up: q, then every dense tensor        down: the sum of q
// then finishes the step on its PowerSgdTensors (Q = sum of q / W, error feedback
// e = M - P Q^T). The shard has applied the same P Q^T (and the dense tensors' mean) to its
// parameters by then, so pull/pull_bucket go to the inner transport as in any PS run.
// The arithmetic is the collectives' (comm/powersgd_tensors.h): with the same seed both
// aggregations take the same steps (bitwise when the sums are added in the same order).
//
// Bytes per worker and step (counted by the client, envelopes and framing apart; H = the
// identity message header, quant/wire.h): up 2 H + 4 (p + q + dense), down 2 H + 4 (p + q)
// plus the pull of the parameters, with p, q, dense = PowerSgdTensors' float counts.
//
// Handles: a push returns at once, except the step's last, which returns after both
// rounds (the worker's next forward needs their result anyway); its failure is rethrown
// by wait() on its handle. Thread-compatible, like every WorkerTransport.
#pragma once

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/client.h"
#include "comm/powersgd_tensors.h"
#include "quant/codec.h"

namespace gradzip::comm {

class PowerSgdPsTransport final : public WorkerTransport {
 public:
  /// `inner`: the worker's transport (the client, possibly under decorators) for connect,
  /// pulls and barriers; `client`: the RequestClient at its bottom, which sends the rounds.
  /// Both must outlive this. `codec_spec`: "powersgd[:rank=R,...]" (checked at connect);
  /// `seed`: the run seed (initial Q); `workers`: W, the divisor of the sum of q.
  PowerSgdPsTransport(WorkerTransport& inner, RequestClient& client, std::string codec_spec, std::uint64_t seed,
                      std::uint32_t workers);

  void connect(const ModelSignature& signature, std::uint32_t worker_rank, float* params) override;
  std::uint64_t resume_step() const override { return inner_.resume_step(); }
  /// `msg` must be an identity message of bucket `bucket` (CommError kInvalidArgument
  /// otherwise, from wait()).
  Handle push(std::uint64_t step, std::uint32_t bucket, const std::uint8_t* msg, std::size_t bytes) override;
  Handle pull(std::uint64_t step, float* params) override { return inner_.pull(step, params); }
  Handle pull_bucket(std::uint64_t step, std::uint32_t bucket, float* params, bool dense) override {
    return inner_.pull_bucket(step, bucket, params, dense);
  }
  void wait(Handle handle) override;
  void abort() override { inner_.abort(); }
  void barrier() override { inner_.barrier(); }
  TrafficCounters counters() const override { return inner_.counters(); }
  /// Every compressed tensor's Q, residual and step count (PowerSgdTensors::save).
  std::vector<std::uint8_t> save_state() override;
  /// An image of save_state() of the same model and spec (CommError kInvalidArgument
  /// otherwise, also for an empty one: the run needs its PowerSGD state).
  void restore_state(const std::vector<std::uint8_t>& image) override;

 private:
  /// Both rounds of `step` and the worker's finish; throws CommError.
  void run_step(std::uint64_t step);
  /// Sends round `round` of `step` carrying values[0, n) and decodes the reply's `want`
  /// floats into *sum.
  void round_trip(std::uint64_t step, std::uint32_t round, const float* values, std::size_t n, std::size_t want,
                  std::vector<float>* sum);
  Handle finished(std::exception_ptr failure);

  WorkerTransport& inner_;
  RequestClient& client_;
  std::string spec_;
  std::uint64_t seed_;
  std::uint32_t workers_;
  std::unique_ptr<PowerSgdTensors> power_;
  std::unique_ptr<quant::Codec> identity_;
  std::vector<float> step_grad_, send_, sum_;
  std::vector<std::uint8_t> reply_;
  std::vector<bool> seen_;  // per bucket: pushed in the step being gathered
  std::size_t seen_count_ = 0;
  std::uint64_t gathering_step_ = 0;
  Handle next_handle_ = 0;
  std::map<Handle, std::exception_ptr> done_;  // own handles not waited for yet
};

}  // namespace gradzip::comm
