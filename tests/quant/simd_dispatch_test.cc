// The runtime-dispatched AVX2 loops (fp16/bf16/natural blocks, batched Philox, the fused
// error-feedback loops of ef/ef21, the Inf/NaN scans) and their portable SSE2 copies must
// produce the same bytes: the wire format and the residuals cannot depend on the CPU. On an AVX2 host both copies run here; elsewhere only the portable
// copy exists and the test is skipped with that reason.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "quant/cpu.h"
#include "quant/feedback.h"
#include "quant/half.h"
#include "quant/half_f16c.h"
#include "quant/memory.h"
#include "quant/registry.h"
#include "quant/wire.h"

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

TEST(SimdDispatch, Avx2AndPortableFusedFeedbackGiveTheSameBytesAndResiduals) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2: only the portable copies exist";
  // 300007 >= kStreamingNumel: the streamed residual and message are covered too.
  static_assert(kStreamingNumel < 300007, "the large size must take the streaming stores");
  for (const auto* entry : codec_entries()) {
    const auto codec = make_codec(entry->name);
    for (const char* memory_spec : {"ef", "ef:scale=0.5", "ef21"}) {
      const auto memory = make_memory(memory_spec);
      for (std::size_t n : {4099u, 300007u}) {
        MemoryState fast, portable;
        for (std::uint32_t step = 0; step < 2; ++step) {
          const std::vector<float> g = mixed_input(n, 100 + step + static_cast<unsigned>(n));
          const SeedContext ctx{0x5EED, step, 1, 4};
          std::vector<std::uint8_t> msg_fast(codec->max_encoded_bytes(n)), msg_portable(msg_fast.size());
          std::size_t bytes_fast = 0, bytes_portable = 0;
          const Status st_fast =
              memory->encode_step(*codec, g.data(), n, ctx, &fast, msg_fast.data(), msg_fast.size(), &bytes_fast);
          Status st_portable;
          {
            ForcePortableSimdForTest force;
            st_portable = memory->encode_step(*codec, g.data(), n, ctx, &portable, msg_portable.data(),
                                              msg_portable.size(), &bytes_portable);
          }
          const std::string where = entry->name + " + " + memory_spec + " n=" + std::to_string(n);
          ASSERT_EQ(st_fast.code(), st_portable.code()) << where;
          ASSERT_EQ(bytes_fast, bytes_portable) << where;
          EXPECT_EQ(0, std::memcmp(msg_fast.data(), msg_portable.data(), bytes_fast)) << where;
          ASSERT_EQ(fast.residual.size(), portable.residual.size()) << where;
          EXPECT_EQ(0, std::memcmp(fast.residual.data(), portable.residual.data(), 4 * fast.residual.size()))
              << where << " step " << step;
        }
      }
    }
  }
}

TEST(SimdDispatch, Avx2AndPortableScansRefuseTheSameNonFiniteValues) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2: only the portable copies exist";
  const SeedContext ctx{0x5EED, 1, 0, 0};
  for (const char* name : {"identity", "fp16", "bf16"}) {
    const auto codec = make_codec(name);
    for (std::size_t at : {0u, 16u, 4098u}) {
      std::vector<float> x = mixed_input(4099, 5);
      std::vector<std::uint8_t> msg = codec->encode(x.data(), x.size(), ctx);
      // An Inf in the input (encode refuses), an Inf/NaN pattern in the payload (decode refuses).
      x[at] = std::numeric_limits<float>::infinity();
      const std::size_t word = std::string(name) == "identity" ? 4 : 2;
      std::memset(msg.data() + kHeaderBytes + word * at, 0xFF, word);
      store_le<std::uint64_t>(msg.data() + 32, message_checksum(msg.data(), 0, msg.size() - kHeaderBytes));
      std::vector<float> out(x.size());
      for (const bool portable : {false, true}) {
        std::unique_ptr<ForcePortableSimdForTest> force;
        if (portable) force = std::make_unique<ForcePortableSimdForTest>();
        std::size_t bytes = 0;
        std::vector<std::uint8_t> buf(codec->max_encoded_bytes(x.size()));
        EXPECT_EQ(codec->encode(x.data(), x.size(), ctx, buf.data(), buf.size(), &bytes).code(),
                  Errc::kNonFiniteInput)
            << name << " at " << at << (portable ? " (portable)" : " (avx2)");
        if (word == 2) {  // identity carries fp32 values as they are; the 16-bit formats refuse Inf/NaN
          EXPECT_EQ(codec->decode(msg.data(), msg.size(), out.data(), out.size()).code(), Errc::kNonFiniteScale)
              << name << " at " << at << (portable ? " (portable)" : " (avx2)");
        }
      }
    }
  }
}

