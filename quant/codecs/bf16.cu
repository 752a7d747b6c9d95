// CUDA twin of quant/codecs/bf16.cc: bfloat16, round to nearest even on the 16 dropped
// mantissa bits (quant/half.h), overflow saturated to +-0x7F7F. Decode refuses a message
// holding a bf16 Inf/NaN (kNonFiniteScale), checked on the host copy first.
#include "quant/codecs/elementwise.h"
#include "quant/cuda_elementwise.cuh"
#include "quant/cuda_registry.h"
#include "quant/half.h"

namespace gradzip::quant::cuda {
namespace {

struct Bf16Op {
  using Word = std::uint16_t;
  static constexpr CodecId kId = CodecId::kBf16;
  static const char* name() { return elementwise::kBf16.name; }
  __device__ static Word encode(float x) {
    const std::uint16_t h = float_to_bf16(x);
    return (h & 0x7FFFu) == 0x7F80u ? static_cast<std::uint16_t>((h & 0x8000u) | 0x7F7Fu) : h;
  }
  __device__ static float decode(Word w) { return bf16_to_float(w); }
  static Status check_message(const MessageView& m) { return elementwise::check_half_message(m, elementwise::kBf16); }
};

std::unique_ptr<CudaCodec> make_bf16(const Params&, const Codec&) { return std::make_unique<ElementwiseCudaCodec<Bf16Op>>(); }

}  // namespace

const CudaCodecEntry& cuda_bf16_entry() {
  static const CudaCodecEntry entry{"bf16", &make_bf16};
  return entry;
}

}  // namespace gradzip::quant::cuda
