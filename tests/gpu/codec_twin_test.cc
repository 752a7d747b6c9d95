// CUDA twin == CPU reference, byte for byte, for every codec with a CUDA twin and every
// error-feedback memory, over sizes that are not round numbers (1, 31, 33, 1000, 65537,
// 1000003, 25.6M). Needs a CUDA device: each test GTEST_SKIPs with the reason otherwise.
//
// Decode calls go through the two-phase workspace overloads (randk regenerates its
// selection on decode; every other codec asks for 0 bytes).
// For each (spec, n), with random g and e (never all zeros):
//   * encode without memory: GPU message (after finalize_message) == CPU message;
//   * encode with the fused "ef" memory: message == CPU "ef"+codec message, and the new
//     residual == the CPU ef memory's residual, bit for bit;
//   * EF invariant on the GPU: C(p) + e' == p = g + e (to one rounding of p - C(p));
//   * decode / decode_add / decode_own / decode_add_own on the GPU == CPU decode /
//     decode_add, bit for bit;
//   * every output buffer is poisoned (0xA5 / NaN bytes) before each run, so an element
//     or byte the kernels forget to write is caught.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <iterator>
#include <cmath>
#include <cstring>
#include <functional>
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

// Non-default specs tested in addition to every twin's defaults: both kernel paths of the
// bucketed codecs (bucket % 8 == 0: fused warp-per-bucket; otherwise stats + group
// kernels), and every qsgd field width family.
const char* const kExtraSpecs[] = {
    "int8:bucket=100",
    "qsgd:bits=2,bucket=128",
    "qsgd:bits=3,bucket=7",
    "qsgd:bits=8,bucket=1000,norm=max",
    "terngrad:bucket=333,clip=2.5",
    "scaled-sign:bucket=1",
    "onebit:bucket=33",
    "topk:ratio=0.3,values=fp16",
    "topk:k=5,values=int8",
    "threshold:tau=0.5,values=int8",
    "threshold:tau=0,values=fp16",
    // randk: ratio path, fixed k, n/k scaling, k == n (no selection), every value format.
    "randk:ratio=0.3,scale=true,values=fp16",
    "randk:k=5,values=int8",
    "randk:k=100000000,scale=true",
    // dgc: the test's ctx.step is 41, so warmup_steps=100 is in stage 1 (density 6.25%);
    // small ratio/sample (several lowerings, exact fallback), large (too many -> top-k).
    "dgc:ratio=0.01,sample=0.01,values=fp16",
    "dgc:ratio=0.02,warmup_steps=100,values=int8",
    "dgc:ratio=0.4,sample=0.5",
    "dgc:ratio=0.001,sample=1e-6",
    // zipml: every field width, both kernel paths, the largest grid, one set per message.
    "zipml:bits=1,bucket=64",
    "zipml:bits=2,bucket=100",
    "zipml:bits=3,bucket=4096,refine=36",
    "zipml:bits=4,bucket=1000,refine=17",
    "zipml:bits=2,scope=tensor",
};

/// Every codec with a CUDA twin at its default params (its bare name), then kExtraSpecs:
/// a new twin is tested as soon as its row in quant/codecs/codec_list.inc says CUDA.
std::vector<std::string> twin_specs() {
  std::vector<std::string> specs = cuda_codec_names();
  specs.insert(specs.end(), std::begin(kExtraSpecs), std::end(kExtraSpecs));
  return specs;
}
const std::size_t kSizes[] = {1, 31, 33, 1000, 65537, 1000003, 25600000};

struct CpuResult {
  std::vector<std::uint8_t> msg_plain;  // encode(g)
  std::vector<std::uint8_t> msg_ef;     // encode(g + e)
  std::vector<float> compensated;       // p = g + e
  std::vector<float> decoded_ef;        // decode(msg_ef)
  std::vector<float> residual_ef;       // p - decode(msg_ef)
};

CpuResult cpu_reference(const Codec& codec, const std::vector<float>& g, const std::vector<float>& e,
                        const SeedContext& ctx) {
  const std::size_t n = g.size();
  CpuResult r;
  r.msg_plain = codec.encode(g.data(), n, ctx);
  auto ef = make_memory("ef");
  MemoryState state;
  state.residual = e;
  r.compensated.resize(n);
  ef->compensate(g.data(), r.compensated.data(), n, &state);
  r.msg_ef = codec.encode(r.compensated.data(), n, ctx);
  r.decoded_ef.resize(n);
  const Status st = codec.decode(r.msg_ef.data(), r.msg_ef.size(), r.decoded_ef.data(), n);
  if (!st.ok()) throw QuantError(st);
  ef->update(r.compensated.data(), r.decoded_ef.data(), n, &state);
  r.residual_ef = state.residual;
  return r;
}

