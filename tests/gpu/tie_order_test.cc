// Deterministic ties on the GPU (issue 13 point 6): the topk and dgc twins keep, among
// equal |x|, the smaller indices, exactly like the CPU (tests/quant/tie_order_test.cc):
// on tie-heavy inputs (all magnitudes equal, a handful of levels, +0/-0) the GPU message
// equals the CPU message byte for byte, and the kept set is the first k positions when
// every magnitude ties. Needs a CUDA device (GTEST_SKIP otherwise).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "quant/cuda.h"
#include "quant/registry.h"
#include "tests/gpu/gpu_test_util.h"

namespace gradzip::quant::cuda {
namespace {

using testing::DeviceBuffer;
using testing::first_difference;

/// The GPU message of `spec` for x (finalized), or empty on failure (reported).
std::vector<std::uint8_t> gpu_encode(const std::string& spec, const std::vector<float>& x, const SeedContext& ctx) {
  const auto gpu = make_cuda_codec(spec);
  const std::size_t n = x.size(), cap = gpu->max_encoded_bytes(n);
  DeviceBuffer d_x(4 * n), d_out(cap);
  EXPECT_TRUE(d_x.ok() && d_out.ok());
  EXPECT_EQ(cudaMemcpy(d_x.get(), x.data(), 4 * n, cudaMemcpyHostToDevice), cudaSuccess);
  std::size_t ws = 0;
  EXPECT_TRUE(gpu->encode(d_x.get<float>(), nullptr, n, ctx, d_out.get<std::uint8_t>(), cap, nullptr, nullptr, &ws,
                          nullptr).ok());
  DeviceBuffer d_ws(ws);
  const Status st = gpu->encode(d_x.get<float>(), nullptr, n, ctx, d_out.get<std::uint8_t>(), cap, nullptr,
                                d_ws.get(), &ws, nullptr);
  EXPECT_TRUE(st.ok()) << st.to_string();
  std::vector<std::uint8_t> h(cap);
  EXPECT_EQ(cudaMemcpy(h.data(), d_out.get(), cap, cudaMemcpyDeviceToHost), cudaSuccess);
  std::size_t bytes = 0;
  const Status fin = finalize_message(h.data(), cap, &bytes);
  EXPECT_TRUE(fin.ok()) << fin.to_string();
  h.resize(bytes);
  return h;
}

TEST(TieOrderGpu, TopkAndDgcTwinsBreakTiesLikeTheCpu) {
  GZ_REQUIRE_GPU();
  for (std::size_t n : {std::size_t{1000}, std::size_t{40000}, std::size_t{1000003}}) {
    std::vector<float> all_equal(n), levels(n);
    for (std::size_t i = 0; i < n; ++i) {
      all_equal[i] = i % 3 ? 0.25f : -0.25f;
      levels[i] = static_cast<float>(static_cast<int>(i * 7919 % 5) - 2) * 0.5f;  // 0, +-0.5, +-1: many ties
      if (i % 11 == 4) levels[i] = -0.0f;
    }
    for (const char* spec : {"topk:ratio=0.01", "topk:k=33", "dgc:ratio=0.01", "dgc:ratio=0.2,sample=0.01"}) {
      for (const auto* x : {&all_equal, &levels}) {
        SCOPED_TRACE(std::string(spec) + " n=" + std::to_string(n) + (x == &levels ? " levels" : " all-equal"));
        const SeedContext ctx{9, 3, 1, 4};
        const auto cpu = make_codec(spec)->encode(x->data(), n, ctx);
        const auto gpu = gpu_encode(spec, *x, ctx);
        ASSERT_EQ(gpu.size(), cpu.size());
        EXPECT_EQ(first_difference(gpu.data(), cpu.data(), cpu.size()), -1);
        if (x == &all_equal) {  // every magnitude ties: the kept set is the first k positions
          std::vector<float> y(n);
          ASSERT_TRUE(make_codec(spec)->decode(gpu.data(), gpu.size(), y.data(), n).ok());
          std::size_t first_zero = 0;
          while (first_zero < n && y[first_zero] != 0.0f) ++first_zero;
          for (std::size_t i = first_zero; i < n; ++i) ASSERT_EQ(y[i], 0.0f) << "kept position " << i << " after a gap";
          EXPECT_GT(first_zero, 0u);
        }
      }
    }
  }
}

}  // namespace
}  // namespace gradzip::quant::cuda
