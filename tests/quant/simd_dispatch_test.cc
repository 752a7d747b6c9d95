// The runtime-dispatched AVX2 loops (fp16/bf16/natural blocks, batched Philox, the fused
// error-feedback loops of ef/ef21, the Inf/NaN scans) and their portable SSE2 copies must
// produce the same bytes: the wire format and the residuals cannot depend on the CPU. On an AVX2 host both copies run here; elsewhere only the portable
// copy exists and the test is skipped with that reason.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quant/cpu.h"
#include "quant/feedback.h"
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

}  // namespace
}  // namespace gradzip::quant
