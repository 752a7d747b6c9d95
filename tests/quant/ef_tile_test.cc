// The fused error-feedback tile kernels (Codec::ef_tile, quant/ef_tile.h): which codecs
// have one; each kernel's payload, residual and verdict against the encoder, the decoder
// and classify_values on values chosen to hit every rounding, saturation and scale edge;
// the kernel path of Memory::encode_step (memory ef, scale 1) against the reference passes
// on buckets that take the streamed and the in-place message, on the AVX2 and the portable
// copies; and the F16C kernel under MXCSR's DAZ/FTZ.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
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

/// The codecs whose kernel memory ef takes (the dense, element-wise and sign families).
const char* const kWithKernel[] = {"identity", "fp16", "bf16", "int8", "sign", "scaled-sign", "int8:bucket=24",
                                   "scaled-sign:bucket=12"};

/// Random values over many binades with the edge values of every kernel spread through:
/// fp16 saturation and ties, half subnormals, bf16 ties, zeros of both signs, float
/// subnormals, large values (all |x| stay far below 2^50, so sums of two take the
/// kernels' path, not the scratch path), and whole int8/scaled-sign buckets of zeros, of
/// values below 2^-120, and of rounding ties (|x| * 127 / max a half-integer).
std::vector<float> edge_values(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-30, 17);
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = std::ldexp(normal(gen), exponent(gen));
  const float edges[] = {0.0f,
                         -0.0f,
                         65504.0f,
                         std::nextafter(65520.0f, 0.0f),
                         65520.0f,
                         -65536.0f,
                         0x1p-25f,
                         3 * 0x1p-26f,
                         -0x1p-24f,
                         1.0f + 0x1p-11f,   // fp16 tie, to even (1.0)
                         1.0f + 3 * 0x1p-11f,  // fp16 tie, to even (up)
                         1.0f + 0x1p-8f,    // bf16 tie
                         -1.0f - 3 * 0x1p-8f,
                         1e-40f,  // a float subnormal
                         -std::numeric_limits<float>::denorm_min(),
                         0x1p40f,
                         3.0e38f / 0x1p100f};
  for (std::size_t i = 0; i < n; i += 97) x[i] = edges[(i / 97) % (sizeof edges / sizeof edges[0])];
  // Whole buckets of 512 (the int8/scaled-sign default) with special contents.
  for (std::size_t b0 = 1024; b0 + 512 <= n; b0 += 512 * 7) {
    for (std::size_t j = 0; j < 512; ++j) x[b0 + j] = 0.0f;                                   // all zero
    if (b0 + 1024 <= n) {
      for (std::size_t j = 0; j < 512; ++j) x[b0 + 512 + j] = (j % 2 ? 1e-37f : -1e-37f);  // below 2^-120
    }
    if (b0 + 1536 <= n) {
      // max 127: x * 127 / 127 = x, and x = k + 0.5 is an int8 rounding tie.
      for (std::size_t j = 0; j < 512; ++j) x[b0 + 1024 + j] = static_cast<float>(j % 254) - 126.5f;
      x[b0 + 1024] = 127.0f;
    }
  }
  return x;
}

