// CudaEncodePipeline: messages come out in bucket order, equal to the CPU ef + codec
// messages byte for byte, and the PCIe counters add up. Needs a CUDA device (skips).
#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "quant/cuda_pipeline.h"
#include "quant/registry.h"
#include "tests/gpu/gpu_test_util.h"

namespace gradzip::quant::cuda {
namespace {

using testing::DeviceBuffer;
using testing::random_gradient;

// Dense (DMA copy of the exact size) and sparse (device-sized copy into mapped memory)
// codecs: messages in bucket order, byte-equal to the CPU's, PCIe bytes == message bytes.
class CudaPipelineTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CudaPipelineTest, BucketsArriveInOrderAndMatchCpu) {
  GZ_REQUIRE_GPU();
  const char* spec = GetParam();
  const auto cpu = make_codec(spec);
  const auto gpu = make_cuda_codec(spec);
  // Bucket sizes that are not round numbers; more buckets than slots.
  const std::vector<std::size_t> sizes = {1000003, 31, 65537, 1, 262144, 777777, 33};
  std::size_t total = 0, largest = 0;
  for (std::size_t s : sizes) {
    total += s;
    largest = s > largest ? s : largest;
  }
  const std::vector<float> g = random_gradient(total, 77);
  const std::vector<float> e = random_gradient(total, 78);
  DeviceBuffer d_g(4 * total), d_e(4 * total);
  GZ_CUDA_OK(cudaMemcpy(d_g.get(), g.data(), 4 * total, cudaMemcpyHostToDevice));
  GZ_CUDA_OK(cudaMemcpy(d_e.get(), e.data(), 4 * total, cudaMemcpyHostToDevice));

  std::vector<PipelineBucket> buckets;
  std::vector<std::vector<std::uint8_t>> want;
  std::size_t offset = 0;
  auto ef = make_memory("ef");
  for (std::size_t b = 0; b < sizes.size(); ++b) {
    const SeedContext ctx{5, 9, 2, static_cast<std::uint32_t>(b)};
    buckets.push_back({d_g.get<float>() + offset, d_e.get<float>() + offset, sizes[b], ctx});
    MemoryState st;
    st.residual.assign(e.begin() + offset, e.begin() + offset + sizes[b]);
    std::vector<float> x(sizes[b]);
    ef->compensate(g.data() + offset, x.data(), sizes[b], &st);
    want.push_back(cpu->encode(x.data(), sizes[b], ctx));
    offset += sizes[b];
  }

  for (int depth : {2, 3}) {
    if (depth == 3) {  // second run: restore the residuals the first run updated
      GZ_CUDA_OK(cudaMemcpy(d_e.get(), e.data(), 4 * total, cudaMemcpyHostToDevice));
    }
    std::unique_ptr<CudaEncodePipeline> pipe;
    ASSERT_TRUE(CudaEncodePipeline::create(*gpu, largest, depth, &pipe).ok());
    std::size_t next = 0;
    PipelineStats stats;
    const Status st = pipe->run(
        buckets, nullptr,
        [&](std::size_t bucket, const std::uint8_t* msg, std::size_t bytes) {
          EXPECT_EQ(bucket, next++);
          EXPECT_EQ(bytes, want[bucket].size());
          EXPECT_EQ(testing::first_difference(msg, want[bucket].data(), bytes), -1) << "bucket " << bucket;
          return Status::Ok();
        },
        &stats);
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(next, sizes.size());
    std::uint64_t msg_bytes = 0;
    for (const auto& w : want) msg_bytes += w.size();
    EXPECT_EQ(stats.buckets, sizes.size());
    EXPECT_EQ(stats.message_bytes, msg_bytes);
    EXPECT_EQ(stats.d2h_bytes, msg_bytes);  // only the messages cross PCIe
    EXPECT_EQ(stats.gradient_bytes, 4 * total);
    EXPECT_GT(stats.d2h_ms, 0.0);
    EXPECT_GT(stats.wall_ms, 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, CudaPipelineTest,
                         ::testing::Values("qsgd:bits=4,bucket=512", "topk:ratio=0.01", "threshold:tau=0.5"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           std::string name = p.param;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(CudaPipeline, ConsumerErrorStopsTheRun) {
  GZ_REQUIRE_GPU();
  const auto gpu = make_cuda_codec("fp16");
  DeviceBuffer d_g(4 * 1000);
  GZ_CUDA_OK(cudaMemset(d_g.get(), 0, 4 * 1000));
  std::unique_ptr<CudaEncodePipeline> pipe;
  ASSERT_TRUE(CudaEncodePipeline::create(*gpu, 1000, 2, &pipe).ok());
  std::vector<PipelineBucket> buckets(4, PipelineBucket{d_g.get<float>(), nullptr, 1000, SeedContext{}});
  int calls = 0;
  const Status st = pipe->run(buckets, nullptr, [&](std::size_t, const std::uint8_t*, std::size_t) {
    ++calls;
    return Status(Errc::kInvalidArgument, "stop");
  }, nullptr);
  EXPECT_EQ(st.code(), Errc::kInvalidArgument);
  EXPECT_EQ(calls, 1);
  // The stopped run left no copy in flight: a second run over other data right away
  // delivers every bucket of the new data (a copy of the first run still writing a slot
  // would show up as a message of zeros).
  DeviceBuffer d_ones(4 * 1000);
  const std::vector<float> ones(1000, 1.0f);
  GZ_CUDA_OK(cudaMemcpy(d_ones.get(), ones.data(), 4 * 1000, cudaMemcpyHostToDevice));
  std::vector<PipelineBucket> second(4, PipelineBucket{d_ones.get<float>(), nullptr, 1000, SeedContext{}});
  std::vector<std::vector<std::uint8_t>> got;
  ASSERT_TRUE(pipe->run(second, nullptr, [&](std::size_t, const std::uint8_t* msg, std::size_t bytes) {
    got.emplace_back(msg, msg + bytes);
    return Status::Ok();
  }, nullptr).ok());
  ASSERT_EQ(got.size(), 4u);
  std::vector<float> decoded(1000);
  for (const auto& msg : got) {
    ASSERT_TRUE(make_codec("fp16")->decode(msg.data(), msg.size(), decoded.data(), decoded.size()).ok());
    EXPECT_EQ(decoded, ones);
  }
  buckets.push_back({d_g.get<float>(), nullptr, 1001, SeedContext{}});
  EXPECT_EQ(pipe->run(buckets, nullptr, [](std::size_t, const std::uint8_t*, std::size_t) { return Status::Ok(); },
                      nullptr).code(),
            Errc::kInvalidArgument);  // bucket larger than the pipeline was sized for
}

}  // namespace
}  // namespace gradzip::quant::cuda
