// CUDA twin of quant/codecs/sign.cc (Bernstein et al. 2018, signSGD, Algorithm 1):
// 1 bit per element (1 iff x < 0), no scale, decoded as +-1; with the "ef" memory the
// residual is x - (+-1). Runs through the bucketed group kernel with zero scales.
#include "quant/bitpack.h"
#include "quant/codecs/sign.h"
#include "quant/cuda_bucketed.cuh"
#include "quant/cuda_registry.h"
#include "quant/half.h"

namespace gradzip::quant::cuda {
namespace {

struct SignOp {
  static constexpr CodecId kId = CodecId::kSign;
  static constexpr int kScales = 0;
  static constexpr bool kRandom = false;
  unsigned bits = 1;
  std::uint32_t bucket = 0;  // no buckets

  struct Prep {};

  template <class Load>
  __device__ Errc stats(Load, std::uint32_t, float*) const { return Errc::kOk; }
  __device__ Prep prepare(const float*) const { return {}; }
  __device__ std::uint32_t quant(float x, const Prep&, std::uint32_t) const { return x < 0.0f ? 1u : 0u; }
  __device__ float dequant(std::uint32_t field, const Prep&) const { return bits_float(0x3F800000u | field << 31); }

  static Status from_message(const MessageView& m, SignOp*) { return sign::check_message(m); }
};

std::unique_ptr<CudaCodec> make_sign(const Params&, const Codec& cpu) {
  return std::make_unique<BucketedCudaCodec<SignOp>>(SignOp{}, cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_sign_entry() {
  static const CudaCodecEntry entry{"sign", &make_sign};
  return entry;
}

}  // namespace gradzip::quant::cuda
