// Helpers of the GPU twin tests: RAII device buffers, a skip guard that names why no GPU
// is usable, and randomized gradients with mixed magnitudes and signed zeros.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/cuda.h"

namespace gradzip::quant::cuda::testing {

/// Guards a test that needs a CUDA device. No device (see DeviceProbe): GTEST_SKIP()s with
/// the reason, or fails when GRADZIP_REQUIRE_GPU=1. A CUDA runtime/driver error always fails.
#define GZ_REQUIRE_GPU()                                                                         \
  do {                                                                                           \
    std::string gz_why_;                                                                         \
    const auto gz_probe_ = ::gradzip::quant::cuda::probe_device(&gz_why_);                       \
    if (gz_probe_ == ::gradzip::quant::cuda::DeviceProbe::kError) {                              \
      FAIL() << "CUDA device probe failed: " << gz_why_;                                         \
    }                                                                                            \
    if (gz_probe_ == ::gradzip::quant::cuda::DeviceProbe::kNoDevice) {                           \
      if (::gradzip::quant::cuda::gpu_required()) {                                              \
        FAIL() << "GRADZIP_REQUIRE_GPU=1 but no CUDA device: " << gz_why_;                       \
      }                                                                                          \
      GTEST_SKIP() << "needs a CUDA device: " << gz_why_;                                        \
    }                                                                                            \
  } while (0)

#define GZ_CUDA_OK(call) ASSERT_EQ(cudaSuccess, (call)) << #call << ": " << cudaGetErrorString(cudaGetLastError())

/// Owns `bytes` bytes of device memory (cudaMalloc: 256-byte aligned).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes) != cudaSuccess) ptr_ = nullptr;
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  bool ok() const { return ptr_ != nullptr; }
  std::size_t bytes() const { return bytes_; }
  template <typename T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

/// n gradient-like floats: Gaussian values whose scale varies over 5 decades per 1000
/// elements, with ~1% exact zeros and negative zeros (sign handling) and no NaN/Inf.
inline std::vector<float> random_gradient(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> decade(-4.0f, 1.0f);
  std::uniform_int_distribution<int> special(0, 199);
  std::vector<float> g(n);
  float scale = 1.0f;
  for (std::size_t i = 0; i < n; ++i) {
    if (i % 1000 == 0) scale = std::pow(10.0f, decade(rng));
    const int s = special(rng);
    g[i] = s == 0 ? 0.0f : (s == 1 ? -0.0f : normal(rng) * scale);
  }
  return g;
}

/// Index of the first differing byte, or -1 when equal (sizes must match).
inline long long first_difference(const void* a, const void* b, std::size_t bytes) {
  const auto* x = static_cast<const std::uint8_t*>(a);
  const auto* y = static_cast<const std::uint8_t*>(b);
  for (std::size_t i = 0; i < bytes; ++i) {
    if (x[i] != y[i]) return static_cast<long long>(i);
  }
  return -1;
}

}  // namespace gradzip::quant::cuda::testing
