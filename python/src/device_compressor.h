// DeviceCompressor: the CUDA twin of HostCompressor (built only when gradzip_quant_cuda
// is, i.e. GRADZIP_HAVE_CUDA). Device memory comes from the Python side as addresses of
// torch CUDA tensors (gradient, message, per-bucket residual/momentum/scratch, a
// workspace sized by encode_workspace_bytes / decode_workspace_bytes); the stream is
// torch's current stream of the tensor's device (its cudaStream_t as an integer); the
// caller has made that device current. Same spec strings, seeds and message bytes as
// the CPU codecs (quant/cuda.h).
//
// encode enqueues the fused memory+codec step, copies the message to a host buffer,
// waits for the stream, computes the checksum on the host (quant::cuda::finalize_message)
// and writes it back into the device message: the device and host copies are then the
// final wire bytes. That host wait is the price of a checksummed message (quant/cuda.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>

#include "quant/cuda.h"

namespace gradzip::python {

class DeviceCompressor {
 public:
  /// Throws quant::SpecError for a bad spec or a codec/memory without a CUDA twin.
  DeviceCompressor(const std::string& spec, std::uint64_t seed);

  std::string spec() const { return memory_->spec() + "+" + codec_->spec(); }
  bool needs_residual() const { return memory_->needs_residual(); }
  bool needs_momentum() const { return memory_->needs_momentum(); }
  bool needs_scratch() const { return memory_->needs_scratch(); }
  std::size_t max_encoded_bytes(std::size_t n) const { return codec_->max_encoded_bytes(n); }
  /// Device scratch bytes for encode / decode of n elements (two-phase size queries).
  std::size_t encode_workspace_bytes(std::size_t n) const;
  std::size_t decode_workspace_bytes(std::size_t n) const { return codec_->decode_workspace_bytes(n); }

  /// Encodes d_grad[0, n) with the bucket's device state into d_out (capacity bytes) and
  /// h_out (host, capacity bytes). `steps` is the state's step counter; returns (message
  /// bytes, new steps). d_workspace must be non-null (>= 16 bytes when none is needed).
  std::tuple<std::size_t, std::uint64_t> encode(std::uintptr_t d_grad, std::size_t n, std::uint64_t step,
                                                std::uint32_t worker, std::uint32_t bucket,
                                                std::uintptr_t d_residual, std::uintptr_t d_momentum,
                                                std::uintptr_t d_scratch, std::uint64_t steps, std::uintptr_t d_out,
                                                std::uintptr_t h_out, std::size_t capacity,
                                                std::uintptr_t d_workspace, std::size_t workspace_bytes,
                                                std::uintptr_t stream) const;
  /// d_out[0, n) = decode(msg), or d_out += scale * decode(msg) when accumulate. The
  /// message is given on the host (validated there) and on the device (read by kernels).
  void decode(std::uintptr_t h_msg, std::uintptr_t d_msg, std::size_t bytes, std::uintptr_t d_out, std::size_t n,
              float scale, bool accumulate, std::uintptr_t d_workspace, std::size_t workspace_bytes,
              std::uintptr_t stream) const;

 private:
  std::unique_ptr<quant::cuda::CudaMemory> memory_;
  std::unique_ptr<quant::cuda::CudaCodec> codec_;
  std::uint64_t seed_;
};

}  // namespace gradzip::python
