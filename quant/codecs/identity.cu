// CUDA twin of quant/codecs/identity.cc: fp32 values as they are. With fused error
// feedback the residual becomes x - x = 0 for every finite element, as on the CPU.
#include "quant/codecs/elementwise.h"
#include "quant/cuda_elementwise.cuh"
#include "quant/cuda_registry.h"

namespace gradzip::quant::cuda {
namespace {

struct IdentityOp {
  using Word = float;
  static constexpr CodecId kId = CodecId::kIdentity;
  static const char* name() { return "identity"; }
  __device__ static Word encode(float x) { return x; }
  __device__ static float decode(Word w) { return w; }
  static Status check_message(const MessageView& m) { return elementwise::check_message(m, name(), 4); }
};

std::unique_ptr<CudaCodec> make_identity(const Params&, const Codec&) { return std::make_unique<ElementwiseCudaCodec<IdentityOp>>(); }

}  // namespace

const CudaCodecEntry& cuda_identity_entry() {
  static const CudaCodecEntry entry{"identity", &make_identity};
  return entry;
}

}  // namespace gradzip::quant::cuda
