// CUDA twin of quant/memory/dgc.cc (Lin et al. 2018, Deep Gradient Compression, §3:
// momentum correction u = m u + g, v = v + u; local gradient clipping; momentum factor
// masking u = 0 where a value was sent). Element-wise kernels with the CPU's fp32
// operations in the CPU's order (--fmad=false keeps m*u + g two roundings).
//
// Clipping uses the L2 norm of the whole bucket in the blocked order of quant/reduce.h
// (blocked_sum_sq), so the factor is bit-identical to the CPU's: one 256-thread block per
// part of the bucket (up to kBlockedMaxParts parts, so the whole GPU streams the bucket),
// each part's lane-strided sums combined by the 256-lane butterfly, then one block adds
// the part sums in the fixed pairwise tree and computes the factor. Runs only when
// clip > 0. d_scratch: [0] the factor, [4, 4 + kBlockedMaxParts) the part sums.
#include "quant/cuda_kernels.cuh"
#include "quant/cuda_registry.h"

namespace gradzip::quant::cuda {
namespace {

constexpr std::size_t kPartsOffset = 4;  // floats: the part sums start 16 bytes in
static_assert(kMemoryScratchBytes >= 4 * (kPartsOffset + kBlockedMaxParts), "d_scratch holds the part sums");
constexpr int kTreeThreads = 1024;
static_assert(2 * kTreeThreads >= static_cast<int>(kBlockedMaxParts), "one tree step covers every part");

/// Step 2 of the blocked order: block b sums parts b, b + gridDim.x, ... of g*g.
__global__ void __launch_bounds__(kBlockedLanes)
    dgc_part_sums_kernel(const float* g, std::size_t n, std::size_t len, std::size_t m, float* parts) {
  __shared__ float lanes[kBlockedLanes];
  const unsigned l = threadIdx.x;
  for (std::size_t p = blockIdx.x; p < m; p += gridDim.x) {
    const float* x = g + p * len;
    const std::size_t cnt = n - p * len < len ? n - p * len : len;
    float acc = 0.0f;
    for (std::size_t i = l; i < cnt; i += kBlockedLanes) acc += x[i] * x[i];  // in increasing order, no FMA
    // Butterfly 128, 64, 32 through shared memory, then 16 .. 1 inside the warp; each step
    // is partial[l] + partial[l ^ offset], as detail::butterfly_sum<256>.
    for (unsigned offset = kBlockedLanes / 2; offset >= 32; offset /= 2) {
      lanes[l] = acc;
      __syncthreads();
      const float other = lanes[l ^ offset];
      __syncthreads();
      acc = acc + other;
    }
    acc = warp_canonical_sum(acc);
    if (l == 0) parts[p] = acc;
  }
}

/// Step 3 and the factor: clip / ||g|| when ||g|| > clip, else 1 (dgc.cc compensate).
__global__ void __launch_bounds__(kTreeThreads)
    dgc_clip_factor_kernel(const float* parts, std::size_t m, float clip, float* d_factor) {
  __shared__ float s[kBlockedMaxParts];
  for (std::size_t i = threadIdx.x; i < m; i += blockDim.x) s[i] = parts[i];
  __syncthreads();
  for (std::size_t w = 1; w < m; w *= 2) {
    const std::size_t i = static_cast<std::size_t>(threadIdx.x) * 2 * w;
    if (i + w < m) s[i] = s[i] + s[i + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const float norm = sqrtf(m == 0 ? 0.0f : s[0]);
    *d_factor = norm > clip ? clip / norm : 1.0f;
  }
}

__global__ void __launch_bounds__(kBlockThreads)
    dgc_compensate_kernel(const float* grad, float* comp, float* u, float* v, std::size_t n, float m,
                          const float* d_factor) {
  const float factor = d_factor != nullptr ? *d_factor : 1.0f;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = factor != 1.0f ? grad[i] * factor : grad[i];
    const float ui = m * u[i] + g;
    const float vi = v[i] + ui;
    u[i] = ui;
    v[i] = vi;
    comp[i] = vi;  // may alias grad: grad[i] was read above
  }
}

__global__ void __launch_bounds__(kBlockThreads)
    dgc_update_kernel(const float* comp, const float* dec, float* u, float* v, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float d = dec[i];
    v[i] = comp[i] - d;
    u[i] = d != 0.0f ? 0.0f : u[i];  // momentum factor masking (Lin 2018 §3.2)
  }
}

class CudaDgcMemory final : public CudaMemory {
 public:
  CudaDgcMemory(float momentum, float clip, std::string spec) : momentum_(momentum), clip_(clip), spec_(std::move(spec)) {}
  std::string spec() const override { return spec_; }
  bool needs_residual() const override { return true; }
  bool needs_momentum() const override { return true; }
  bool needs_scratch() const override { return clip_ > 0.0f; }

