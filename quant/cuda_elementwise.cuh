// Fused kernels for element-wise codecs (identity, fp16, bf16): each element is encoded
// on its own, so one grid-stride pass reads g (and e), writes the payload word (and the
// new residual). Bytes moved per element with EF: 4 (g) + 4 (e) + 4 (e') + sizeof(Word).
//
// An Op describes the codec:
//   struct Op {
//     using Word = ...;                         // payload word, little-endian on the wire
//     static constexpr CodecId kId = ...;
//     static const char* name();                // spec string (no parameters)
//     __device__ static Word encode(float x);   // same float ops as the CPU twin
//     __device__ static float decode(Word w);
//     static Status check_message(const MessageView& m);  // host: the CPU decoder's
//   };                                                    // checks (quant/codecs/elementwise.h)
// Payload layout (all three codecs): numel words, no params, so the payload starts at
// byte 40 of the message, aligned for Word.
#pragma once

#include <memory>
#include <string>

#include "quant/cuda_kernels.cuh"

namespace gradzip::quant::cuda {

template <typename Op, bool kEf>
__global__ void __launch_bounds__(kBlockThreads)
    elementwise_encode_kernel(const float* __restrict__ d_grad, float* __restrict__ d_residual, std::size_t n,
                              std::uint8_t* __restrict__ d_out, MessagePrefix prefix,
                              std::uint64_t* d_message_bytes, std::uint64_t message_bytes) {
  using Word = typename Op::Word;
  if (blockIdx.x == 0) {
    write_prefix(d_out, prefix);
    if (threadIdx.x == 0 && d_message_bytes != nullptr) *d_message_bytes = message_bytes;
  }
  Word* payload = reinterpret_cast<Word*>(d_out + prefix.bytes);
  bool bad = false;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float x = d_grad[i];
    if constexpr (kEf) x = x + d_residual[i];  // Memory "ef" compensate: p = g + e
    const Word w = Op::encode(x);
    payload[i] = w;
    if (!is_finite_f(x)) {
      bad = true;  // residual of this element left untouched (see CudaCodec::encode)
    } else if constexpr (kEf) {
      d_residual[i] = x - Op::decode(w);  // Memory "ef" update: e = p - C(p)
    }
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) report_device_error(d_out, Errc::kNonFiniteInput);
}

template <typename Op, bool kAccumulate>
__global__ void __launch_bounds__(kBlockThreads)
    elementwise_decode_kernel(const std::uint8_t* __restrict__ d_msg, std::size_t n, float* __restrict__ d_out,
                              float scale) {
  using Word = typename Op::Word;
  const Word* payload = reinterpret_cast<const Word*>(d_msg + kHeaderBytes);
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = Op::decode(payload[i]);
    if constexpr (kAccumulate) {
      d_out[i] += scale * v;  // same two roundings as quant::emit<true> (no FMA: --fmad=false)
    } else {
      d_out[i] = v;
    }
  }
}

/// The CudaCodec of an element-wise Op.
template <typename Op>
class ElementwiseCudaCodec final : public CudaCodec {
 public:
  CodecId id() const override { return Op::kId; }
  std::string spec() const override { return Op::name(); }
  std::size_t max_encoded_bytes(std::size_t n) const override { return kHeaderBytes + sizeof(typename Op::Word) * n; }

  Status encode(const float* d_grad, float* d_residual, std::size_t n, const SeedContext& ctx, std::uint8_t* d_out,
                std::size_t out_capacity, std::uint64_t* d_message_bytes, void* d_workspace,
                std::size_t* workspace_bytes, cudaStream_t stream) const override {
    bool query = false;
    // Element-wise codecs need no scratch; a non-null workspace is still required for
    // the run phase so every codec is driven the same way.
    GZ_RETURN_IF_ERROR(check_encode_args(d_grad, d_residual, n, ctx, d_out, out_capacity, d_workspace,
                                         workspace_bytes, 0, &query));
    if (query) return Status::Ok();
    const std::uint64_t payload = sizeof(typename Op::Word) * static_cast<std::uint64_t>(n);
    MessagePrefix prefix;
    GZ_RETURN_IF_ERROR(make_prefix(Op::kId, 0, n, nullptr, 0, payload, &prefix));
    GZ_RETURN_IF_ERROR(clear_device_status(d_out, stream));
    const unsigned blocks = grid_for(n, 4);
    if (d_residual != nullptr) {
      elementwise_encode_kernel<Op, true><<<blocks, kBlockThreads, 0, stream>>>(d_grad, d_residual, n, d_out, prefix,
                                                                                d_message_bytes, kHeaderBytes + payload);
    } else {
      elementwise_encode_kernel<Op, false><<<blocks, kBlockThreads, 0, stream>>>(d_grad, nullptr, n, d_out, prefix,
                                                                                 d_message_bytes, kHeaderBytes + payload);
    }
    GZ_CUDA_CHECK_LAUNCH();
    return Status::Ok();
  }

 protected:
  Status decode_payload(const MessageView* m, const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                        bool accumulate, cudaStream_t stream) const override {
    if (m != nullptr) {
      GZ_RETURN_IF_ERROR(Op::check_message(*m));  // the CPU twin's checks (quant/codecs/elementwise.h)
    }
    if (n == 0) return Status::Ok();
    const unsigned blocks = grid_for(n, 4);
    if (accumulate) {
      elementwise_decode_kernel<Op, true><<<blocks, kBlockThreads, 0, stream>>>(d_msg, n, d_out, scale);
    } else {
      elementwise_decode_kernel<Op, false><<<blocks, kBlockThreads, 0, stream>>>(d_msg, n, d_out, scale);
    }
    GZ_CUDA_CHECK_LAUNCH();
    return Status::Ok();
  }
};

}  // namespace gradzip::quant::cuda