class CodecTwinTest : public ::testing::TestWithParam<std::tuple<std::string, std::size_t>> {};

TEST_P(CodecTwinTest, MatchesCpuByteForByte) {
  GZ_REQUIRE_GPU();
  const std::string spec = std::get<0>(GetParam());
  const std::size_t n = std::get<1>(GetParam());
  const auto cpu = make_codec(spec);
  const auto gpu = make_cuda_codec(spec);
  ASSERT_EQ(gpu->spec(), cpu->spec());
  ASSERT_EQ(gpu->id(), cpu->id());
  ASSERT_EQ(gpu->max_encoded_bytes(n), cpu->max_encoded_bytes(n));

  const std::uint64_t seed = 0x9E3779B97F4A7C15ull ^ (n * 1315423911ull) ^ std::hash<std::string>{}(spec);
  const std::vector<float> g = random_gradient(n, seed);
  std::vector<float> e = random_gradient(n, seed + 1);
  for (float& v : e) v *= 0.25f;
  const SeedContext ctx{seed, 41, 3, 17};
  const CpuResult want = cpu_reference(*cpu, g, e, ctx);

  const std::size_t cap = gpu->max_encoded_bytes(n);
  DeviceBuffer d_g(4 * n), d_e(4 * n), d_out(cap), d_dec(4 * n), d_msg_bytes(8);
  ASSERT_TRUE(d_g.ok() && d_e.ok() && d_out.ok() && d_dec.ok() && d_msg_bytes.ok()) << "cudaMalloc failed";
  GZ_CUDA_OK(cudaMemcpy(d_g.get(), g.data(), 4 * n, cudaMemcpyHostToDevice));
  cudaStream_t stream = nullptr;
  GZ_CUDA_OK(cudaStreamCreate(&stream));

  std::size_t ws_bytes = 0;
  ASSERT_TRUE(gpu->encode(d_g.get<float>(), nullptr, n, ctx, d_out.get<std::uint8_t>(), cap, nullptr, nullptr,
                          &ws_bytes, stream).ok());
  DeviceBuffer d_ws(ws_bytes);
  ASSERT_TRUE(d_ws.ok());
  std::size_t dec_ws_bytes = 0;
  ASSERT_TRUE(gpu->decode_own(nullptr, n, nullptr, nullptr, &dec_ws_bytes, stream).ok());
  ASSERT_EQ(dec_ws_bytes, gpu->decode_workspace_bytes(n));
  DeviceBuffer d_dec_ws(dec_ws_bytes);
  ASSERT_TRUE(d_dec_ws.ok());
  GZ_CUDA_OK(cudaMemset(d_dec_ws.get(), 0xA5, dec_ws_bytes));  // nothing may rely on zeroed scratch
  std::size_t dws = dec_ws_bytes;

  std::vector<std::uint8_t> h_msg(cap);
  auto run_encode = [&](float* d_residual, const std::vector<std::uint8_t>& expected, const char* what) {
    GZ_CUDA_OK(cudaMemsetAsync(d_out.get(), 0xA5, cap, stream));
    GZ_CUDA_OK(cudaMemsetAsync(d_msg_bytes.get(), 0xA5, 8, stream));
    std::size_t ws = ws_bytes;
    const Status st = gpu->encode(d_g.get<float>(), d_residual, n, ctx, d_out.get<std::uint8_t>(), cap,
                                  d_msg_bytes.get<std::uint64_t>(), d_ws.get(), &ws, stream);
    ASSERT_TRUE(st.ok()) << st.to_string();
    GZ_CUDA_OK(cudaMemcpyAsync(h_msg.data(), d_out.get(), cap, cudaMemcpyDeviceToHost, stream));
    std::uint64_t dev_bytes = 0;
    GZ_CUDA_OK(cudaMemcpyAsync(&dev_bytes, d_msg_bytes.get(), 8, cudaMemcpyDeviceToHost, stream));
    GZ_CUDA_OK(cudaStreamSynchronize(stream));
    std::size_t bytes = 0;
    const Status fin = finalize_message(h_msg.data(), cap, &bytes);
    ASSERT_TRUE(fin.ok()) << what << ": " << fin.to_string();
    ASSERT_EQ(bytes, expected.size()) << what;
    ASSERT_EQ(dev_bytes, expected.size()) << what << ": d_message_bytes";
    const long long diff = first_difference(h_msg.data(), expected.data(), bytes);
    ASSERT_EQ(diff, -1) << what << ": first differing byte " << diff << " of " << bytes;
  };
  run_encode(nullptr, want.msg_plain, "encode(g)");
  GZ_CUDA_OK(cudaMemcpy(d_e.get(), e.data(), 4 * n, cudaMemcpyHostToDevice));
  run_encode(d_e.get<float>(), want.msg_ef, "ef encode(g + e)");

  // New residual: bit-identical to the CPU ef memory, and the EF invariant holds.
  std::vector<float> e_new(n);
  GZ_CUDA_OK(cudaMemcpy(e_new.data(), d_e.get(), 4 * n, cudaMemcpyDeviceToHost));
  ASSERT_EQ(first_difference(e_new.data(), want.residual_ef.data(), 4 * n), -1) << "residual differs from CPU ef";
  for (std::size_t i = 0; i < n; ++i) {
    const float p = want.compensated[i];
    const float c = want.decoded_ef[i];
    const float tol = std::ldexp(std::fmax(std::fabs(p), std::fabs(c)), -22);  // two roundings
    ASSERT_LE(std::fabs((c + e_new[i]) - p), tol) << "EF invariant at " << i;
  }

  // Decode paths read the CPU message uploaded to the device.
  DeviceBuffer d_cpu_msg(want.msg_ef.size());
  ASSERT_TRUE(d_cpu_msg.ok());
  GZ_CUDA_OK(cudaMemcpy(d_cpu_msg.get(), want.msg_ef.data(), want.msg_ef.size(), cudaMemcpyHostToDevice));
  std::vector<float> got(n);
  GZ_CUDA_OK(cudaMemset(d_dec.get(), 0xFF, 4 * n));  // NaN everywhere
  Status st = gpu->decode(want.msg_ef.data(), d_cpu_msg.get<std::uint8_t>(), want.msg_ef.size(), d_dec.get<float>(), n,
                          d_dec_ws.get(), &dws, stream);
  ASSERT_TRUE(st.ok()) << st.to_string();
  GZ_CUDA_OK(cudaStreamSynchronize(stream));
  GZ_CUDA_OK(cudaMemcpy(got.data(), d_dec.get(), 4 * n, cudaMemcpyDeviceToHost));
  ASSERT_EQ(first_difference(got.data(), want.decoded_ef.data(), 4 * n), -1) << "decode differs";

  GZ_CUDA_OK(cudaMemset(d_dec.get(), 0xFF, 4 * n));
  ASSERT_TRUE(gpu->decode_own(d_cpu_msg.get<std::uint8_t>(), n, d_dec.get<float>(), d_dec_ws.get(), &dws, stream).ok());
  GZ_CUDA_OK(cudaStreamSynchronize(stream));
  GZ_CUDA_OK(cudaMemcpy(got.data(), d_dec.get(), 4 * n, cudaMemcpyDeviceToHost));
  ASSERT_EQ(first_difference(got.data(), want.decoded_ef.data(), 4 * n), -1) << "decode_own differs";

  std::vector<float> acc = random_gradient(n, seed + 2);
  GZ_CUDA_OK(cudaMemcpy(d_dec.get(), acc.data(), 4 * n, cudaMemcpyHostToDevice));
  st = gpu->decode_add(want.msg_ef.data(), d_cpu_msg.get<std::uint8_t>(), want.msg_ef.size(), d_dec.get<float>(), n,
                       0.375f, d_dec_ws.get(), &dws, stream);
  ASSERT_TRUE(st.ok()) << st.to_string();
  ASSERT_TRUE(cpu->decode_add(want.msg_ef.data(), want.msg_ef.size(), acc.data(), n, 0.375f).ok());
  GZ_CUDA_OK(cudaStreamSynchronize(stream));
  GZ_CUDA_OK(cudaMemcpy(got.data(), d_dec.get(), 4 * n, cudaMemcpyDeviceToHost));
  ASSERT_EQ(first_difference(got.data(), acc.data(), 4 * n), -1) << "decode_add differs";

  // The trusted variant adds the same values (second accumulation on top of the first).
  ASSERT_TRUE(
      gpu->decode_add_own(d_cpu_msg.get<std::uint8_t>(), n, d_dec.get<float>(), -1.5f, d_dec_ws.get(), &dws, stream)
          .ok());
  ASSERT_TRUE(cpu->decode_add(want.msg_ef.data(), want.msg_ef.size(), acc.data(), n, -1.5f).ok());
  GZ_CUDA_OK(cudaStreamSynchronize(stream));
  GZ_CUDA_OK(cudaMemcpy(got.data(), d_dec.get(), 4 * n, cudaMemcpyDeviceToHost));
  ASSERT_EQ(first_difference(got.data(), acc.data(), 4 * n), -1) << "decode_add_own differs";
  GZ_CUDA_OK(cudaStreamDestroy(stream));
}