/// The fp16 codec's definition: float_to_fp16 (quant/half.h), Inf saturated to +-0x7BFF.
std::uint16_t software_fp16_saturate(float x) {
  const std::uint16_t h = float_to_fp16(x);
  return (h & 0x7FFFu) >= 0x7C00u ? static_cast<std::uint16_t>((h & 0x8000u) | 0x7BFFu) : h;
}

/// Float bit patterns covering every rounding case of the float -> half conversion: for
/// every finite exponent and both signs, mantissas whose dropped bits (13 for normal
/// halves, 14..24 for subnormal ones, all 23 below) are 0, 1, half - 1, half, half + 1
/// and all ones, under every kept-bit pattern with both parities (all 2^10 for normal
/// halves), plus random mantissas; and the named boundaries.
std::vector<float> half_rounding_cases() {
  std::vector<std::uint32_t> bits;
  std::mt19937 gen(11);
  for (std::uint32_t sign : {0u, 0x80000000u}) {
    for (std::uint32_t exp = 0; exp < 255; ++exp) {
      // Dropped mantissa bits at this exponent (mantissa with the implicit bit for subnormal halves).
      const std::uint32_t dropped = exp >= 113 ? 13u : (exp >= 102 ? 126u - exp : 23u);
      const std::uint32_t half = 1u << (dropped - 1);
      const std::uint32_t kept_count = 1u << (23 - std::min(23u, dropped));
      for (std::uint32_t kept = 0; kept < kept_count; ++kept) {
        for (std::uint32_t low : {0u, 1u, half - 1, half, half + 1, (half << 1) - 1}) {
          const std::uint32_t mant = ((kept << dropped) | low) & 0x7FFFFFu;
          bits.push_back(sign | (exp << 23) | mant);
        }
      }
      for (int k = 0; k < 2048; ++k) bits.push_back(sign | (exp << 23) | (gen() & 0x7FFFFFu));
    }
  }
  std::vector<float> x;
  for (std::uint32_t u : bits) x.push_back(bits_float(u));
  // 65504 (largest half), just below 65520 (rounds down to 65504), 65520 (the tie: rounds
  // to even = Inf, saturated), 65536, the largest float; the smallest subnormal half
  // 2^-24, 2^-25 (the tie: rounds to even = 0) and just above it, the smallest normal
  // half 2^-14 and just below it, +-0 and fp32 subnormals.
  for (float v : {65504.0f, std::nextafter(65520.0f, 0.0f), 65520.0f, 65536.0f,
                  std::numeric_limits<float>::max(), 0x1p-24f, 0x1p-25f, std::nextafter(0x1p-25f, 1.0f),
                  0x1p-14f, std::nextafter(0x1p-14f, 0.0f), 0.0f, std::numeric_limits<float>::denorm_min(),
                  std::numeric_limits<float>::min()}) {
    x.push_back(v);
    x.push_back(-v);
  }
  return x;
}

TEST(SimdDispatch, F16cAndSoftwareFp16ConversionAgreeOnEveryRoundingCase) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "this CPU has no F16C (or no AVX2): only the software conversion runs";
  const std::vector<float> x = half_rounding_cases();
  ASSERT_GT(x.size(), 2000000u);
  std::vector<std::uint16_t> h(x.size());
  EXPECT_EQ(fp16_saturate_block_f16c(x.data(), x.size(), h.data()), 0u);
  std::size_t subnormal = 0, saturated = 0, ties = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::uint16_t want = software_fp16_saturate(x[i]);
    ASSERT_EQ(h[i], want) << "x bits 0x" << std::hex << float_bits(x[i]);
    subnormal += (want & 0x7C00u) == 0 && (want & 0x3FFu) != 0;
    saturated += (want & 0x7FFFu) == 0x7BFFu;
    ties += (float_bits(x[i]) & 0x1FFFu) == 0x1000u;
  }
  // The sample reached every kind of result it claims to cover.
  EXPECT_GT(subnormal, 10000u);
  EXPECT_GT(saturated, 10000u);
  EXPECT_GT(ties, 10000u);
  // Named boundaries, against the values the software path gives.
  const float named[] = {65504.0f, std::nextafter(65520.0f, 0.0f), 65520.0f, 0x1p-25f, -0x1p-25f, -0.0f};
  std::uint16_t hn[6];
  fp16_saturate_block_f16c(named, 6, hn);
  EXPECT_EQ(hn[0], 0x7BFFu);
  EXPECT_EQ(hn[1], 0x7BFFu);
  EXPECT_EQ(hn[2], 0x7BFFu);  // float_to_fp16 gives Inf (ties to even): saturated
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7C00u);
  EXPECT_EQ(hn[3], 0x0000u);
  EXPECT_EQ(hn[4], 0x8000u);
  EXPECT_EQ(hn[5], 0x8000u);
}

