// PowerSGD over a whole model (Vogels et al. NeurIPS'19; per-tensor arithmetic in
// quant/powersgd.h): which tensors travel as rank-r factors and which dense, the packing of
// their p, q and dense values into the flat buffers one reduction carries, and the
// per-tensor state of a worker. Shared by the two engines that drive it, so they compute
// the same values from the same reduced bytes:
//  - collectives (comm/collective_transport_algos.cc): allreduce 1 = [p | dense], allreduce
//    2 = [q]; every rank rebuilds the gradient and steps its own optimizer;
//  - the parameter server (comm/powersgd_ps_transport.h, comm/shard_reduce.cc): round 1 =
//    [p] (the shard replies with the sum), round 2 = [q | dense] (the shard replies with
//    the sum of q and rebuilds the gradient itself, rebuild() below).
// Buffer layouts: "p" = every compressed tensor's p in tensor order (PowerSgdState::p_numel
// floats each), "q" likewise, "dense" = every uncompressed tensor's values in tensor order.
//
// Thread-safety: none (one thread drives one instance).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/transport.h"
#include "quant/powersgd.h"
#include "quant/status.h"

namespace gradzip::comm {

class PowerSgdTensors {
 public:
  /// The plans of every tensor of `signature` under `codec_spec` ("powersgd[:rank=R,...]",
  /// no memory prefix); with `with_state`, one PowerSgdState per compressed tensor (Q
  /// initialised from `seed`: equal on every worker). A shard needs plans only.
  /// Throws quant::SpecError (bad spec), CommError kInvalidArgument (bad shape).
  PowerSgdTensors(const ModelSignature& signature, const std::string& codec_spec, std::uint64_t seed, bool with_state);

  std::size_t p_floats() const { return p_floats_; }
  std::size_t q_floats() const { return q_floats_; }
  std::size_t dense_floats() const { return dense_floats_; }
  std::size_t compressed_tensors() const { return compressed_; }

  // The worker's phases (with_state only), in this order per step; each throws CommError
  // kInvalidArgument naming `step` and the tensor (non-finite values, phase misuse).
  /// In: grad (flat, the model's numel). Out: p[p_floats()].
  void compute_p(const float* grad, float* p, std::uint64_t step);
  /// In: the reduced p[p_floats()] (sum over workers).
  void set_reduced_p(const float* p_reduced, std::uint64_t step);
  /// Out: q[q_floats()].
  void compute_q(float* q, std::uint64_t step);
  /// In: q_mean[q_floats()], the mean over workers. Out: the rank-r approximation of each
  /// compressed tensor into grad at its place (the dense tensors' places are untouched).
  void finish(const float* q_mean, float* grad, std::uint64_t step);

  /// Out: dense[dense_floats()] = the uncompressed tensors' values of grad.
  void gather_dense(const float* grad, float* dense) const;
  /// grad at the uncompressed tensors' places = dense_sum * scale (scale 1: the sum kept).
  void scatter_dense(const float* dense_sum, float scale, float* grad) const;

  /// The shard's side (plans only): grad at every compressed tensor's place = P Q^T with
  /// P = orthonormalised p_sum (a copy) and Q = q_mean, as the workers' finish() computes
  /// it. kNonFiniteInput (grad partly written) when p_sum or q_mean holds NaN or Inf.
  quant::Status rebuild(const float* p_sum, const float* q_mean, float* grad);

  /// Appends u32 t = compressed tensors, then t images of PowerSgdState::state (Q, residual,
  /// step count) in tensor order. Between steps only (else CommError kInvalidArgument).
  void save(std::vector<std::uint8_t>* out) const;
  /// Reads exactly one image of save() from data[0, size): all or nothing. CommError
  /// kInvalidArgument naming what does not fit (tensor count, sizes, left-over bytes).
  void restore(const std::uint8_t* data, std::size_t size);

 private:
  struct Tensor {
    std::uint64_t offset = 0, numel = 0;
    quant::PowerSgdPlan plan;
    std::unique_ptr<quant::PowerSgdState> state;  // with_state and compressed only
  };
  /// f(tensor index, tensor, offset of its p, offset of its q) for every tensor with a state.
  template <typename F>
  void each_state(F f);

  std::vector<Tensor> tensors_;
  std::uint64_t seed_ = 0;
  std::size_t p_floats_ = 0, q_floats_ = 0, dense_floats_ = 0, compressed_ = 0;
  std::vector<float> scratch_;  // rebuild: the orthonormalised copy of one p
};

}  // namespace gradzip::comm
