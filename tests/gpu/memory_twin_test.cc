// CUDA twins of the error-feedback memories == their CPU reference, bit for bit, and the
// memory+codec step (encode_with_memory) == the fused codec encode. Needs a CUDA device
// (GTEST_SKIP with the reason otherwise).
#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <tuple>
#include <vector>

#include "quant/cuda.h"
#include "quant/registry.h"
#include "tests/gpu/gpu_test_util.h"

namespace gradzip::quant::cuda {
namespace {

using testing::DeviceBuffer;
using testing::first_difference;
using testing::random_gradient;

const std::size_t kSizes[] = {1, 31, 33, 1000, 65537, 1000003, 25600000};

class MemoryTwinTest : public ::testing::TestWithParam<std::tuple<const char*, std::size_t>> {};

// compensate and update of the twin, run stand-alone, equal the CPU memory's.
TEST_P(MemoryTwinTest, CompensateAndUpdateMatchCpu) {
  GZ_REQUIRE_GPU();
  const std::string spec = std::get<0>(GetParam());
  const std::size_t n = std::get<1>(GetParam());
  const auto cpu = make_memory(spec);
  const auto gpu = make_cuda_memory(spec);
  ASSERT_EQ(gpu->spec(), cpu->spec());
  const std::vector<float> g = random_gradient(n, 100 + n);
  const std::vector<float> e = random_gradient(n, 200 + n);
  const std::vector<float> dec = random_gradient(n, 300 + n);

  MemoryState cpu_state;
  cpu_state.residual = e;

  const std::vector<float> u0 = random_gradient(n, 400 + n);
  cpu_state.momentum = u0;
  DeviceBuffer d_g(4 * n), d_e(4 * n), d_comp(4 * n), d_dec(4 * n), d_u(4 * n), d_scratch(kMemoryScratchBytes);
  ASSERT_TRUE(d_g.ok() && d_e.ok() && d_comp.ok() && d_dec.ok() && d_u.ok() && d_scratch.ok());
  GZ_CUDA_OK(cudaMemcpy(d_u.get(), u0.data(), 4 * n, cudaMemcpyHostToDevice));
  GZ_CUDA_OK(cudaMemcpy(d_g.get(), g.data(), 4 * n, cudaMemcpyHostToDevice));
  GZ_CUDA_OK(cudaMemcpy(d_e.get(), e.data(), 4 * n, cudaMemcpyHostToDevice));
  GZ_CUDA_OK(cudaMemcpy(d_dec.get(), dec.data(), 4 * n, cudaMemcpyHostToDevice));
  GZ_CUDA_OK(cudaMemset(d_comp.get(), 0xFF, 4 * n));  // poison: NaN
  std::vector<float> comp(n);
  cpu->compensate(g.data(), comp.data(), n, &cpu_state);
  CudaMemoryState state;
  state.d_residual = d_e.get<float>();
  state.d_momentum = d_u.get<float>();
  state.d_scratch = d_scratch.get<float>();
  ASSERT_TRUE(gpu->compensate(d_g.get<float>(), d_comp.get<float>(), n, &state, nullptr).ok());
  std::vector<float> got(n);
  GZ_CUDA_OK(cudaMemcpy(got.data(), d_comp.get(), 4 * n, cudaMemcpyDeviceToHost));
  ASSERT_EQ(first_difference(got.data(), comp.data(), 4 * n), -1) << "compensate differs";

  cpu->update(comp.data(), dec.data(), n, &cpu_state);
  ASSERT_TRUE(gpu->update(d_comp.get<float>(), d_dec.get<float>(), n, &state, nullptr).ok());
  EXPECT_EQ(state.steps, cpu_state.steps);
  if (gpu->needs_residual()) {
    GZ_CUDA_OK(cudaMemcpy(got.data(), d_e.get(), 4 * n, cudaMemcpyDeviceToHost));
    ASSERT_EQ(first_difference(got.data(), cpu_state.residual.data(), 4 * n), -1) << "update differs";
  }
  if (gpu->needs_momentum()) {
    GZ_CUDA_OK(cudaMemcpy(got.data(), d_u.get(), 4 * n, cudaMemcpyDeviceToHost));
    ASSERT_EQ(first_difference(got.data(), cpu_state.momentum.data(), 4 * n), -1) << "momentum differs";
  }
}

INSTANTIATE_TEST_SUITE_P(AllMemories, MemoryTwinTest,
                         ::testing::Combine(::testing::Values("none", "ef", "ef:scale=0.3", "dgc:momentum=0.9,clip=0",
                                                            "dgc:momentum=0.5,clip=2"),
                                           ::testing::ValuesIn(kSizes)),
                         [](const ::testing::TestParamInfo<MemoryTwinTest::ParamType>& p) {
                           std::string name = std::get<0>(p.param);
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name + "_n" + std::to_string(std::get<1>(p.param));
                         });

// The DGC clip norm on many blocks (quant/reduce.h blocked order) at part boundaries
// and beyond 1024 minimum-size parts (longer parts): the same factor as the CPU.
INSTANTIATE_TEST_SUITE_P(DgcClipParts, MemoryTwinTest,
                         ::testing::Combine(::testing::Values("dgc:momentum=0.5,clip=2"),
                                            ::testing::Values(std::size_t{32768}, std::size_t{32769},
                                                              std::size_t{40000001})),
                         [](const ::testing::TestParamInfo<MemoryTwinTest::ParamType>& p) {
                           return "dgc_clip_n" + std::to_string(std::get<1>(p.param));
                         });

// Two steps of encode_with_memory(memory, codec) == two steps of the CPU memory + codec
// pipeline (messages and residual): the fused path (ef) and the general path (dgc:
// compensate -> encode -> decode_own -> update) carry their state across steps. randk
// exercises the decode workspace inside encode_with_memory, dgc:warmup_steps=4 a k that
// changes between the steps with one workspace sized at step 0.
TEST(MemoryTwin, EncodeWithMemoryTwoStepsMatchesCpu) {
  GZ_REQUIRE_GPU();
  const std::size_t n = 100003;
  for (const char* codec_spec : {"qsgd:bits=4,bucket=512", "randk:ratio=0.05,scale=true", "dgc:ratio=0.01,warmup_steps=4",
                                 "zipml:bits=3,bucket=512"})
  for (const char* mem_spec : {"none", "ef", "ef:scale=0.3", "dgc:momentum=0.9,clip=0", "dgc:momentum=0.5,clip=3"}) {
    SCOPED_TRACE(std::string(codec_spec) + " + " + mem_spec);
    const auto cpu_codec = make_codec(codec_spec);
    const auto cpu_mem = make_memory(mem_spec);
    const auto gpu_codec = make_cuda_codec(codec_spec);
    const auto gpu_mem = make_cuda_memory(mem_spec);
    const std::size_t cap = gpu_codec->max_encoded_bytes(n);
    DeviceBuffer d_g(4 * n), d_e(4 * n), d_u(4 * n), d_scratch(kMemoryScratchBytes), d_out(cap);
    GZ_CUDA_OK(cudaMemset(d_e.get(), 0, 4 * n));
    GZ_CUDA_OK(cudaMemset(d_u.get(), 0, 4 * n));
    CudaMemoryState state;
    state.d_residual = d_e.get<float>();
    state.d_momentum = d_u.get<float>();
    state.d_scratch = d_scratch.get<float>();
    MemoryState cpu_state;
    std::size_t ws_bytes = 0;
    ASSERT_TRUE(encode_with_memory(*gpu_mem, *gpu_codec, d_g.get<float>(), n, SeedContext{}, &state,
                                   d_out.get<std::uint8_t>(), cap, nullptr, nullptr, &ws_bytes, nullptr).ok());
    DeviceBuffer d_ws(ws_bytes);
    for (std::uint64_t step = 0; step < 2; ++step) {
      const SeedContext ctx{7, step, 1, 2};
      const std::vector<float> g = random_gradient(n, 40 + step);
      std::vector<float> x(n), dec(n);
      cpu_mem->compensate(g.data(), x.data(), n, &cpu_state);
      const std::vector<std::uint8_t> want = cpu_codec->encode(x.data(), n, ctx);
      ASSERT_TRUE(cpu_codec->decode(want.data(), want.size(), dec.data(), n).ok());
      cpu_mem->update(x.data(), dec.data(), n, &cpu_state);

      GZ_CUDA_OK(cudaMemcpy(d_g.get(), g.data(), 4 * n, cudaMemcpyHostToDevice));
      GZ_CUDA_OK(cudaMemset(d_out.get(), 0xA5, cap));
      std::size_t ws = ws_bytes;
      ASSERT_TRUE(encode_with_memory(*gpu_mem, *gpu_codec, d_g.get<float>(), n, ctx, &state,
                                     d_out.get<std::uint8_t>(), cap, nullptr, d_ws.get(), &ws, nullptr).ok());
      std::vector<std::uint8_t> h(cap);
      GZ_CUDA_OK(cudaMemcpy(h.data(), d_out.get(), cap, cudaMemcpyDeviceToHost));
      std::size_t bytes = 0;
      ASSERT_TRUE(finalize_message(h.data(), cap, &bytes).ok());
      ASSERT_EQ(bytes, want.size());
      ASSERT_EQ(first_difference(h.data(), want.data(), bytes), -1) << mem_spec << " step " << step;
    }
    if (gpu_mem->needs_residual()) {
      std::vector<float> e(n);
      GZ_CUDA_OK(cudaMemcpy(e.data(), d_e.get(), 4 * n, cudaMemcpyDeviceToHost));
      ASSERT_EQ(first_difference(e.data(), cpu_state.residual.data(), 4 * n), -1) << "residual after 2 steps";
    }
    EXPECT_EQ(state.steps, 2u);
  }
}

}  // namespace
}  // namespace gradzip::quant::cuda
