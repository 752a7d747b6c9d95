// CudaEncodePipeline (quant/cuda_pipeline.h): encode on one stream, D2H on another,
// checksum on the host. Host code only.
#include "quant/cuda_pipeline.h"

#include <string>

namespace gradzip::quant::cuda {

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
    GZ_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&s.d_msg), p->capacity_));
    GZ_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&s.h_msg), p->capacity_, cudaHostAllocDefault));
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
    stats->d2h_bytes += slot.copy_bytes;
    stats->message_bytes += bytes;
  }
  return consume(bucket, slot.h_msg, bytes);
}

Status CudaEncodePipeline::run(const std::vector<PipelineBucket>& buckets, cudaStream_t producer,
                               const MessageConsumer& consume, PipelineStats* stats) {
  if (!consume) return Status(Errc::kInvalidArgument, "pipeline needs a consumer");
  PipelineStats local;
  const std::size_t depth = slots_.size();
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
    GZ_RETURN_IF_ERROR(codec_.encode(b.d_grad, b.d_residual, b.numel, b.ctx, slot.d_msg, capacity_, nullptr,
                                     d_workspace_, &ws, compute_));
    GZ_CUDA_CHECK(cudaEventRecord(slot.encode_done, compute_));
    // Dense codecs: the exact size is known on the host. Codecs with a data-dependent
    // size copy their bound (the header inside tells finalize_message the real length).
    slot.copy_bytes = codec_.max_encoded_bytes(b.numel);
    GZ_CUDA_CHECK(cudaStreamWaitEvent(copy_, slot.encode_done, 0));
    GZ_CUDA_CHECK(cudaEventRecord(slot.copy_start, copy_));
    GZ_CUDA_CHECK(cudaMemcpyAsync(slot.h_msg, slot.d_msg, slot.copy_bytes, cudaMemcpyDeviceToHost, copy_));
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
