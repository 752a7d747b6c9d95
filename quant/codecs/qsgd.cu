// CUDA twin of quant/codecs/qsgd.cc (Alistarh et al. 2017, QSGD, Sec. 3.1 eq. (1)):
// per-bucket l2 (canonical warp order) or max norm, stochastic rounding to 2^(bits-1)-1
// levels with the CPU's Philox words, sign + level packed LSB-first, fused with error
// feedback (quant/cuda_bucketed.cuh). `bits` is a runtime value (2..8) rather than a
// template parameter to keep nvcc time low; packing cost is the same.
#include "quant/codecs/qsgd.h"
#include "quant/cuda_bucketed.cuh"
#include "quant/cuda_registry.h"
#include "quant/half.h"

namespace gradzip::quant::cuda {
namespace {

struct QsgdOp {
  static constexpr CodecId kId = CodecId::kQsgd;
  static constexpr int kScales = 1;
  static constexpr bool kRandom = true;
  unsigned bits = 4;
  std::uint32_t bucket = 512;
  bool l2 = true;

  struct Prep {
    float inv;   // s / w (encode)
    float step;  // w / s (decode)
  };

  __device__ float levels() const { return static_cast<float>((1u << (bits - 1)) - 1u); }

  template <class Load>
  __device__ Errc stats(Load x, std::uint32_t m, float* s) const {
    float w;
    if (l2) {
      const float sum = warp_sum(x, m, [](float v) { return v * v; });
      s[0] = sum;
      if (!is_finite_f(sum)) return Errc::kNonFiniteInput;
      w = sqrtf(sum);  // IEEE sqrt (nvcc default -prec-sqrt=true), as std::sqrt on the CPU
    } else {
      w = warp_max_abs(x, m);
      s[0] = w;
      if (!is_finite_f(w) || w > kCudaMaxScale) return Errc::kNonFiniteInput;
    }
    s[0] = w < kCudaMinScale ? 0.0f : w;
    return Errc::kOk;
  }
  __device__ Prep prepare(const float* s) const {
    const float lv = levels();
    return {s[0] > 0.0f ? lv / s[0] : 0.0f, s[0] / lv};
  }
  __device__ std::uint32_t quant(float x, const Prep& p, std::uint32_t rnd) const {
    const float lv = levels();
    const std::uint32_t xb = float_bits(x);
    float r = bits_float(xb & 0x7FFFFFFFu) * p.inv;
    r = r < lv ? r : lv;
    const float l = floorf(r);
    const float frac = r - l;
    const std::uint32_t level = static_cast<std::uint32_t>(l) + (uniform01(rnd) < frac ? 1u : 0u);
    return level | ((xb >> 31) << (bits - 1));
  }
  __device__ float dequant(std::uint32_t field, const Prep& p) const {
    const std::uint32_t level_mask = (1u << (bits - 1)) - 1u;
    const float mag = static_cast<float>(field & level_mask) * p.step;
    return bits_float(float_bits(mag) | ((field >> (bits - 1)) << 31));
  }

  static Status from_message(const MessageView& m, QsgdOp* op) {
    qsgd::Settings s;
    GZ_RETURN_IF_ERROR(qsgd::parse_message(m, &s));
    *op = of(s);
    return Status::Ok();
  }
  static QsgdOp of(const qsgd::Settings& s) {
    QsgdOp op;
    op.bits = s.bits;
    op.bucket = s.bucket;
    op.l2 = s.norm == qsgd::Norm::kL2;
    return op;
  }
};

std::unique_ptr<CudaCodec> make_qsgd(const Params& p, const Codec& cpu) {
  return std::make_unique<BucketedCudaCodec<QsgdOp>>(QsgdOp::of(qsgd::from_params(p)), cpu.spec(),
                                                     cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_qsgd_entry() {
  static const CudaCodecEntry entry{"qsgd", &make_qsgd};
  return entry;
}

}  // namespace gradzip::quant::cuda
