// Overlapping device encode with the device-to-host copy of the previous bucket.
//
//   compute stream:  encode b0 | encode b1 | encode b2 | ...
//   copy stream:                | D2H b0    | D2H b1    | ...
//   host:                                   | finalize+consume b0 | ...
//
// Each bucket's message goes to one of `depth` device slots and one of `depth` pinned
// host slots (allocated once by create(), never on the hot path). Encode of bucket i
// waits (stream-ordered, cudaStreamWaitEvent) until the D2H of bucket i - depth has
// finished with its device slot; the host consumes bucket i - depth (event sync, then
// finalize_message: checksum) before the copy of bucket i is issued into its pinned
// slot, so with depth >= 2 encode i+1 overlaps the copy of bucket i and the host's
// checksum of bucket i-1. The PCIe traffic (bytes and CUDA-event time of the copies) is
// reported, which is what comm/'s link model turns into modeled time.
//
// Copies: dense codecs (exact_size) use cudaMemcpyAsync of the known size (DMA engine).
// Sparse codecs know their length only on the device, so a small kernel on the copy
// stream reads it and writes exactly that many bytes into the mapped pinned slot: no
// host round trip, no copy of the (up to 8n-byte) bound.
//
// Thread-safety: one pipeline per host thread. Includable from plain C++.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "quant/cuda.h"

namespace gradzip::quant::cuda {

/// One bucket to encode: a device span of the flat gradient (and its residual when the
/// codec should fuse "ef" error feedback), and its seed context.
struct PipelineBucket {
  const float* d_grad = nullptr;
  float* d_residual = nullptr;  ///< may be null (no error feedback)
  std::size_t numel = 0;
  SeedContext ctx;
};

/// What one run() moved and how long it took (CUDA-event times, milliseconds).
struct PipelineStats {
  std::uint64_t buckets = 0;
  std::uint64_t gradient_bytes = 0;  ///< 4 * sum of numel (what an uncompressed copy would move)
  std::uint64_t message_bytes = 0;   ///< sum of final message sizes
  std::uint64_t d2h_bytes = 0;       ///< bytes actually copied device-to-host (PCIe): the messages
  double encode_ms = 0.0;            ///< sum of per-bucket encode times (compute stream)
  double d2h_ms = 0.0;               ///< sum of per-bucket copy times (copy stream)
  double wall_ms = 0.0;              ///< first encode start to last copy end
  /// Achieved PCIe bandwidth of the copies, bytes per second.
  double d2h_bytes_per_s() const { return d2h_ms > 0.0 ? d2h_bytes / (d2h_ms * 1e-3) : 0.0; }
};

/// Called on the host for each finished bucket, in order: bucket index, the final
/// message (pinned memory, valid only during the call) and its length in bytes. A non-OK
/// return stops the run and is returned by run().
using MessageConsumer = std::function<Status(std::size_t bucket, const std::uint8_t* h_msg, std::size_t bytes)>;

class CudaEncodePipeline {
 public:
  /// Allocates `depth` (>= 2) device and pinned message slots sized for buckets of up to
  /// max_bucket_numel elements, the codec's workspace, two streams and timing events on
  /// the current device. `codec` must outlive the pipeline.
  static Status create(const CudaCodec& codec, std::size_t max_bucket_numel, int depth,
                       std::unique_ptr<CudaEncodePipeline>* out);
  ~CudaEncodePipeline();
  CudaEncodePipeline(const CudaEncodePipeline&) = delete;
  CudaEncodePipeline& operator=(const CudaEncodePipeline&) = delete;

  /// Encodes every bucket, copies each message to pinned memory, finalizes it (checksum,
  /// device status: e.g. kNonFiniteInput) and hands it to `consume`, in bucket order.
  /// The encodes start after the work already enqueued on `producer` (the stream that
  /// wrote the gradients, e.g. backward; 0 = legacy default stream). Blocks until the
  /// last bucket is consumed. `stats` (may be null) receives the totals.
  Status run(const std::vector<PipelineBucket>& buckets, cudaStream_t producer, const MessageConsumer& consume,
             PipelineStats* stats);

 private:
  explicit CudaEncodePipeline(const CudaCodec& codec) : codec_(codec) {}
  struct Slot {
    std::uint8_t* d_msg = nullptr;
    std::uint64_t* d_len = nullptr;        ///< message length written by the encode (inside d_msg's allocation)
    std::uint8_t* h_msg = nullptr;         ///< pinned, mapped
    std::uint8_t* h_msg_device = nullptr;  ///< the device's address of h_msg
    cudaEvent_t encode_start = nullptr, encode_done = nullptr, copy_start = nullptr, copy_done = nullptr;
    std::size_t copy_bytes = 0;
  };
  Status consume_slot(std::size_t bucket, Slot& slot, const MessageConsumer& consume, PipelineStats* stats);

  const CudaCodec& codec_;
  std::size_t capacity_ = 0;
  std::size_t max_numel_ = 0;
  std::vector<Slot> slots_;
  void* d_workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  cudaStream_t compute_ = nullptr;
  cudaStream_t copy_ = nullptr;
  cudaEvent_t run_start_ = nullptr;
  cudaEvent_t run_end_ = nullptr;
};

}  // namespace gradzip::quant::cuda
