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

/// The codecs whose kernel memory ef takes (the dense, element-wise and sign families),
/// with odd bucket sizes and every packing width of the bucketed ones.
const char* const kWithKernel[] = {"identity",
                                   "fp16",
                                   "bf16",
                                   "int8",
                                   "sign",
                                   "scaled-sign",
                                   "int8:bucket=24",
                                   "scaled-sign:bucket=12",
                                   "onebit",
                                   "onebit:bucket=7",
                                   "qsgd",
                                   "qsgd:bits=2,bucket=24",
                                   "qsgd:bits=3,bucket=5,norm=max",
                                   "qsgd:bits=8,bucket=100",
                                   "terngrad",
                                   "terngrad:bucket=12,clip=2.5",
                                   "natural"};
/// A scale of memory ef other than 1 (the kernels with Codec::ef_tile_scales take it),
/// and the memory spec that sets it (0.3 parses to the same float).
constexpr float kScale = 0.3f;
constexpr const char* kScaledMemory = "ef:scale=0.3";

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

/// One reference EF step (memory ef, scale s): p = (g + e) * s, msg = encode(p),
/// e = p / s - decode(msg) (at s = 1 the multiply and divide are exact: p = g + e, e = p - d).
Status reference_ef_step(const Codec& codec, const std::vector<float>& g, const SeedContext& ctx, float s,
                         std::vector<float>* e, std::vector<std::uint8_t>* msg) {
  const std::size_t n = g.size();
  if (e->size() != n) e->assign(n, 0.0f);
  std::vector<float> p(n), d(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = (g[i] + (*e)[i]) * s;
  msg->assign(codec.max_encoded_bytes(n), 0);
  std::size_t bytes = 0;
  GZ_RETURN_IF_ERROR(codec.encode(p.data(), n, ctx, msg->data(), msg->size(), &bytes));
  msg->resize(bytes);
  GZ_RETURN_IF_ERROR(codec.decode(msg->data(), bytes, d.data(), n));
  for (std::size_t i = 0; i < n; ++i) (*e)[i] = p[i] / s - d[i];
  return Status::Ok();
}

/// The scales a codec's kernel is tested at: 1, and kScale where it takes one.
std::vector<float> scales_of(const Codec& codec) {
  if (codec.ef_tile_scales()) return {1.0f, kScale};
  return {1.0f};
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
    // Memory ef's default scale over an unbiased codec is 1/(1+omega): its kernel must take it.
    if (codec->has_ef_tile() && codec->unbiased()) {
      EXPECT_TRUE(codec->ef_tile_scales()) << entry->name;
    }
  }
}

/// The kernel on the tile [t0, n) of a message of n elements (t0 a multiple of the codec's
/// tile_alignment(), ctx.first_element = t0: the random words of its place) at memory ef's
/// scale s, against the reference step on the whole message: the tile's two regions are
/// the message's bytes of its elements, its residual the reference's.
void expect_kernel_matches(const Codec& codec, std::size_t n, std::size_t t0, float s, const std::string& where) {
  const std::vector<float> g = edge_values(n, 11u + static_cast<unsigned>(n));
  const std::vector<float> e0 = edge_values(n, 12u + static_cast<unsigned>(n));
  std::vector<float> e = e0;
  std::vector<std::uint8_t> msg;
  SeedContext ctx{0x5EED, 4, 1, 2};
  ASSERT_TRUE(reference_ef_step(codec, g, ctx, s, &e, &msg).ok()) << where;
  const std::size_t cnt = n - t0;
  std::vector<std::uint8_t> payload(codec.max_encoded_bytes(cnt));
  std::vector<float> next(cnt), scratch(cnt);
  const EfTile t{g.data() + t0, e0.data() + t0, cnt, payload.data(), next.data(), scratch.data(), s};
  ctx.first_element = t0;
  ASSERT_EQ(codec.ef_tile(t, ctx), AbsClass::kSmall) << where;
  MessageView view;
  ASSERT_TRUE(parse_message(msg.data(), msg.size(), &view).ok()) << where;
  const std::size_t r0 = codec.tile_region_bytes(0, n), r1 = codec.tile_region_bytes(1, n);
  ASSERT_EQ(view.payload_bytes, r0 + r1) << where;
  const std::size_t a0 = codec.tile_region_bytes(0, t0), a1 = codec.tile_region_bytes(1, t0);
  EXPECT_EQ(0, std::memcmp(payload.data(), view.payload + a0, r0 - a0)) << where << ": region 0";
  EXPECT_EQ(0, std::memcmp(payload.data() + (r0 - a0), view.payload + r0 + a1, r1 - a1)) << where << ": region 1";
  EXPECT_EQ(0, std::memcmp(next.data(), e.data() + t0, 4 * cnt)) << where << ": residual";
}

TEST(EfTileKernels, EachKernelWritesTheEncodersPayloadTheResidualAndTheVerdict) {
  for (const bool portable : {false, true}) {
    std::optional<ForcePortableSimdForTest> force;
    if (portable) force.emplace();
    for (const char* spec : kWithKernel) {
      const auto codec = make_codec(spec);
      const std::size_t align = codec->tile_alignment();
      for (const std::size_t n : {1u, 8u, 1000u, 5003u}) {
        // The whole message as one tile (a last tile may hold fewer than the alignment),
        // and its second half from an aligned start.
        for (const std::size_t t0 : {std::size_t{0}, n / 2 / align * align}) {
          for (const float s : scales_of(*codec)) {
            expect_kernel_matches(*codec, n, t0, s,
                                  std::string(spec) + " n=" + std::to_string(n) + " t0=" + std::to_string(t0) +
                                      " scale " + std::to_string(s) + (portable ? " portable" : ""));
          }
        }
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

/// Memory ef at scale s through encode_step (the kernel path) against reference_ef_step,
/// 3 steps.
void expect_encode_step_matches(const Codec& codec, std::size_t n, float s, const std::string& where) {
  const auto memory = make_memory(s == 1.0f ? "ef" : kScaledMemory);
  MemoryState state;
  std::vector<float> e;
  for (std::uint32_t step = 0; step < 3; ++step) {
    const std::vector<float> g = edge_values(n, 40u + step);
    const SeedContext ctx{0x5EED, step, 1, 3};
    std::vector<std::uint8_t> want;
    ASSERT_TRUE(reference_ef_step(codec, g, ctx, s, &e, &want).ok()) << where;
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
      for (const float s : scales_of(*codec)) {
        const std::string where = std::string(spec) + " n=" + std::to_string(n) + " scale " + std::to_string(s);
        expect_encode_step_matches(*codec, n, s, where);
        ForcePortableSimdForTest force;
        expect_encode_step_matches(*codec, n, s, where + " portable");
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