  Status compensate(const float* d_grad, float* d_compensated, std::size_t n, CudaMemoryState* state,
                    cudaStream_t stream) const override {
    GZ_RETURN_IF_ERROR(check(state, n));
    if (n != 0 && (d_grad == nullptr || d_compensated == nullptr)) return Status(Errc::kInvalidArgument, "dgc: null pointer");
    if (n == 0) return Status::Ok();
    const float* d_factor = nullptr;
    if (clip_ > 0.0f) {
      const std::size_t m = blocked_parts(n);
      float* d_parts = state->d_scratch + kPartsOffset;
      dgc_part_sums_kernel<<<static_cast<unsigned>(m), kBlockedLanes, 0, stream>>>(d_grad, n, blocked_part_length(n),
                                                                                  m, d_parts);
      GZ_CUDA_CHECK_LAUNCH();
      dgc_clip_factor_kernel<<<1, kTreeThreads, 0, stream>>>(d_parts, m, clip_, state->d_scratch);
      GZ_CUDA_CHECK_LAUNCH();
      d_factor = state->d_scratch;
    }
    dgc_compensate_kernel<<<grid_for(n, 4), kBlockThreads, 0, stream>>>(d_grad, d_compensated, state->d_momentum,
                                                                        state->d_residual, n, momentum_, d_factor);
    GZ_CUDA_CHECK_LAUNCH();
    return Status::Ok();
  }

  Status update(const float* d_compensated, const float* d_decoded, std::size_t n, CudaMemoryState* state,
                cudaStream_t stream) const override {
    GZ_RETURN_IF_ERROR(check(state, n));
    if (n != 0) {
      if (d_compensated == nullptr || d_decoded == nullptr) return Status(Errc::kInvalidArgument, "dgc: null pointer");
      dgc_update_kernel<<<grid_for(n, 4), kBlockThreads, 0, stream>>>(d_compensated, d_decoded, state->d_momentum,
                                                                      state->d_residual, n);
      GZ_CUDA_CHECK_LAUNCH();
    }
    ++state->steps;
    return Status::Ok();
  }

 private:
  Status check(const CudaMemoryState* state, std::size_t n) const {
    if (state == nullptr) return Status(Errc::kInvalidArgument, "dgc: null state");
    if (n != 0 && (state->d_residual == nullptr || state->d_momentum == nullptr)) {
      return Status(Errc::kInvalidArgument, "dgc: state->d_residual and d_momentum must hold n floats");
    }
    if (needs_scratch() && state->d_scratch == nullptr) {
      return Status(Errc::kInvalidArgument, "dgc: clip > 0 needs state->d_scratch (kMemoryScratchBytes)");
    }
    return Status::Ok();
  }

  float momentum_;
  float clip_;
  std::string spec_;
};

std::unique_ptr<CudaMemory> make_dgc(const Params& p) {
  return std::make_unique<CudaDgcMemory>(static_cast<float>(p.get_float("momentum")),
                                         static_cast<float>(p.get_float("clip")), "dgc:" + p.canonical());
}

}  // namespace

const CudaMemoryEntry& cuda_dgc_memory_entry() {
  static const CudaMemoryEntry entry{"dgc", &make_dgc};
  return entry;
}

}  // namespace gradzip::quant::cuda
