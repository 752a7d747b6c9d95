// CUDA twin of quant/codecs/scaled_sign.cc (Karimireddy et al. 2019, EF-SignSGD,
// Algorithm 1 line 4): a_b = ||x_b||_1 / m in the canonical warp order, 1 bit per element,
// fused with error feedback (the combination the paper analyses).
#include "quant/codecs/bucketed.h"
#include "quant/cuda_bucketed.cuh"
#include "quant/cuda_registry.h"
#include "quant/half.h"

namespace gradzip::quant::cuda {
namespace {

struct ScaledSignOp {
  static constexpr CodecId kId = CodecId::kScaledSign;
  static constexpr int kScales = 1;
  static constexpr bool kRandom = false;
  unsigned bits = 1;
  std::uint32_t bucket = 512;

  struct Prep {
    std::uint32_t mag_bits;  // bits of a_b; the sign bit is OR-ed in (CPU decoder)
  };

  template <class Load>
  __device__ Errc stats(Load x, std::uint32_t m, float* s) const {
    const float sum = warp_sum(x, m, [](float v) { return fabsf(v); });
    s[0] = sum;
    if (!is_finite_f(sum)) return Errc::kNonFiniteInput;
    const float a = sum / static_cast<float>(m);
    s[0] = a;
    if (a > kCudaMaxScale) return Errc::kNonFiniteInput;
    return Errc::kOk;
  }
  __device__ Prep prepare(const float* s) const { return {float_bits(s[0])}; }
  __device__ std::uint32_t quant(float x, const Prep&, std::uint32_t) const { return x < 0.0f ? 1u : 0u; }
  __device__ float dequant(std::uint32_t field, const Prep& p) const { return bits_float(p.mag_bits | field << 31); }

  static Status from_message(const MessageView& m, ScaledSignOp* op) {
    return bucketed::parse_bucket_only(m, bucketed::kScaledSign, &op->bucket);
  }
};

std::unique_ptr<CudaCodec> make_scaled_sign(const Params& p, const Codec& cpu) {
  ScaledSignOp op;
  op.bucket = bucketed::bucket_from(p);
  return std::make_unique<BucketedCudaCodec<ScaledSignOp>>(op, cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_scaled_sign_entry() {
  static const CudaCodecEntry entry{"scaled-sign", &make_scaled_sign};
  return entry;
}

}  // namespace gradzip::quant::cuda
