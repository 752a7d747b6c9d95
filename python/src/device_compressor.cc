#include "python/src/device_compressor.h"

#include "python/src/errors.h"
#include "quant/spec.h"

namespace gradzip::python {
namespace {
template <typename T>
T* as_ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}
cudaStream_t as_stream(std::uintptr_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

/// Status of a CUDA runtime call, as an encode- or decode-side error.
void check_cuda(cudaError_t err, const char* expr, ErrorSite site) {
  if (err != cudaSuccess) check(quant::cuda::cuda_error(err, expr, __FILE__, __LINE__), site);
}
}  // namespace

DeviceCompressor::DeviceCompressor(const std::string& spec, std::uint64_t seed) : seed_(seed) {
  const quant::CompressorSpec parts = quant::parse_compressor_spec(spec);
  memory_ = quant::cuda::make_cuda_memory(parts.memory);
  codec_ = quant::cuda::make_cuda_codec(parts.codec);
}

std::size_t DeviceCompressor::encode_workspace_bytes(std::size_t n) const {
  quant::cuda::CudaMemoryState state;
  std::size_t bytes = 0;
  // A size query launches nothing and reads no pointer but the workspace size.
  check(quant::cuda::encode_with_memory(*memory_, *codec_, nullptr, n, quant::SeedContext{seed_, 0, 0, 0}, &state,
                                        nullptr, max_encoded_bytes(n), nullptr, nullptr, &bytes, nullptr),
        ErrorSite::kEncode);
  return bytes;
}

std::tuple<std::size_t, std::uint64_t> DeviceCompressor::encode(
    std::uintptr_t d_grad, std::size_t n, std::uint64_t step, std::uint32_t worker, std::uint32_t bucket,
    std::uintptr_t d_residual, std::uintptr_t d_momentum, std::uintptr_t d_scratch, std::uint64_t steps,
    std::uintptr_t d_out, std::uintptr_t h_out, std::size_t capacity, std::uintptr_t d_workspace,
    std::size_t workspace_bytes, std::uintptr_t stream) const {
  quant::cuda::CudaMemoryState state{as_ptr<float>(d_residual), as_ptr<float>(d_momentum), as_ptr<float>(d_scratch),
                                     steps};
  const cudaStream_t s = as_stream(stream);
  std::size_t ws = workspace_bytes;
  check(quant::cuda::encode_with_memory(*memory_, *codec_, as_ptr<const float>(d_grad), n,
                                        quant::SeedContext{seed_, step, worker, bucket}, &state,
                                        as_ptr<std::uint8_t>(d_out), capacity, nullptr, as_ptr<void>(d_workspace), &ws,
                                        s),
        ErrorSite::kEncode);
  auto* h_msg = as_ptr<std::uint8_t>(h_out);
  check_cuda(cudaMemcpyAsync(h_msg, as_ptr<const void>(d_out), capacity, cudaMemcpyDeviceToHost, s),
             "cudaMemcpyAsync(message D2H)", ErrorSite::kEncode);
  check_cuda(cudaStreamSynchronize(s), "cudaStreamSynchronize", ErrorSite::kEncode);
  std::size_t bytes = 0;
  check(quant::cuda::finalize_message(h_msg, capacity, &bytes), ErrorSite::kEncode);
  // The device copy gets the checksum too, so either copy is the wire message.
  check_cuda(cudaMemcpyAsync(as_ptr<std::uint8_t>(d_out) + quant::cuda::kDeviceStatusOffset,
                             h_msg + quant::cuda::kDeviceStatusOffset, 8, cudaMemcpyHostToDevice, s),
             "cudaMemcpyAsync(checksum H2D)", ErrorSite::kEncode);
  check_cuda(cudaStreamSynchronize(s), "cudaStreamSynchronize", ErrorSite::kEncode);
  return {bytes, state.steps};
}

void DeviceCompressor::decode(std::uintptr_t h_msg, std::uintptr_t d_msg, std::size_t bytes, std::uintptr_t d_out,
                              std::size_t n, float scale, bool accumulate, std::uintptr_t d_workspace,
                              std::size_t workspace_bytes, std::uintptr_t stream) const {
  std::size_t ws = workspace_bytes;
  const auto* h = as_ptr<const std::uint8_t>(h_msg);
  const auto* d = as_ptr<const std::uint8_t>(d_msg);
  void* w = as_ptr<void>(d_workspace);
  const cudaStream_t s = as_stream(stream);
  const quant::Status st = accumulate
                               ? codec_->decode_add(h, d, bytes, as_ptr<float>(d_out), n, scale, w, &ws, s)
                               : codec_->decode(h, d, bytes, as_ptr<float>(d_out), n, w, &ws, s);
  check(st, ErrorSite::kDecode);
}

}  // namespace gradzip::python
