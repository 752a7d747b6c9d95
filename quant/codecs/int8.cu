// CUDA twin of quant/codecs/int8.cc (Dettmers 2016): per-bucket max|x| scale, round to
// nearest even with the CPU's magic-number trick, fused with error feedback
// (quant/cuda_bucketed.cuh). Same payload bytes as the CPU codec.
#include "quant/codecs/bucketed.h"
#include "quant/cuda_bucketed.cuh"
#include "quant/cuda_registry.h"

namespace gradzip::quant::cuda {
namespace {

struct Int8Op {
  static constexpr CodecId kId = CodecId::kInt8;
  static constexpr int kScales = 1;
  static constexpr bool kRandom = false;
  unsigned bits = 8;
  std::uint32_t bucket = 512;

  struct Prep {
    float inv;   // 127 / m, used by encode
    float step;  // m / 127, used by decode (the CPU decoder's value)
  };

  template <class Load>
  __device__ Errc stats(Load x, std::uint32_t m, float* s) const {
    const float mx = warp_max_abs(x, m);
    s[0] = mx;
    if (!is_finite_f(mx) || mx > kCudaMaxScale) return Errc::kNonFiniteInput;
    s[0] = mx < kCudaMinScale ? 0.0f : mx;
    return Errc::kOk;
  }
  __device__ Prep prepare(const float* s) const { return {s[0] > 0.0f ? 127.0f / s[0] : 0.0f, s[0] / 127.0f}; }
  __device__ std::uint32_t quant(float x, const Prep& p, std::uint32_t) const {
    constexpr float kMagic = 0x1.8p23f;  // (y + 1.5*2^23) - 1.5*2^23 rounds to nearest even
    float q = (x * p.inv + kMagic) - kMagic;
    q = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
    return static_cast<std::uint8_t>(static_cast<std::int8_t>(q));
  }
  __device__ float dequant(std::uint32_t field, const Prep& p) const {
    return static_cast<float>(static_cast<std::int8_t>(static_cast<std::uint8_t>(field))) * p.step;
  }

  static Status from_message(const MessageView& m, Int8Op* op) {
    return bucketed::parse_bucket_only(m, bucketed::kInt8, &op->bucket);
  }
};

std::unique_ptr<CudaCodec> make_int8(const Params& p, const Codec& cpu) {
  Int8Op op;
  op.bucket = bucketed::bucket_from(p);
  return std::make_unique<BucketedCudaCodec<Int8Op>>(op, cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_int8_entry() {
  static const CudaCodecEntry entry{"int8", &make_int8};
  return entry;
}

}  // namespace gradzip::quant::cuda
