// Host-only parts of the CUDA twins (no device needed, labelled unit): the factory parses
// specs with the CPU registry's declarations, errors are typed, the two-phase size query,
// and finalize_message turns a device-style message (status word in the checksum slot)
// into the exact CPU message.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "quant/cuda.h"
#include "quant/registry.h"
#include "tests/gpu/gpu_test_util.h"

namespace gradzip::quant::cuda {
namespace {

/// Every codec with a CUDA twin at its defaults (from the codec list), then non-default specs.
std::vector<std::string> factory_specs() {
  std::vector<std::string> specs = cuda_codec_names();
  for (const char* spec : {"int8:bucket=100", "qsgd:bits=3,norm=max", "terngrad:clip=2.5", "scaled-sign:bucket=64",
                           "topk:ratio=0.05,values=int8", "threshold:tau=0.25",
                           "randk:ratio=0.1,scale=true,values=int8", "dgc:ratio=0.01,warmup_steps=8,values=fp16"}) {
    specs.emplace_back(spec);
  }
  return specs;
}

TEST(CudaFactory, SpecsMatchTheCpuTwin) {
  for (const std::string& spec : factory_specs()) {
    const auto gpu = make_cuda_codec(spec);
    const auto cpu = make_codec(spec);
    EXPECT_EQ(gpu->spec(), cpu->spec()) << spec;
    EXPECT_EQ(gpu->id(), cpu->id()) << spec;
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{33}, std::size_t{65537}}) EXPECT_EQ(gpu->max_encoded_bytes(n), cpu->max_encoded_bytes(n)) << spec;
  }
  for (const char* spec : {"none", "ef", "dgc:momentum=0.8,clip=1"}) EXPECT_EQ(make_cuda_memory(spec)->spec(), make_memory(spec)->spec());
}

TEST(CudaFactory, BadSpecsRaiseSpecErrorNamingTheProblem) {
  try {
    (void)make_cuda_codec("qsgd:bits=9");
    FAIL() << "bits=9 accepted";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("bits"), std::string::npos) << e.what();
  }
  try {
    (void)make_cuda_codec("nosuchcodec");
    FAIL() << "unknown codec accepted";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("nosuchcodec"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)make_cuda_memory("nosuchmemory"), SpecError);
}

TEST(CudaFactory, TwinNamesAreRegisteredCpuCodecs) {
  for (const std::string& name : cuda_codec_names()) EXPECT_NE(find_codec(name), nullptr) << name;
  for (const std::string& name : cuda_memory_names()) EXPECT_NE(find_memory(name), nullptr) << name;
}

