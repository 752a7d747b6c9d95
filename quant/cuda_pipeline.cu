// CudaEncodePipeline (quant/cuda_pipeline.h): encode on one stream, D2H on another,
// checksum on the host. Host code only.
#include "quant/cuda_pipeline.h"

#include <string>

#include "quant/cuda_kernels.cuh"

namespace gradzip::quant::cuda {

namespace {

/// Copies the message at d_msg, whose length the encode wrote to *d_len (sparse codecs:
/// known only on the device), into mapped pinned host memory: only the real bytes cross
/// PCIe, without a host round trip to learn the length first. 16-byte stores when both
/// sides allow (cudaMalloc and cudaHostAlloc are 256-byte aligned).
__global__ void __launch_bounds__(kBlockThreads)
    copy_to_mapped_kernel(const std::uint8_t* d_msg, const std::uint64_t* d_len, std::uint8_t* h_mapped,
                          std::size_t capacity) {
  const std::uint64_t len = *d_len < capacity ? *d_len : capacity;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  const std::size_t first = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::size_t vec = len / 16;
  for (std::size_t i = first; i < vec; i += stride) {
    reinterpret_cast<uint4*>(h_mapped)[i] = reinterpret_cast<const uint4*>(d_msg)[i];
  }
  for (std::size_t i = 16 * vec + first; i < len; i += stride) h_mapped[i] = d_msg[i];
}

}  // namespace

Status CudaEncodePipeline::create(const CudaCodec& codec, std::size_t max_bucket_numel, int depth,
                                  std::unique_ptr<CudaEncodePipeline>* out) {
  if (out == nullptr || depth < 2) return Status(Errc::kInvalidArgument, "pipeline needs depth >= 2 and an output");
  std::unique_ptr<CudaEncodePipeline> p(new CudaEncodePipeline(codec));
  p->max_numel_ = max_bucket_numel;
  p->capacity_ = codec.max_encoded_bytes(max_bucket_numel);
  GZ_RETURN_IF_ERROR(codec.encode(nullptr, nullptr, max_bucket_numel, SeedContext{}, nullptr, p->capacity_, nullptr,
                                  nullptr, &p->workspace_bytes_, nullptr));
  // At least one word: a null workspace means "size query" in the two-phase protocol.
  GZ_CUDA_CHECK(cudaMalloc(&p->d_workspace_, p->workspace_bytes_ > 0 ? p->workspace_bytes_ : 256));
  GZ_CUDA_CHECK(cudaStreamCreateWithFlags(&p->compute_, cudaStreamNonBlocking));
  GZ_CUDA_CHECK(cudaStreamCreateWithFlags(&p->copy_, cudaStreamNonBlocking));
  GZ_CUDA_CHECK(cudaEventCreate(&p->run_start_));
  GZ_CUDA_CHECK(cudaEventCreate(&p->run_end_));
  p->slots_.resize(static_cast<std::size_t>(depth));
  for (Slot& s : p->slots_) {
    // The device slot holds the message, then (256-byte aligned) its device-written length.
    const std::size_t len_offset = (p->capacity_ + 255) / 256 * 256;
    GZ_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&s.d_msg), len_offset + 8));
    s.d_len = reinterpret_cast<std::uint64_t*>(s.d_msg + len_offset);
    // Mapped so that a kernel can write only the real bytes of a variable-size message.
    GZ_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&s.h_msg), p->capacity_, cudaHostAllocMapped));
    GZ_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&s.h_msg_device), s.h_msg, 0));
    GZ_CUDA_CHECK(cudaEventCreate(&s.encode_start));
    GZ_CUDA_CHECK(cudaEventCreate(&s.encode_done));
    GZ_CUDA_CHECK(cudaEventCreate(&s.copy_start));
    GZ_CUDA_CHECK(cudaEventCreate(&s.copy_done));
  }
  *out = std::move(p);
  return Status::Ok();
}

CudaEncodePipeline::~CudaEncodePipeline() {
  // Destructors cannot report; the streams are drained first so nothing is in flight.
  if (compute_ != nullptr) (void)cudaStreamSynchronize(compute_);
  if (copy_ != nullptr) (void)cudaStreamSynchronize(copy_);
  for (Slot& s : slots_) {
    if (s.d_msg != nullptr) (void)cudaFree(s.d_msg);
    if (s.h_msg != nullptr) (void)cudaFreeHost(s.h_msg);
    for (cudaEvent_t e : {s.encode_start, s.encode_done, s.copy_start, s.copy_done}) {
      if (e != nullptr) (void)cudaEventDestroy(e);
    }
  }
  if (run_start_ != nullptr) (void)cudaEventDestroy(run_start_);
  if (run_end_ != nullptr) (void)cudaEventDestroy(run_end_);
  if (d_workspace_ != nullptr) (void)cudaFree(d_workspace_);
  if (compute_ != nullptr) (void)cudaStreamDestroy(compute_);
  if (copy_ != nullptr) (void)cudaStreamDestroy(copy_);
}

Status CudaEncodePipeline::consume_slot(std::size_t bucket, Slot& slot, const MessageConsumer& consume,
                                        PipelineStats* stats) {
  GZ_CUDA_CHECK(cudaEventSynchronize(slot.copy_done));
  float encode_ms = 0.0f, copy_ms = 0.0f;
  GZ_CUDA_CHECK(cudaEventElapsedTime(&encode_ms, slot.encode_start, slot.encode_done));
  GZ_CUDA_CHECK(cudaEventElapsedTime(&copy_ms, slot.copy_start, slot.copy_done));
  std::size_t bytes = 0;
  GZ_RETURN_IF_ERROR(finalize_message(slot.h_msg, slot.copy_bytes, &bytes));
  if (stats != nullptr) {
    stats->encode_ms += encode_ms;
    stats->d2h_ms += copy_ms;
    // Exact-size codecs copy exactly the message; the others copy only its real length.
    stats->d2h_bytes += codec_.exact_size() ? slot.copy_bytes : bytes;
    stats->message_bytes += bytes;
  }
  return consume(bucket, slot.h_msg, bytes);
}

