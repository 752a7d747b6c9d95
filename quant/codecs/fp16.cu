// CUDA twin of quant/codecs/fp16.cc: IEEE binary16, round to nearest even (quant/half.h,
// the same bit manipulation on host and device), overflow saturated to +-65504.
// Decode refuses a message holding an fp16 Inf/NaN (kNonFiniteScale), checked on the
// host copy before anything is launched, as the CPU decoder does.
#include "quant/codecs/elementwise.h"
#include "quant/cuda_elementwise.cuh"
#include "quant/cuda_registry.h"
#include "quant/half.h"

namespace gradzip::quant::cuda {
namespace {

struct Fp16Op {
  using Word = std::uint16_t;
  static constexpr CodecId kId = CodecId::kFp16;
  static const char* name() { return elementwise::kFp16.name; }
  __device__ static Word encode(float x) {
    const std::uint16_t h = float_to_fp16(x);
    return (h & 0x7FFFu) == 0x7C00u ? static_cast<std::uint16_t>((h & 0x8000u) | 0x7BFFu) : h;
  }
  __device__ static float decode(Word w) { return fp16_to_float(w); }
  static Status check_message(const MessageView& m) { return elementwise::check_half_message(m, elementwise::kFp16); }
};

std::unique_ptr<CudaCodec> make_fp16(const Params&, const Codec&) { return std::make_unique<ElementwiseCudaCodec<Fp16Op>>(); }

}  // namespace

const CudaCodecEntry& cuda_fp16_entry() {
  static const CudaCodecEntry entry{"fp16", &make_fp16};
  return entry;
}

}  // namespace gradzip::quant::cuda