std::string twin_name(const ::testing::TestParamInfo<CodecTwinTest::ParamType>& info) {
  std::string s = std::get<0>(info.param);
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s + "_n" + std::to_string(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllTwins, CodecTwinTest,
                         ::testing::Combine(::testing::ValuesIn(twin_specs()), ::testing::ValuesIn(kSizes)), twin_name);

// Every extra spec names a codec with a CUDA twin and parses (a stale one would otherwise
// fail only on a GPU host).
TEST(CodecTwinCoverage, ExtraSpecsAreValidTwinSpecs) {
  const std::vector<std::string> twins = cuda_codec_names();
  for (const char* spec : kExtraSpecs) {
    EXPECT_NE(std::find(twins.begin(), twins.end(), split_spec(spec).first), twins.end()) << spec;
    EXPECT_NO_THROW((void)make_cuda_codec(spec)) << spec;
  }
}

// Data-dependent errors travel through the device status word: a NaN in the gradient
// makes finalize_message answer kNonFiniteInput, like the CPU encode.
TEST(CodecTwinErrors, NonFiniteInputReportedByFinalize) {
  GZ_REQUIRE_GPU();
  for (const std::string& spec : twin_specs()) {
    const auto gpu = make_cuda_codec(spec);
    const std::size_t n = 1000;
    std::vector<float> g = random_gradient(n, 5);
    g[517] = std::nanf("");
    const std::size_t cap = gpu->max_encoded_bytes(n);
    std::size_t ws = 0;
    ASSERT_TRUE(gpu->encode(nullptr, nullptr, n, SeedContext{}, nullptr, cap, nullptr, nullptr, &ws, nullptr).ok());
    DeviceBuffer d_g(4 * n), d_out(cap), d_ws(ws);
    GZ_CUDA_OK(cudaMemcpy(d_g.get(), g.data(), 4 * n, cudaMemcpyHostToDevice));
    ASSERT_TRUE(gpu->encode(d_g.get<float>(), nullptr, n, SeedContext{}, d_out.get<std::uint8_t>(), cap, nullptr,
                            d_ws.get(), &ws, nullptr).ok());
    std::vector<std::uint8_t> h(cap);
    GZ_CUDA_OK(cudaMemcpy(h.data(), d_out.get(), cap, cudaMemcpyDeviceToHost));
    std::size_t bytes = 0;
    EXPECT_EQ(finalize_message(h.data(), cap, &bytes).code(), Errc::kNonFiniteInput) << spec;
  }
}

/// Fused-EF encode of g over residual e on the device; returns the residual afterwards
/// and the finalize status of the message.
std::vector<float> fused_ef_residual(const CudaCodec& gpu, const std::vector<float>& g, const std::vector<float>& e,
                                     Errc* status) {
  const std::size_t n = g.size();
  const std::size_t cap = gpu.max_encoded_bytes(n);
  std::size_t ws = 0;
  std::vector<float> r(n, -1.0f);
  if (!gpu.encode(nullptr, nullptr, n, SeedContext{}, nullptr, cap, nullptr, nullptr, &ws, nullptr).ok()) return r;
  DeviceBuffer d_g(4 * n), d_r(4 * n), d_out(cap), d_ws(ws);
  if (cudaMemcpy(d_g.get(), g.data(), 4 * n, cudaMemcpyHostToDevice) != cudaSuccess) return r;
  if (cudaMemcpy(d_r.get(), e.data(), 4 * n, cudaMemcpyHostToDevice) != cudaSuccess) return r;
  if (!gpu.encode(d_g.get<float>(), d_r.get<float>(), n, SeedContext{3, 1, 0, 0}, d_out.get<std::uint8_t>(), cap,
                  nullptr, d_ws.get(), &ws, nullptr).ok()) {
    return r;
  }
  std::vector<std::uint8_t> h(cap);
  if (cudaMemcpy(h.data(), d_out.get(), cap, cudaMemcpyDeviceToHost) != cudaSuccess) return r;
  if (cudaMemcpy(r.data(), d_r.get(), 4 * n, cudaMemcpyDeviceToHost) != cudaSuccess) return r;
  std::size_t bytes = 0;
  *status = finalize_message(h.data(), cap, &bytes).code();
  return r;
}

// Sparse codecs and randk hold one bucket: a NaN anywhere leaves the whole residual as it
// was (quant/cuda.h), although the selection pass used to store p = g + e into it.
TEST(CodecTwinErrors, SparseNonFiniteLeavesTheResidualUntouched) {
  GZ_REQUIRE_GPU();
  for (const char* spec : {"topk:ratio=0.05", "topk:ratio=0.05,values=int8", "threshold:tau=0.25",
                           "randk:ratio=0.1", "randk:ratio=0.1,scale=true,values=fp16", "dgc:ratio=0.01",
                           "dgc:ratio=0.5"}) {
    for (std::size_t n : {std::size_t{1000}, std::size_t{100000}}) {
      std::vector<float> g = random_gradient(n, 11);
      const std::vector<float> e = random_gradient(n, 12);
      g[n / 2 + 1] = std::nanf("");
      Errc status = Errc::kOk;
      const std::vector<float> r = fused_ef_residual(*make_cuda_codec(spec), g, e, &status);
      EXPECT_EQ(status, Errc::kNonFiniteInput) << spec << " n=" << n;
      EXPECT_EQ(first_difference(r.data(), e.data(), 4 * n), -1) << spec << " n=" << n;
    }
  }
}

// A bucketed codec whose bucket is not a multiple of 8 encodes groups of 8 that straddle
// buckets: only the bad bucket keeps its residual; its neighbours in the same group are
// updated exactly as in a run where the bad bucket is healthy.
TEST(CodecTwinErrors, BucketedNonFiniteKeepsOnlyItsBucketsResidual) {
  GZ_REQUIRE_GPU();
  for (const char* spec : {"int8:bucket=100", "qsgd:bits=3,bucket=100", "scaled-sign:bucket=100"}) {
    const std::size_t n = 1000, bad_lo = 200, bad_hi = 300;  // groups [296, 304) straddle
    const std::vector<float> clean = random_gradient(n, 21);
    const std::vector<float> e = random_gradient(n, 22);
    std::vector<float> g = clean;
    g[250] = std::nanf("");
    Errc bad_status = Errc::kOk, clean_status = Errc::kOk;
    const auto gpu = make_cuda_codec(spec);
    const std::vector<float> r_bad = fused_ef_residual(*gpu, g, e, &bad_status);
    const std::vector<float> r_clean = fused_ef_residual(*gpu, clean, e, &clean_status);
    EXPECT_EQ(bad_status, Errc::kNonFiniteInput) << spec;
    EXPECT_EQ(clean_status, Errc::kOk) << spec;
    for (std::size_t i = 0; i < n; ++i) {
      const float want = i >= bad_lo && i < bad_hi ? e[i] : r_clean[i];
      EXPECT_EQ(std::memcmp(&r_bad[i], &want, 4), 0) << spec << " element " << i;
    }
  }
}

// A corrupted message is refused on the host before any kernel writes the output.
TEST(CodecTwinErrors, BadMessageRefusedBeforeWriting) {
  GZ_REQUIRE_GPU();
  for (const std::string& spec : twin_specs()) {
    const auto cpu = make_codec(spec);
    const auto gpu = make_cuda_codec(spec);
    const std::size_t n = 100;
    const std::vector<float> g = random_gradient(n, 9);
    std::vector<std::uint8_t> msg = cpu->encode(g.data(), n, SeedContext{});
    msg.back() ^= 0x40;  // checksum mismatch
    DeviceBuffer d_msg(msg.size()), d_out(4 * n);
    GZ_CUDA_OK(cudaMemcpy(d_msg.get(), msg.data(), msg.size(), cudaMemcpyHostToDevice));
    GZ_CUDA_OK(cudaMemset(d_out.get(), 0x5A, 4 * n));
    EXPECT_EQ(gpu->decode(msg.data(), d_msg.get<std::uint8_t>(), msg.size(), d_out.get<float>(), n, nullptr).code(),
              Errc::kBadChecksum)
        << spec;
    EXPECT_EQ(gpu->decode(msg.data(), d_msg.get<std::uint8_t>(), msg.size(), d_out.get<float>(), n + 1, nullptr).code(),
              Errc::kBadChecksum)
        << spec;
    std::vector<std::uint8_t> h(4 * n);
    GZ_CUDA_OK(cudaMemcpy(h.data(), d_out.get(), 4 * n, cudaMemcpyDeviceToHost));
    for (std::uint8_t b : h) ASSERT_EQ(b, 0x5A) << spec << ": output written despite the error";
  }
}

}  // namespace
}  // namespace gradzip::quant::cuda