TEST(CudaCodecArgs, SizeQueryAndArgumentErrorsNeedNoDevice) {
  const auto gpu = make_cuda_codec("qsgd");
  std::size_t ws = 123;
  // Size query: nothing is launched, the dense codecs need no scratch.
  ASSERT_TRUE(gpu->encode(nullptr, nullptr, 1000, SeedContext{}, nullptr, 0, nullptr, nullptr, &ws, nullptr).ok());
  EXPECT_EQ(ws, 0u);
  alignas(16) static std::uint8_t fake[64];
  float* fake_grad = reinterpret_cast<float*>(fake);
  ws = 0;
  // Capacity below max_encoded_bytes: kBufferTooSmall before any launch.
  EXPECT_EQ(gpu->encode(fake_grad, nullptr, 1000, SeedContext{}, fake, 64, nullptr, fake, &ws, nullptr).code(),
            Errc::kBufferTooSmall);
  // Misaligned output.
  EXPECT_EQ(gpu->encode(fake_grad, nullptr, 1, SeedContext{}, fake + 1, 1 << 20, nullptr, fake, &ws, nullptr).code(),
            Errc::kInvalidArgument);
  // Bucket index beyond the Philox layout.
  EXPECT_EQ(gpu->encode(fake_grad, nullptr, 1, SeedContext{0, 0, 0, 1u << 24}, fake, 1 << 20, nullptr, fake, &ws,
                        nullptr).code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(gpu->encode(fake_grad, nullptr, 1, SeedContext{}, fake, 1 << 20, nullptr, fake, nullptr, nullptr).code(),
            Errc::kInvalidArgument);
}

// The decode workspace: 0 bytes for every codec but randk (0 < k < n), a two-phase size
// query that launches nothing, and a typed refusal when randk gets none.
TEST(CudaCodecArgs, DecodeWorkspaceQueryNeedsNoDevice) {
  for (const std::string& name : cuda_codec_names()) {
    const auto gpu = make_cuda_codec(name);
    std::size_t ws = 123;
    ASSERT_TRUE(gpu->decode_own(nullptr, 1000, nullptr, nullptr, &ws, nullptr).ok()) << name;
    EXPECT_EQ(ws, gpu->decode_workspace_bytes(1000)) << name;
    if (name != "randk") {
      EXPECT_EQ(ws, 0u) << name;
    }
  }
  const auto randk = make_cuda_codec("randk:k=10");
  EXPECT_GT(randk->decode_workspace_bytes(1000), 0u);
  EXPECT_EQ(randk->decode_workspace_bytes(10), 0u);  // k == n keeps everything: no selection
  EXPECT_EQ(randk->decode_workspace_bytes(0), 0u);
  alignas(16) static std::uint8_t fake_msg[256];
  alignas(16) static float fake_out[1000];
  // No workspace given: refused before any launch.
  EXPECT_EQ(randk->decode_own(fake_msg, 1000, fake_out, nullptr).code(), Errc::kInvalidArgument);
  EXPECT_EQ(randk->decode_add_own(fake_msg, 1000, fake_out, 1.0f, nullptr).code(), Errc::kInvalidArgument);
  std::size_t small = 8;
  EXPECT_EQ(randk->decode_own(fake_msg, 1000, fake_out, fake_msg, &small, nullptr).code(), Errc::kBufferTooSmall);
  // The encode size queries of the sparse twins (dgc: sized for the warm-up's largest k).
  for (const char* spec : {"randk:ratio=0.01", "dgc:ratio=0.001,warmup_steps=100", "dgc"}) {
    const auto gpu = make_cuda_codec(spec);
    std::size_t ws = 0;
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{16385}, std::size_t{1000003}}) {
      ASSERT_TRUE(gpu->encode(nullptr, nullptr, n, SeedContext{}, nullptr, 0, nullptr, nullptr, &ws, nullptr).ok())
          << spec;
      EXPECT_GT(ws, 0u) << spec;
    }
  }
}

TEST(FinalizeMessage, RestoresTheCpuChecksum) {
  const auto cpu = make_codec("qsgd:bits=4,bucket=64");
  const std::vector<float> g = testing::random_gradient(1000, 3);
  const std::vector<std::uint8_t> want = cpu->encode(g.data(), g.size(), SeedContext{1, 2, 3, 4});
  std::vector<std::uint8_t> msg = want;
  std::fill(msg.begin() + kDeviceStatusOffset, msg.begin() + kDeviceStatusOffset + 8, 0);  // as the GPU leaves it
  msg.resize(msg.size() + 100, 0xEE);                                                      // D2H of the capacity
  std::size_t bytes = 0;
  ASSERT_TRUE(finalize_message(msg.data(), msg.size(), &bytes).ok());
  ASSERT_EQ(bytes, want.size());
  EXPECT_TRUE(std::equal(want.begin(), want.end(), msg.begin()));
}

