// CUDA twin of quant/codecs/terngrad.cc (Wen et al. 2017, TernGrad, eq. (3)-(4) with
// per-bucket scalers and Sec. 3.3 clipping): s = min(max|g|, c * rms) in fp32, b_i ~
// Bernoulli(|g_i| / s) from the CPU's Philox words, 2-bit fields, fused error feedback.
#include "quant/codecs/terngrad.h"
#include "quant/cuda_bucketed.cuh"
#include "quant/cuda_registry.h"
#include "quant/half.h"

namespace gradzip::quant::cuda {
namespace {

struct TernGradOp {
  static constexpr CodecId kId = CodecId::kTernGrad;
  static constexpr int kScales = 1;
  static constexpr bool kRandom = true;
  unsigned bits = 2;
  std::uint32_t bucket = 512;
  float clip = 0.0f;

  struct Prep {
    float inv;   // 1 / s (encode)
    float step;  // s (decode)
  };

  template <class Load>
  __device__ Errc stats(Load x, std::uint32_t m, float* s) const {
    float mx = warp_max_abs(x, m);
    s[0] = mx;
    if (!is_finite_f(mx) || mx > kCudaMaxScale) return Errc::kNonFiniteInput;
    if (clip > 0.0f) {
      const float sum = warp_sum(x, m, [](float v) { return v * v; });
      if (!is_finite_f(sum)) return Errc::kNonFiniteInput;
      const float limit = clip * sqrtf(sum / static_cast<float>(m));
      mx = limit < mx ? limit : mx;
    }
    s[0] = mx < kCudaMinScale ? 0.0f : mx;
    return Errc::kOk;
  }
  __device__ Prep prepare(const float* s) const { return {s[0] > 0.0f ? 1.0f / s[0] : 0.0f, s[0]}; }
  __device__ std::uint32_t quant(float x, const Prep& p, std::uint32_t rnd) const {
    const std::uint32_t xb = float_bits(x);
    const float prob = bits_float(xb & 0x7FFFFFFFu) * p.inv;
    return (uniform01(rnd) < prob ? 1u : 0u) | ((xb >> 31) << 1);
  }
  __device__ float dequant(std::uint32_t field, const Prep& p) const {
    const float mag = static_cast<float>(field & 1u) * p.step;
    return bits_float(float_bits(mag) | ((field >> 1) << 31));
  }

  static Status from_message(const MessageView& m, TernGradOp* op) {
    terngrad::Settings s;
    GZ_RETURN_IF_ERROR(terngrad::parse_message(m, &s));
    *op = of(s);
    return Status::Ok();
  }
  static TernGradOp of(const terngrad::Settings& s) {
    TernGradOp op;
    op.bucket = s.bucket;
    op.clip = s.clip;
    return op;
  }
};

std::unique_ptr<CudaCodec> make_terngrad(const Params& p, const Codec& cpu) {
  return std::make_unique<BucketedCudaCodec<TernGradOp>>(TernGradOp::of(terngrad::from_params(p)), cpu.spec(),
                                                         cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_terngrad_entry() {
  static const CudaCodecEntry entry{"terngrad", &make_terngrad};
  return entry;
}

}  // namespace gradzip::quant::cuda