TEST(SimdDispatch, F16cConversionIgnoresFlushToZeroAndDenormalsAreZero) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "this CPU has no F16C (or no AVX2): only the software conversion runs";
  // libtorch's set_flush_denormal sets MXCSR FTZ and DAZ in the trainer's threads: the
  // subnormal halves must still come out as in software.
  std::vector<float> x;
  for (std::uint32_t u = 0x33000000u; u < 0x38800000u; u += 0x101u) x.push_back(bits_float(u));
  x.push_back(std::numeric_limits<float>::denorm_min());
  std::vector<std::uint16_t> h(x.size());
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040u);  // FTZ | DAZ
  fp16_saturate_block_f16c(x.data(), x.size(), h.data());
  _mm_setcsr(csr);
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(h[i], software_fp16_saturate(x[i])) << "x bits 0x" << std::hex << float_bits(x[i]);
  }
}

TEST(SimdDispatch, F16cAndPortableFp16EncodeGiveTheSameMessages) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "this CPU has no F16C (or no AVX2): only the software conversion runs";
  const auto codec = make_codec("fp16");
  const std::vector<float> x = half_rounding_cases();
  const SeedContext ctx{0x5EED, 3, 0, 0};
  const std::vector<std::uint8_t> fast = codec->encode(x.data(), x.size(), ctx);
  std::vector<std::uint8_t> portable;
  {
    ForcePortableSimdForTest force;
    ASSERT_FALSE(cpu_has_f16c());
    portable = codec->encode(x.data(), x.size(), ctx);
  }
  EXPECT_EQ(fast, portable);
  // NaN and Inf: the F16C path flags them as the software path does (the codec refuses).
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN(), bits_float(0x7F800001u)}) {
    for (std::size_t at : {0u, 7u, 8u, 20u}) {
      std::vector<float> y(21, 1.5f);
      y[at] = bad;
      std::uint16_t h[21];
      EXPECT_EQ(fp16_saturate_block_f16c(y.data(), y.size(), h), 1u) << "at " << at;
      EXPECT_EQ(h[at] & 0x7FFFu, 0x7BFFu) << "at " << at;  // as the software saturation writes
    }
  }
}

TEST(SimdDispatch, F16cAndPortableFusedFp16FeedbackGiveTheSameBytesAndResiduals) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "this CPU has no F16C (or no AVX2): only the software conversion runs";
  const auto codec = make_codec("fp16");
  const std::vector<float> cases = half_rounding_cases();
  for (const char* memory_spec : {"ef", "ef:scale=0.5", "ef21"}) {
    const auto memory = make_memory(memory_spec);
    for (std::size_t n : {4099u, 300007u}) {
      MemoryState fast, portable;
      for (std::uint32_t step = 0; step < 3; ++step) {
        // Rounding cases, rotated per step so residuals meet new values; bucket stays finite.
        std::vector<float> g(n);
        for (std::size_t i = 0; i < n; ++i) g[i] = cases[(i * 7919u + step * 104729u) % cases.size()];
        for (float& v : g) v = std::fabs(v) < 1e30f ? v : 1.0f;  // |p| < 2^50: the tiled path
        const SeedContext ctx{0x5EED, step, 1, 4};
        std::vector<std::uint8_t> msg_fast(codec->max_encoded_bytes(n)), msg_portable(msg_fast.size());
        std::size_t bytes_fast = 0, bytes_portable = 0;
        ASSERT_TRUE(memory->encode_step(*codec, g.data(), n, ctx, &fast, msg_fast.data(), msg_fast.size(),
                                        &bytes_fast).ok());
        {
          ForcePortableSimdForTest force;
          ASSERT_TRUE(memory->encode_step(*codec, g.data(), n, ctx, &portable, msg_portable.data(),
                                          msg_portable.size(), &bytes_portable).ok());
        }
        const std::string where = std::string(memory_spec) + " n=" + std::to_string(n) + " step " +
                                  std::to_string(step);
        ASSERT_EQ(bytes_fast, bytes_portable) << where;
        EXPECT_EQ(0, std::memcmp(msg_fast.data(), msg_portable.data(), bytes_fast)) << where;
        EXPECT_EQ(0, std::memcmp(fast.residual.data(), portable.residual.data(), 4 * n)) << where;
      }
    }
  }
}

}  // namespace
}  // namespace gradzip::quant