namespace {

/// Waits, when it leaves scope, for everything queued on the pipeline's streams: a run that
/// returns early (consumer error, bad bucket, failed CUDA call) must not leave an encode or
/// a copy in flight, or the next run would reuse a slot (device message, pinned host
/// buffer) that is still being written.
class InFlightGuard {
 public:
  InFlightGuard(cudaStream_t compute, cudaStream_t copy) : compute_(compute), copy_(copy) {}
  ~InFlightGuard() {
    (void)cudaStreamSynchronize(compute_);
    (void)cudaStreamSynchronize(copy_);
  }
  InFlightGuard(const InFlightGuard&) = delete;
  InFlightGuard& operator=(const InFlightGuard&) = delete;

 private:
  cudaStream_t compute_;
  cudaStream_t copy_;
};

}  // namespace

Status CudaEncodePipeline::run(const std::vector<PipelineBucket>& buckets, cudaStream_t producer,
                               const MessageConsumer& consume, PipelineStats* stats) {
  if (!consume) return Status(Errc::kInvalidArgument, "pipeline needs a consumer");
  PipelineStats local;
  const std::size_t depth = slots_.size();
  const InFlightGuard in_flight(compute_, copy_);  // every exit path waits for queued work
  // Gradients (and residuals) were produced on `producer`; the non-blocking pipeline
  // streams do not order with it implicitly.
  GZ_CUDA_CHECK(cudaEventRecord(run_start_, producer));
  GZ_CUDA_CHECK(cudaStreamWaitEvent(compute_, run_start_, 0));
  // The copy stream's end event must not complete before the start was recorded.
  GZ_CUDA_CHECK(cudaStreamWaitEvent(copy_, run_start_, 0));
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    const PipelineBucket& b = buckets[i];
    if (b.numel > max_numel_) {
      return Status(Errc::kInvalidArgument, "bucket " + std::to_string(i) + " has " + std::to_string(b.numel) +
                                                " elements, the pipeline was sized for " + std::to_string(max_numel_));
    }
    Slot& slot = slots_[i % depth];
    if (i >= depth) GZ_RETURN_IF_ERROR(consume_slot(i - depth, slot, consume, &local));
    // The device slot is free once the copy of bucket i - depth is done (already true
    // after the host sync above; the stream-ordered wait keeps it correct without it).
    if (i >= depth) GZ_CUDA_CHECK(cudaStreamWaitEvent(compute_, slot.copy_done, 0));
    GZ_CUDA_CHECK(cudaEventRecord(slot.encode_start, compute_));
    std::size_t ws = workspace_bytes_;
    GZ_RETURN_IF_ERROR(codec_.encode(b.d_grad, b.d_residual, b.numel, b.ctx, slot.d_msg, capacity_, slot.d_len,
                                     d_workspace_, &ws, compute_));
    GZ_CUDA_CHECK(cudaEventRecord(slot.encode_done, compute_));
    // Dense codecs: the exact size is known on the host, the DMA engine copies it.
    // Codecs with a data-dependent size: a copy kernel reads the length the encode wrote
    // to slot.d_len and writes just those bytes to the mapped pinned slot.
    slot.copy_bytes = codec_.max_encoded_bytes(b.numel);
    GZ_CUDA_CHECK(cudaStreamWaitEvent(copy_, slot.encode_done, 0));
    GZ_CUDA_CHECK(cudaEventRecord(slot.copy_start, copy_));
    if (codec_.exact_size()) {
      GZ_CUDA_CHECK(cudaMemcpyAsync(slot.h_msg, slot.d_msg, slot.copy_bytes, cudaMemcpyDeviceToHost, copy_));
    } else {
      copy_to_mapped_kernel<<<grid_for(slot.copy_bytes / 16 + 1, 4), kBlockThreads, 0, copy_>>>(
          slot.d_msg, slot.d_len, slot.h_msg_device, slot.copy_bytes);
      GZ_CUDA_CHECK_LAUNCH();
    }
    GZ_CUDA_CHECK(cudaEventRecord(slot.copy_done, copy_));
    local.gradient_bytes += 4 * static_cast<std::uint64_t>(b.numel);
  }
  const std::size_t first_pending = buckets.size() > depth ? buckets.size() - depth : 0;
  for (std::size_t i = first_pending; i < buckets.size(); ++i) {
    GZ_RETURN_IF_ERROR(consume_slot(i, slots_[i % depth], consume, &local));
  }
  // Wall time: run_start_ (compute stream, before the first encode) to run_end_ (copy
  // stream, after the last copy).
  GZ_CUDA_CHECK(cudaEventRecord(run_end_, copy_));
  GZ_CUDA_CHECK(cudaEventSynchronize(run_end_));
  float wall = 0.0f;
  GZ_CUDA_CHECK(cudaEventElapsedTime(&wall, run_start_, run_end_));
  local.wall_ms = wall;
  local.buckets = buckets.size();
  if (stats != nullptr) *stats = local;
  return Status::Ok();
}

}  // namespace gradzip::quant::cuda
