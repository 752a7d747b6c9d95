// CUDA twin of quant/memory/ef.cc (residual error feedback; Seide et al. 2014,
// Karimireddy et al. 2019). The hot path never runs these kernels: CudaCodec::encode
// fuses "p = g + e; e = p - C(p)" into the codec's own pass (fusable_residual). The
// stand-alone compensate/update below serve the unfused path and tests, and perform the
// same single fp32 operation per element as the CPU loops, so results are bit-identical.
// A scale s != 1 (quant/memory/ef.cc: x = s (g + e), e' = x / s - C(x)) is not fused: the
// scaled kernels below run around the codec's plain encode (encode_with_memory's general
// path), with the CPU's operations in the CPU's order.
#include <cmath>

#include "quant/cuda_kernels.cuh"
#include "quant/cuda_registry.h"
#include "quant/memory/memories.h"

namespace gradzip::quant::cuda {
namespace {

// out[i] = a[i] + b[i] (compensate) or a[i] - b[i] (update).
template <bool kSubtract>
__global__ void __launch_bounds__(kBlockThreads)
    ef_combine_kernel(const float* a, const float* b, float* out, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = kSubtract ? a[i] - b[i] : a[i] + b[i];
  }
}

// out[i] = (a[i] + b[i]) * s (compensate) or a[i] / s - b[i] (update).
template <bool kUpdate>
__global__ void __launch_bounds__(kBlockThreads)
    ef_scaled_kernel(const float* a, const float* b, float* out, std::size_t n, float s) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = kUpdate ? a[i] / s - b[i] : (a[i] + b[i]) * s;
  }
}

class CudaEfMemory final : public CudaMemory {
 public:
  CudaEfMemory(float scale, bool spelled) : scale_(scale), spelled_(spelled) {}
  std::string spec() const override { return spelled_ ? "ef:scale=" + ef_scale_text(scale_) : "ef"; }
  bool needs_residual() const override { return true; }
  bool fusable_residual() const override { return scale_ == 1.0f; }

  // d_compensated may alias d_grad: each thread reads element i before writing it.
  Status compensate(const float* d_grad, float* d_compensated, std::size_t n, CudaMemoryState* state,
                    cudaStream_t stream) const override {
    if (state == nullptr || (n != 0 && (state->d_residual == nullptr || d_grad == nullptr || d_compensated == nullptr))) {
      return Status(Errc::kInvalidArgument, "ef: null pointer (state->d_residual must hold n floats)");
    }
    if (n == 0) return Status::Ok();
    if (scale_ == 1.0f) {
      ef_combine_kernel<false><<<grid_for(n, 4), kBlockThreads, 0, stream>>>(d_grad, state->d_residual, d_compensated, n);
    } else {
      ef_scaled_kernel<false><<<grid_for(n, 4), kBlockThreads, 0, stream>>>(d_grad, state->d_residual, d_compensated,
                                                                            n, scale_);
    }
    GZ_CUDA_CHECK_LAUNCH();
    return Status::Ok();
  }

  Status update(const float* d_compensated, const float* d_decoded, std::size_t n, CudaMemoryState* state,
                cudaStream_t stream) const override {
    if (state == nullptr || (n != 0 && (state->d_residual == nullptr || d_compensated == nullptr || d_decoded == nullptr))) {
      return Status(Errc::kInvalidArgument, "ef: null pointer (state->d_residual must hold n floats)");
    }
    if (n != 0) {
      if (scale_ == 1.0f) {
        ef_combine_kernel<true><<<grid_for(n, 4), kBlockThreads, 0, stream>>>(d_compensated, d_decoded,
                                                                              state->d_residual, n);
      } else {
        ef_scaled_kernel<true><<<grid_for(n, 4), kBlockThreads, 0, stream>>>(d_compensated, d_decoded,
                                                                             state->d_residual, n, scale_);
      }
      GZ_CUDA_CHECK_LAUNCH();
    }
    ++state->steps;
    return Status::Ok();
  }

 private:
  float scale_;
  bool spelled_;
};

// Same reading of the params as the CPU make_ef: "auto" without a codec is 1, unspelled.
std::unique_ptr<CudaMemory> make_ef(const Params& p) {
  const double s = p.get_float("scale");
  if (std::isnan(s)) return std::make_unique<CudaEfMemory>(1.0f, false);
  return std::make_unique<CudaEfMemory>(static_cast<float>(s), true);
}

}  // namespace

const CudaMemoryEntry& cuda_ef_memory_entry() {
  static const CudaMemoryEntry entry{"ef", &make_ef};
  return entry;
}

}  // namespace gradzip::quant::cuda
