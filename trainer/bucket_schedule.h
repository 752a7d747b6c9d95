// Which gradient buckets a backward pass has completed (no torch).
//
// Backward produces parameter gradients roughly in reverse registration order (last
// layer first), and comm/layout.h cuts the flat buffer into buckets in registration
// order, so buckets complete from the highest id down. BucketSchedule maps every
// parameter tensor (flat order, comm::ModelSignature::tensors) to the buckets holding a
// part of it, counts per bucket the tensors whose gradients are still missing in this
// step, and fires a bucket exactly once per step: when its last tensor is reported
// (trainer/grad_hooks.h reports tensors from autograd), or from fire_remaining() after
// backward for buckets whose tensors got no gradient.
//
// Thread-safety: all members may be called from any thread (one mutex): autograd may
// run hooks on a device thread while the worker thread calls fire_remaining().
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "comm/layout.h"
#include "comm/transport.h"

namespace gradzip::trainer {

class BucketSchedule {
 public:
  /// `tensors` in flat order (their numel must sum to layout.total_numel). Throws
  /// std::invalid_argument when they do not.
  BucketSchedule(const std::vector<comm::TensorInfo>& tensors, const comm::Layout& layout);

  /// Every bucket pending again, every tensor unreported.
  void begin_step();
  /// Tensor `t`'s gradient is final for this step: appends the buckets it completed to
  /// *fired (in descending id order). Throws std::logic_error when `t` is out of range
  /// or was already reported this step.
  void tensor_ready(std::size_t t, std::vector<std::uint32_t>* fired);
  /// Fires every bucket not fired yet this step (descending id) and returns them.
  std::vector<std::uint32_t> fire_remaining();

  /// Buckets [first, last] (ids) overlapping the flat element range [begin, end); end >
  /// begin, end <= total_numel.
  std::pair<std::uint32_t, std::uint32_t> buckets_in(std::uint64_t begin, std::uint64_t end) const;
  std::size_t num_buckets() const { return bucket_offset_.size(); }
  std::size_t num_tensors() const { return tensor_buckets_.size(); }
  /// Flat element range [offset, offset + numel) of tensor `t`.
  std::pair<std::uint64_t, std::uint64_t> tensor_range(std::size_t t) const { return tensor_range_.at(t); }

 private:
  std::vector<std::vector<std::uint32_t>> tensor_buckets_;  // tensor -> buckets overlapping it
  std::vector<std::pair<std::uint64_t, std::uint64_t>> tensor_range_;
  std::vector<std::uint32_t> tensors_per_bucket_;          // non-empty tensors overlapping each bucket
  std::vector<std::uint64_t> bucket_offset_;               // ascending
  mutable std::mutex mu_;
  std::vector<std::uint32_t> missing_;                     // per bucket, this step
  std::vector<bool> fired_, reported_;
};

}  // namespace gradzip::trainer
