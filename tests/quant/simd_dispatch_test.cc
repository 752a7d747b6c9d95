// The runtime-dispatched AVX2 loops (fp16/bf16/natural blocks, batched Philox) and their
// portable SSE2 copies must produce the same bytes: the wire format cannot depend on the
// CPU that encoded it. On an AVX2 host both copies run here; elsewhere only the portable
// copy exists and the test is skipped with that reason.
#include <gtest/gtest.h>

#include <cmath>
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

}  // namespace
}  // namespace gradzip::quant
