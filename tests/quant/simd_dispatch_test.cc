// The runtime-dispatched AVX2 loops (fp16/bf16/natural blocks, batched Philox) and their
// portable SSE2 copies must produce the same bytes: the wire format cannot depend on the
// CPU that encoded it. On an AVX2 host both copies run here; elsewhere only the portable
// copy exists and the test is skipped with that reason.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/cpu.h"
#include "quant/registry.h"

namespace gradzip::quant {
namespace {

std::vector<float> mixed_input(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-40, 20);
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = std::ldexp(normal(gen), exponent(gen));
  if (n > 3) {
    x[1] = 0.0f;
    x[2] = -0.0f;
    x[3] = 70000.0f;  // beyond fp16's range: saturates
  }
  return x;
}

TEST(SimdDispatch, Avx2AndPortableCopiesEncodeTheSameBytes) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2: only the portable copies exist";
  const SeedContext ctx{0x5EED, 17, 3, 2};
  for (const auto* entry : codec_entries()) {
    const auto codec = make_codec(entry->name);
    for (std::size_t n : {1u, 33u, 4099u, 65537u, 1000003u}) {
      const std::vector<float> x = mixed_input(n, static_cast<unsigned>(n) + entry->name.size());
      const std::vector<std::uint8_t> fast = codec->encode(x.data(), n, ctx);
      std::vector<std::uint8_t> portable;
      {
        ForcePortableSimdForTest force;
        ASSERT_FALSE(cpu_has_avx2());
        portable = codec->encode(x.data(), n, ctx);
      }
      ASSERT_TRUE(cpu_has_avx2());
      EXPECT_EQ(fast, portable) << entry->name << " n=" << n;
    }
  }
}

TEST(SimdDispatch, Avx2AndPortableCopiesDecodeTheSameBits) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2: only the portable copies exist";
  const SeedContext ctx{0x5EED, 18, 1, 0};
  for (const auto* entry : codec_entries()) {
    const auto codec = make_codec(entry->name);
    for (std::size_t n : {1u, 33u, 4099u, 65537u}) {
      const std::vector<float> x = mixed_input(n, static_cast<unsigned>(n) + 7);
      const std::vector<std::uint8_t> msg = codec->encode(x.data(), n, ctx);
      // decode, and decode_add with a scale into a nonzero accumulator (a multiply and an add).
      auto run = [&](std::vector<float>* out, std::vector<float>* acc) {
        out->assign(n, 0.0f);
        acc->assign(x.begin(), x.end());
        ASSERT_TRUE(codec->decode(msg.data(), msg.size(), out->data(), n).ok()) << entry->name;
        ASSERT_TRUE(codec->decode_add(msg.data(), msg.size(), acc->data(), n, 0.3f).ok()) << entry->name;
      };
      std::vector<float> fast, fast_acc, portable, portable_acc;
      run(&fast, &fast_acc);
      {
        ForcePortableSimdForTest force;
        run(&portable, &portable_acc);
      }
      EXPECT_EQ(0, std::memcmp(fast.data(), portable.data(), 4 * n)) << entry->name << " n=" << n;
      EXPECT_EQ(0, std::memcmp(fast_acc.data(), portable_acc.data(), 4 * n)) << entry->name << " n=" << n;
    }
  }
}

}  // namespace
}  // namespace gradzip::quant
