// The uplink side of one worker, per bucket (no torch): error-feedback state, message
// buffer, and compensate -> encode -> (decode) -> update of a bucket's gradients. The
// sequential step and the overlapped pipeline (trainer/pipeline.h) both encode through
// it, so they send the same bytes for the same gradients.
//
// Thread-safety: encode() of different buckets may run concurrently (each bucket has its
// own state and buffer; scratch space is per thread); one bucket at a time per worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "comm/layout.h"
#include "quant/memory.h"
#include "quant/registry.h"

namespace gradzip::trainer {

class BucketEncoder {
 public:
  /// `layout`, `compressors` (one per layout.specs entry) and `identity` must outlive the
  /// encoder. Bucket b is encoded with compressors[b.spec] when b.compressed (one
  /// compressor per bucket: rules form buckets per spec, comm/layout.h), else `identity`.
  BucketEncoder(const comm::Layout& layout, const std::vector<quant::Compressor>& compressors,
                const quant::Codec& identity, std::uint64_t seed, std::uint32_t rank);

  /// Encodes bucket `b` of step `step` from grads[offset, offset + numel) (flat
  /// gradient buffer), with error feedback (Seide et al. 2014; Karimireddy et al. 2019:
  /// encode g + residual, keep what the receiver will not see). Throws PipelineError
  /// (stage kEncode) naming the worker, step and bucket when the codec refuses.
  void encode(std::uint32_t b, std::uint64_t step, const float* grads);

  const std::uint8_t* message(std::uint32_t b) const { return messages_[b].data(); }
  std::size_t message_bytes(std::uint32_t b) const { return message_bytes_[b]; }

  /// The error-feedback state, one per bucket of the layout (what a worker checkpoint
  /// saves and restores, trainer/worker_state.h). Not while an encode() runs.
  const std::vector<quant::MemoryState>& memory() const { return memory_; }
  std::vector<quant::MemoryState>* mutable_memory() { return &memory_; }

 private:
  const comm::Layout& layout_;
  const std::vector<quant::Compressor>& compressors_;
  const quant::Codec& identity_;
  std::uint64_t seed_;
  std::uint32_t rank_;
  std::vector<quant::MemoryState> memory_;          // per bucket
  std::vector<std::vector<std::uint8_t>> messages_;  // per bucket
  std::vector<std::size_t> message_bytes_;           // per bucket
};

}  // namespace gradzip::trainer
