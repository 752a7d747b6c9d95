// CUDA twin of quant/codecs/onebit.cc (Seide et al. 2014, 1-bit SGD, Sec. 3): per bucket
// the means of the non-negative and of the negative elements (canonical warp sums and an
// exact integer count), 1 bit per element, fused with error feedback.
#include "quant/codecs/bucketed.h"
#include "quant/cuda_bucketed.cuh"
#include "quant/cuda_registry.h"

namespace gradzip::quant::cuda {
namespace {

struct OneBitOp {
  static constexpr CodecId kId = CodecId::kOneBit;
  static constexpr int kScales = 2;
  static constexpr bool kRandom = false;
  unsigned bits = 1;
  std::uint32_t bucket = 512;

  struct Prep {
    float pos, neg;
  };

  template <class Load>
  __device__ Errc stats(Load x, std::uint32_t m, float* s) const {
    const float sp = warp_sum(x, m, [](float v) { return v < 0.0f ? 0.0f : v; });
    const float sn = warp_sum(x, m, [](float v) { return v < 0.0f ? v : 0.0f; });
    s[0] = sp;
    s[1] = sn;
    if (!is_finite_f(sp) || !is_finite_f(sn)) return Errc::kNonFiniteInput;
    unsigned k_lane = 0;
    for (std::uint32_t j = threadIdx.x & 31; j < m; j += 32) k_lane += x(j) < 0.0f ? 1u : 0u;
    const unsigned k = __reduce_add_sync(0xFFFFFFFFu, k_lane);  // exact integer count
    const float pos = m - k > 0 ? sp / static_cast<float>(m - k) : 0.0f;
    const float neg = k > 0 ? sn / static_cast<float>(k) : 0.0f;
    s[0] = pos;
    s[1] = neg;
    if (pos > kCudaMaxScale || neg < -kCudaMaxScale) return Errc::kNonFiniteInput;
    return Errc::kOk;
  }
  __device__ Prep prepare(const float* s) const { return {s[0], s[1]}; }
  __device__ std::uint32_t quant(float x, const Prep&, std::uint32_t) const { return x < 0.0f ? 1u : 0u; }
  __device__ float dequant(std::uint32_t field, const Prep& p) const { return field ? p.neg : p.pos; }

  static Status from_message(const MessageView& m, OneBitOp* op) {
    return bucketed::parse_bucket_only(m, bucketed::kOneBit, &op->bucket);
  }
};

std::unique_ptr<CudaCodec> make_onebit(const Params& p, const Codec& cpu) {
  OneBitOp op;
  op.bucket = bucketed::bucket_from(p);
  return std::make_unique<BucketedCudaCodec<OneBitOp>>(op, cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_onebit_entry() {
  static const CudaCodecEntry entry{"onebit", &make_onebit};
  return entry;
}

}  // namespace gradzip::quant::cuda