TEST(FinalizeMessage, ReportsDeviceStatusAndTruncation) {
  const auto cpu = make_codec("int8");
  const std::vector<float> g = testing::random_gradient(100, 4);
  std::vector<std::uint8_t> msg = cpu->encode(g.data(), g.size(), SeedContext{});
  std::size_t bytes = 0;
  EXPECT_EQ(finalize_message(msg.data(), 20, &bytes).code(), Errc::kTruncated);
  std::vector<std::uint8_t> bad = msg;
  store_le<std::uint64_t>(bad.data() + kDeviceStatusOffset, static_cast<std::uint64_t>(Errc::kNonFiniteInput));
  EXPECT_EQ(finalize_message(bad.data(), bad.size(), &bytes).code(), Errc::kNonFiniteInput);
  store_le<std::uint64_t>(msg.data() + kDeviceStatusOffset, 0);
  EXPECT_EQ(finalize_message(msg.data(), msg.size() - 1, &bytes).code(), Errc::kTruncated);
  EXPECT_EQ(finalize_message(nullptr, 100, &bytes).code(), Errc::kInvalidArgument);
}

TEST(CudaErrors, CudaErrorNamesFileAndLine) {
  const Status st = cuda_error(cudaErrorInvalidValue, "cudaMemcpy(x)", "quant/foo.cu", 42);
  EXPECT_EQ(st.code(), Errc::kCuda);
  EXPECT_NE(st.message().find("quant/foo.cu:42"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("cudaErrorInvalidValue"), std::string::npos) << st.message();
}

// decode_own reads the header and payload with 8-byte loads: a message that is not
// kMessageAlignment-aligned is refused on the host, before any launch (as decode does).
TEST(CudaCodecArgs, DecodeOwnRefusesAMisalignedMessageBeforeAnyLaunch) {
  alignas(16) static std::uint8_t fake[64];
  auto* fake_out = reinterpret_cast<float*>(fake + 32);
  for (const std::string& name : cuda_codec_names()) {
    const auto gpu = make_cuda_codec(name);
    for (std::size_t offset : {std::size_t{1}, std::size_t{4}, std::size_t{8}}) {
      const Status own = gpu->decode_own(fake + offset, 4, fake_out, nullptr);
      EXPECT_EQ(own.code(), Errc::kInvalidArgument) << name << " offset " << offset;
      EXPECT_NE(own.message().find("aligned"), std::string::npos) << own.message();
      EXPECT_EQ(gpu->decode_add_own(fake + offset, 4, fake_out, 1.0f, nullptr).code(), Errc::kInvalidArgument)
          << name << " offset " << offset;
    }
  }
}

// "No device" (skip) is told apart from a runtime fault (fail): a host without a driver
// answers cudaErrorInsufficientDriver, one without a GPU cudaErrorNoDevice or a count of 0.
TEST(CudaDeviceProbe, ClassifiesNoDeviceApartFromRuntimeErrors) {
  EXPECT_EQ(classify_device_count(cudaSuccess, 1), DeviceProbe::kAvailable);
  EXPECT_EQ(classify_device_count(cudaSuccess, 8), DeviceProbe::kAvailable);
  EXPECT_EQ(classify_device_count(cudaSuccess, 0), DeviceProbe::kNoDevice);
  EXPECT_EQ(classify_device_count(cudaErrorNoDevice, 0), DeviceProbe::kNoDevice);
  EXPECT_EQ(classify_device_count(cudaErrorInsufficientDriver, 0), DeviceProbe::kNoDevice);
  for (cudaError_t err : {cudaErrorInitializationError, cudaErrorDevicesUnavailable, cudaErrorSystemDriverMismatch,
                          cudaErrorSystemNotReady, cudaErrorUnknown, cudaErrorCompatNotSupportedOnDevice}) {
    EXPECT_EQ(classify_device_count(err, 0), DeviceProbe::kError) << cudaGetErrorName(err);
  }
}

// The probe of this machine agrees with device_available and names a reason otherwise.
TEST(CudaDeviceProbe, ProbeNamesTheReasonWhenNoDeviceIsUsable) {
  std::string why;
  const DeviceProbe probe = probe_device(&why);
  EXPECT_EQ(device_available(nullptr), probe == DeviceProbe::kAvailable);
  if (probe != DeviceProbe::kAvailable) {
    EXPECT_FALSE(why.empty());
  }
}

}  // namespace
}  // namespace gradzip::quant::cuda
