// CUDA twin of quant/codecs/qsgd.cc (Alistarh et al. 2017, QSGD, Sec. 3.1 eq. (1)):
// per-bucket l2 (canonical warp order) or max norm, stochastic rounding to 2^(bits-1)-1
// levels with the CPU's Philox words, sign + level packed LSB-first, fused with error
// feedback (quant/cuda_bucketed.cuh). `bits` is a runtime value (2..8) rather than a
// template parameter to keep nvcc time low; packing cost is the same.
#include "quant/codecs/bucketed.h"
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
    if (m.params_bytes != 8) return Status(Errc::kBadParams, "qsgd params block must be 8 bytes");
    const unsigned bits = m.params[0];
    const std::uint8_t norm = m.params[1];
    const std::uint32_t bucket = load_le<std::uint32_t>(m.params + 4);
    if (bits < 2 || bits > 8) return Status(Errc::kBadParams, "qsgd bits=" + std::to_string(bits) + " outside 2..8");
    if (norm > 1) return Status(Errc::kBadParams, "qsgd norm id " + std::to_string(norm) + " is not 0 (l2) or 1 (max)");
    if (load_le<std::uint16_t>(m.params + 2) != 0) return Status(Errc::kBadParams, "qsgd reserved params are not 0");
    GZ_RETURN_IF_ERROR(bucketed::check_common(m, 8, bucket, 1, bits));
    GZ_RETURN_IF_ERROR(bucketed::check_scales(m.payload, bucketed::num_buckets(m.numel, bucket), 1,
                                              [](std::size_t) { return true; }));
    op->bits = bits;
    op->l2 = norm == 0;
    op->bucket = bucket;
    return Status::Ok();
  }
};

std::unique_ptr<CudaCodec> make_qsgd(const Params& p, const Codec& cpu) {
  QsgdOp op;
  op.bits = static_cast<unsigned>(p.get_int("bits"));
  op.bucket = static_cast<std::uint32_t>(p.get_int("bucket"));
  op.l2 = p.get_enum("norm") != "max";
  return std::make_unique<BucketedCudaCodec<QsgdOp>>(op, cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_qsgd_entry() {
  static const CudaCodecEntry entry{"qsgd", &make_qsgd};
  return entry;
}

}  // namespace gradzip::quant::cuda
