// CUDA twin of quant/memory/none.cc: no error feedback. encode_with_memory sends the
// gradient straight to the codec (passthrough); compensate is a device copy.
#include "quant/cuda.h"
#include "quant/cuda_registry.h"

namespace gradzip::quant::cuda {
namespace {

class CudaNoneMemory final : public CudaMemory {
 public:
  std::string spec() const override { return "none"; }
  bool needs_decoded() const override { return false; }
  bool passthrough() const override { return true; }

  Status compensate(const float* d_grad, float* d_compensated, std::size_t n, CudaMemoryState*,
                    cudaStream_t stream) const override {
    if (n != 0 && d_compensated != d_grad) {
      GZ_CUDA_CHECK(cudaMemcpyAsync(d_compensated, d_grad, 4 * n, cudaMemcpyDeviceToDevice, stream));
    }
    return Status::Ok();
  }
  Status update(const float*, const float*, std::size_t, CudaMemoryState* state, cudaStream_t) const override {
    if (state != nullptr) ++state->steps;
    return Status::Ok();
  }
};

std::unique_ptr<CudaMemory> make_none(const Params&) { return std::make_unique<CudaNoneMemory>(); }

}  // namespace

const CudaMemoryEntry& cuda_none_memory_entry() {
  static const CudaMemoryEntry entry{"none", &make_none};
  return entry;
}

}  // namespace gradzip::quant::cuda