/// One reference EF step (memory ef, scale 1): p = g + e, msg = encode(p), e = p - decode(msg).
Status reference_ef_step(const Codec& codec, const std::vector<float>& g, const SeedContext& ctx,
                         std::vector<float>* e, std::vector<std::uint8_t>* msg) {
  const std::size_t n = g.size();
  if (e->size() != n) e->assign(n, 0.0f);
  std::vector<float> p(n), d(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = g[i] + (*e)[i];
  msg->assign(codec.max_encoded_bytes(n), 0);
  std::size_t bytes = 0;
  GZ_RETURN_IF_ERROR(codec.encode(p.data(), n, ctx, msg->data(), msg->size(), &bytes));
  msg->resize(bytes);
  GZ_RETURN_IF_ERROR(codec.decode(msg->data(), bytes, d.data(), n));
  for (std::size_t i = 0; i < n; ++i) (*e)[i] = p[i] - d[i];
  return Status::Ok();
}

TEST(EfTileKernels, TheDenseCodecsHaveOneAndTheUntiledOnesDoNot) {
  for (const char* spec : kWithKernel) {
    const auto codec = make_codec(spec);
    EXPECT_TRUE(codec->has_ef_tile()) << spec;
  }
  for (const auto* entry : codec_entries()) {
    const auto codec = make_codec(entry->name);
    // A kernel writes tiles: only a tiled codec can have one.
    if (codec->tile_alignment() == 0) {
      EXPECT_FALSE(codec->has_ef_tile()) << entry->name;
    }
  }
}

TEST(EfTileKernels, EachKernelWritesTheEncodersPayloadTheResidualAndTheVerdict) {
  for (const bool portable : {false, true}) {
    std::optional<ForcePortableSimdForTest> force;
    if (portable) force.emplace();
    for (const char* spec : kWithKernel) {
      const auto codec = make_codec(spec);
      for (const std::size_t n : {1u, 8u, 1000u, 5003u}) {
        const std::string where = std::string(spec) + " n=" + std::to_string(n) + (portable ? " portable" : "");
        const std::vector<float> g = edge_values(n, 11u + static_cast<unsigned>(n));
        const std::vector<float> e0 = edge_values(n, 12u + static_cast<unsigned>(n));
        std::vector<float> e = e0;
        std::vector<std::uint8_t> msg;
        const SeedContext ctx{0x5EED, 4, 1, 2};
        ASSERT_TRUE(reference_ef_step(*codec, g, ctx, &e, &msg).ok()) << where;
        // The whole message as one tile (a last tile may hold fewer than the alignment).
        std::vector<std::uint8_t> payload(msg.size() - kHeaderBytes);
        std::vector<float> next(n), scratch(n);
        const EfTile t{g.data(), e0.data(), n, payload.data(), next.data(), scratch.data()};
        ASSERT_EQ(codec->ef_tile(t, ctx), AbsClass::kSmall) << where;
        MessageView view;
        ASSERT_TRUE(parse_message(msg.data(), msg.size(), &view).ok()) << where;
        ASSERT_EQ(view.payload_bytes, payload.size() - view.params_bytes) << where;
        EXPECT_EQ(0, std::memcmp(payload.data(), view.payload, view.payload_bytes)) << where << ": payload";
        EXPECT_EQ(0, std::memcmp(next.data(), e.data(), 4 * n)) << where << ": residual";
      }
      // The verdict: as classify_values on p, wherever the value sits in the tile.
      const std::size_t n = 1024;
      const struct {
        float value;
        AbsClass want;
      } cases[] = {{std::numeric_limits<float>::quiet_NaN(), AbsClass::kNonFinite},
                   {-std::numeric_limits<float>::infinity(), AbsClass::kNonFinite},
                   {0x1p50f, AbsClass::kLarge},
                   {-3e38f, AbsClass::kLarge},
                   {std::nextafter(0x1p50f, 0.0f), AbsClass::kSmall}};
      for (const auto& c : cases) {
        for (const std::size_t at : {0u, 513u, 1023u}) {
          std::vector<float> g(n, 0.25f), e(n, -0.125f), next(n), scratch(n);
          g[at] = c.value;
          e[at] = 0.0f;
          std::vector<std::uint8_t> payload(codec->max_encoded_bytes(n));
          const EfTile t{g.data(), e.data(), n, payload.data(), next.data(), scratch.data()};
          EXPECT_EQ(codec->ef_tile(t, SeedContext{}), c.want) << spec << " value " << c.value << " at " << at;
        }
      }
    }
  }
}

/// Memory ef through encode_step (the kernel path) against reference_ef_step, 3 steps.
void expect_encode_step_matches(const Codec& codec, std::size_t n, const std::string& where) {
  const auto memory = make_memory("ef");
  MemoryState state;
  std::vector<float> e;
  for (std::uint32_t step = 0; step < 3; ++step) {
    const std::vector<float> g = edge_values(n, 40u + step);
    const SeedContext ctx{0x5EED, step, 1, 3};
    std::vector<std::uint8_t> want;
    ASSERT_TRUE(reference_ef_step(codec, g, ctx, &e, &want).ok()) << where;
    std::vector<std::uint8_t> got(codec.max_encoded_bytes(n));
    std::size_t bytes = 0;
    ASSERT_TRUE(memory->encode_step(codec, g.data(), n, ctx, &state, got.data(), got.size(), &bytes).ok()) << where;
    got.resize(bytes);
    EXPECT_EQ(got, want) << where << " step " << step << ": message";
    ASSERT_EQ(state.residual.size(), n) << where;
    EXPECT_EQ(0, std::memcmp(state.residual.data(), e.data(), 4 * n)) << where << " step " << step << ": residual";
  }
}

TEST(EfTileKernels, EncodeStepOnStreamedAndInPlaceBucketsMatchesTheReference) {
  // kStreamingNumel and above: streamed residual (and streamed one-region message).
  const std::size_t large = kStreamingNumel + 4099;
  for (const char* spec : kWithKernel) {
    const auto codec = make_codec(spec);
    for (const std::size_t n : {std::size_t{4099}, large}) {
      expect_encode_step_matches(*codec, n, std::string(spec) + " n=" + std::to_string(n));
      {
        ForcePortableSimdForTest force;
        expect_encode_step_matches(*codec, n, std::string(spec) + " n=" + std::to_string(n) + " portable");
      }
    }
  }
}

TEST(EfTileKernels, F16cFeedbackIgnoresFlushToZeroAndDenormalsAreZero) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "this CPU has no F16C (or no AVX2): only the software conversion runs";
  // Normal floats whose halves are subnormal: VCVTPH2PS must decode them exactly with
  // FTZ|DAZ set (libtorch's set_flush_denormal), as the software decode does.
  std::vector<float> g, e;
  for (std::uint32_t u = 0x33000000u; u < 0x38800000u; u += 0x301u) {
    g.push_back(bits_float(u));
    e.push_back(g.size() % 3 == 0 ? -0x1p-20f : 0.0f);
  }
  const std::size_t n = g.size();
  std::vector<std::uint16_t> h(n), h_soft(n);
  std::vector<float> next(n), next_soft(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float p = g[i] + e[i];
    const std::uint16_t r = float_to_fp16(p);
    h_soft[i] = (r & 0x7FFFu) >= 0x7C00u ? static_cast<std::uint16_t>((r & 0x8000u) | 0x7BFFu) : r;
    next_soft[i] = p - fp16_to_float(h_soft[i]);
  }
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040u);  // FTZ | DAZ
  fp16_feedback_block_f16c(g.data(), e.data(), n, h.data(), next.data());
  _mm_setcsr(csr);
  std::size_t subnormal_halves = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(h[i], h_soft[i]) << "g bits 0x" << std::hex << float_bits(g[i]);
    ASSERT_EQ(float_bits(next[i]), float_bits(next_soft[i])) << "g bits 0x" << std::hex << float_bits(g[i]);
    subnormal_halves += (h[i] & 0x7C00u) == 0 && (h[i] & 0x3FFu) != 0;
  }
  EXPECT_GT(subnormal_halves, n / 2);
}

}  // namespace
}  // namespace gradzip::quant
