// CUDA twin of quant/codecs/natural.cc (Horvath et al. 2019, natural compression, eq. (2)):
// exact integer stochastic rounding of each fp32 to a power of two,
//   code_i = min(e_i + (U_i < f_i), 254),  U_i = R_i >> 9 (CPU Philox word),
// one exponent byte per element then LSB-first sign bits. One thread per group of 8
// elements: 8 exponent bytes (one 64-bit store) + 1 sign byte; fused error feedback.
#include "quant/bitpack.h"
#include "quant/codecs/natural.h"
#include "quant/cuda_kernels.cuh"
#include "quant/cuda_registry.h"
#include "quant/half.h"

namespace gradzip::quant::cuda {
namespace {

template <bool kEf>
__global__ void __launch_bounds__(kBlockThreads)
    natural_encode_kernel(const float* __restrict__ d_grad, float* __restrict__ d_residual, std::size_t n,
                          std::uint8_t* __restrict__ d_out, MessagePrefix prefix, SeedContext ctx,
                          std::uint64_t* d_message_bytes, std::uint64_t message_bytes) {
  if (blockIdx.x == 0) {
    write_prefix(d_out, prefix);
    if (threadIdx.x == 0 && d_message_bytes != nullptr) *d_message_bytes = message_bytes;
  }
  std::uint8_t* exps = d_out + prefix.bytes;
  std::uint8_t* signs = exps + n;
  const std::size_t groups = (n + 7) / 8;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  bool bad = false;
  for (std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < groups; t += stride) {
    const std::size_t i0 = 8 * t;
    const unsigned cnt = n - i0 < 8 ? static_cast<unsigned>(n - i0) : 8u;
    const Philox4x32 lo = random_block(ctx, RandomStream::kRounding, i0 / 4);
    const Philox4x32 hi = cnt > 4 ? random_block(ctx, RandomStream::kRounding, i0 / 4 + 1) : Philox4x32{};
    std::uint64_t codes = 0;
    std::uint32_t sign_byte = 0;
    for (unsigned j = 0; j < cnt; ++j) {
      float x = d_grad[i0 + j];
      if constexpr (kEf) x = x + d_residual[i0 + j];  // Memory "ef" compensate
      const std::uint32_t u = float_bits(x);
      const std::uint32_t e = (u >> 23) & 0xFFu;
      const std::uint32_t r = j < 4 ? lo.v[j] : hi.v[j - 4];
      std::uint32_t code = e + ((r >> 9) < (u & 0x7FFFFFu) ? 1u : 0u);
      code = code < 254u ? code : 254u;
      codes |= static_cast<std::uint64_t>(code) << (8 * j);
      sign_byte |= (u >> 31) << j;
      if (e == 0xFFu) {
        bad = true;  // NaN/Inf: residual left untouched
      } else if constexpr (kEf) {
        d_residual[i0 + j] = x - bits_float((u >> 31) << 31 | code << 23);  // e' = p - C(p)
      }
    }
    if (cnt == 8) {
      *reinterpret_cast<std::uint64_t*>(exps + i0) = codes;  // exps + i0 is 8-aligned (40 + 8t)
    } else {
      for (unsigned j = 0; j < cnt; ++j) exps[i0 + j] = static_cast<std::uint8_t>(codes >> (8 * j));
    }
    signs[t] = static_cast<std::uint8_t>(sign_byte);
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) report_device_error(d_out, Errc::kNonFiniteInput);
}

template <bool kAccumulate>
__global__ void __launch_bounds__(kBlockThreads)
    natural_decode_kernel(const std::uint8_t* __restrict__ d_payload, std::size_t n, float* __restrict__ d_out,
                          float scale) {
  const std::uint8_t* exps = d_payload;
  const std::uint8_t* signs = d_payload + n;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const std::uint32_t sign = (signs[i / 8] >> (i % 8)) & 1u;
    const float v = bits_float(sign << 31 | static_cast<std::uint32_t>(exps[i]) << 23);
    if constexpr (kAccumulate) {
      d_out[i] += scale * v;
    } else {
      d_out[i] = v;
    }
  }
}

class NaturalCudaCodec final : public CudaCodec {
 public:
  CodecId id() const override { return CodecId::kNatural; }
  std::string spec() const override { return "natural"; }
  std::size_t max_encoded_bytes(std::size_t n) const override { return kHeaderBytes + n + packed_bytes(n, 1); }

  Status encode(const float* d_grad, float* d_residual, std::size_t n, const SeedContext& ctx, std::uint8_t* d_out,
                std::size_t out_capacity, std::uint64_t* d_message_bytes, void* d_workspace,
                std::size_t* workspace_bytes, cudaStream_t stream) const override {
    bool query = false;
    GZ_RETURN_IF_ERROR(check_encode_args(d_grad, d_residual, n, ctx, d_out, out_capacity, d_workspace,
                                         workspace_bytes, 0, &query));
    if (query) return Status::Ok();
    const std::uint64_t payload = n + packed_bytes(n, 1);
    MessagePrefix prefix;
    GZ_RETURN_IF_ERROR(make_prefix(CodecId::kNatural, 0, n, nullptr, 0, payload, &prefix));
    GZ_RETURN_IF_ERROR(clear_device_status(d_out, stream));
    const unsigned blocks = grid_for((n + 7) / 8, 1);
    if (d_residual != nullptr) {
      natural_encode_kernel<true><<<blocks, kBlockThreads, 0, stream>>>(d_grad, d_residual, n, d_out, prefix, ctx,
                                                                        d_message_bytes, kHeaderBytes + payload);
    } else {
      natural_encode_kernel<false><<<blocks, kBlockThreads, 0, stream>>>(d_grad, nullptr, n, d_out, prefix, ctx,
                                                                         d_message_bytes, kHeaderBytes + payload);
    }
    GZ_CUDA_CHECK_LAUNCH();
    return Status::Ok();
  }

 protected:
  Status decode_payload(const MessageView* m, const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                        bool accumulate, cudaStream_t stream) const override {
    if (m != nullptr) {
      GZ_RETURN_IF_ERROR(natural::check_message(*m));
    }
    if (n == 0) return Status::Ok();
    const unsigned blocks = grid_for(n, 4);
    if (accumulate) {
      natural_decode_kernel<true><<<blocks, kBlockThreads, 0, stream>>>(d_msg + kHeaderBytes, n, d_out, scale);
    } else {
      natural_decode_kernel<false><<<blocks, kBlockThreads, 0, stream>>>(d_msg + kHeaderBytes, n, d_out, scale);
    }
    GZ_CUDA_CHECK_LAUNCH();
    return Status::Ok();
  }
};

std::unique_ptr<CudaCodec> make_natural(const Params&, const Codec&) { return std::make_unique<NaturalCudaCodec>(); }

}  // namespace

const CudaCodecEntry& cuda_natural_entry() {
  static const CudaCodecEntry entry{"natural", &make_natural};
  return entry;
}

}  // namespace gradzip::quant::cuda
