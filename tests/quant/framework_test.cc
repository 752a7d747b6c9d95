// Tests of the codec framework itself: Philox known answers, spec parsing, header
// validation, the identity codec.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "quant/philox.h"
#include "quant/registry.h"
#include "quant/wire.h"

namespace gradzip::quant {
namespace {

// Known-answer vectors of Philox4x32-10 from Random123's kat_vectors file.
TEST(Philox, KnownAnswers) {
  auto r = philox4x32_10(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
  r = philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(r.v[0], 0x408f276du);
  EXPECT_EQ(r.v[1], 0x41c83b0eu);
  EXPECT_EQ(r.v[2], 0xa20bc7c6u);
  EXPECT_EQ(r.v[3], 0x6d5451fdu);
  r = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(r.v[0], 0xd16cfe09u);
  EXPECT_EQ(r.v[1], 0x94fdccebu);
  EXPECT_EQ(r.v[2], 0x5001e420u);
  EXPECT_EQ(r.v[3], 0x24126ea1u);
}

TEST(Philox, ContextFieldsSeparateStreams) {
  SeedContext a{1, 2, 3, 4};
  const std::uint32_t base = random_bits(a, RandomStream::kRounding, 5);
  SeedContext b = a;
  b.seed = 9;
  EXPECT_NE(random_bits(b, RandomStream::kRounding, 5), base);
  b = a;
  b.step = 9;
  EXPECT_NE(random_bits(b, RandomStream::kRounding, 5), base);
  b = a;
  b.worker = 9;
  EXPECT_NE(random_bits(b, RandomStream::kRounding, 5), base);
  b = a;
  b.bucket = 9;
  EXPECT_NE(random_bits(b, RandomStream::kRounding, 5), base);
  EXPECT_NE(random_bits(a, RandomStream::kSelection, 5), base);
  EXPECT_EQ(random_bits(a, RandomStream::kRounding, 5), base);
}

TEST(Spec, SplitsCompressorAndParams) {
  const auto c = parse_compressor_spec("ef+qsgd:bits=2,bucket=128");
  EXPECT_EQ(c.memory, "ef");
  EXPECT_EQ(c.codec, "qsgd:bits=2,bucket=128");
  const auto [name, raw] = split_spec(c.codec);
  EXPECT_EQ(name, "qsgd");
  ASSERT_EQ(raw.size(), 2u);
  EXPECT_EQ(raw[1].first, "bucket");
  EXPECT_EQ(raw[1].second, "128");
  EXPECT_EQ(parse_compressor_spec("identity").memory, "none");
  const auto d = parse_compressor_spec("dgc:momentum=0.9,clip=0+dgc:ratio=0.001");
  EXPECT_EQ(d.memory, "dgc:momentum=0.9,clip=0");
  EXPECT_EQ(d.codec, "dgc:ratio=0.001");
  const auto t = parse_compressor_spec("threshold:tau=1e+5");
  EXPECT_EQ(t.memory, "none");
  EXPECT_EQ(t.codec, "threshold:tau=1e+5");
  EXPECT_EQ(parse_compressor_spec("ef+threshold:tau=1e+5").codec, "threshold:tau=1e+5");
  EXPECT_THROW(parse_compressor_spec("+qsgd"), SpecError);
}

// Every registered memory x codec: the canonical spec of a compressor parses back to the
// same compressor (what the handshake and the run directory rely on).
TEST(Spec, CompressorSpecRoundTrips) {
  for (const auto* m : memory_entries()) {
    for (const auto* c : codec_entries()) {
      const std::string spec = m->name + "+" + c->name;
      const Compressor a = make_compressor(spec);
      const Compressor b = make_compressor(a.spec());
      EXPECT_EQ(a.spec(), b.spec()) << spec;
    }
  }
  const Compressor dgc = make_compressor("dgc+dgc:ratio=0.001", "dgc:momentum=0.5");
  EXPECT_EQ(make_compressor(dgc.spec()).spec(), dgc.spec());
  EXPECT_NE(dgc.spec().find("momentum=0.5"), std::string::npos) << dgc.spec();
}

TEST(Spec, BadSpecsNameTheProblem) {
  EXPECT_THROW(split_spec("qsgd:bits"), SpecError);
  EXPECT_THROW(split_spec(":bits=2"), SpecError);
  EXPECT_THROW(make_codec("nosuchcodec"), SpecError);
  try {
    make_codec("identity:bits=2");
    FAIL() << "expected SpecError";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown parameter 'bits'"), std::string::npos) << e.what();
  }
  std::vector<ParamInfo> decl = {{"bits", ParamKind::kInt, "4", 2, 8, {}, "bits per element"},
                                 {"norm", ParamKind::kEnum, "l2", 0, 0, {"l2", "max"}, "bucket norm"}};
  try {
    resolve_params("qsgd", decl, {{"bits", "9"}});
    FAIL() << "expected SpecError";
  } catch (const SpecError& e) {
    EXPECT_STREQ(e.what(), "qsgd: bits=9 is out of range; allowed: integer 2..8");
  }
  try {
    resolve_params("qsgd", decl, {{"norm", "l1"}});
    FAIL() << "expected SpecError";
  } catch (const SpecError& e) {
    EXPECT_STREQ(e.what(), "qsgd: norm=l1 is not allowed; allowed: one of l2|max");
  }
  EXPECT_THROW(resolve_params("qsgd", decl, {{"bits", "4"}, {"bits", "4"}}), SpecError);
  EXPECT_THROW(resolve_params("qsgd", decl, {{"bits", "4.5"}}), SpecError);
  const Params p = resolve_params("qsgd", decl, {{"norm", "max"}});
  EXPECT_EQ(p.get_int("bits"), 4);
  EXPECT_EQ(p.get_enum("norm"), "max");
  EXPECT_EQ(p.canonical(), "bits=4,norm=max");
}

TEST(Identity, RoundTripExactAndSize) {
  const auto codec = make_codec("identity");
  std::vector<float> x = {1.5f, -2.25f, 3e-38f, -0.0f, 1e30f, 7.0f, 0.1f};
  const auto msg = codec->encode(x.data(), x.size(), {});
  EXPECT_EQ(msg.size(), kHeaderBytes + 4 * x.size());
  std::vector<float> y(x.size(), 99.0f);
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), 4 * x.size()));
  std::vector<float> acc(x.size(), 1.0f);
  ASSERT_TRUE(decode_add_any(msg.data(), msg.size(), acc.data(), acc.size(), 2.0f).ok());
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(acc[i], 1.0f + 2.0f * x[i]);
}

TEST(Wire, ValidationErrors) {
  const auto codec = make_codec("identity");
  std::vector<float> x(33, 0.5f);
  const auto msg = codec->encode(x.data(), x.size(), {});
  std::vector<float> y(x.size());
  auto code = [&](std::vector<std::uint8_t> m, std::size_t n) {
    return codec->decode(m.data(), m.size(), y.data(), n).code();
  };
  EXPECT_EQ(code({msg.begin(), msg.begin() + 10}, 33), Errc::kTruncated);
  EXPECT_EQ(code({msg.begin(), msg.end() - 1}, 33), Errc::kTruncated);
  auto m = msg;
  m[0] ^= 1;
  EXPECT_EQ(code(m, 33), Errc::kBadMagic);
  m = msg;
  m[4] = 2;
  EXPECT_EQ(code(m, 33), Errc::kBadVersion);
  m = msg;
  m[kHeaderBytes + 5] ^= 0x10;
  EXPECT_EQ(code(m, 33), Errc::kBadChecksum);
  EXPECT_EQ(code(msg, 32), Errc::kSizeMismatch);
  m = msg;
  m.push_back(0);
  EXPECT_EQ(code(m, 33), Errc::kBadLength);
  std::vector<float> nan = {1.0f, NAN};
  std::vector<std::uint8_t> out(codec->max_encoded_bytes(2));
  std::size_t bytes = 0;
  EXPECT_EQ(codec->encode(nan.data(), 2, {}, out.data(), out.size(), &bytes).code(), Errc::kNonFiniteInput);
  EXPECT_EQ(codec->encode(x.data(), 2, {}, out.data(), 10, &bytes).code(), Errc::kBufferTooSmall);
}

}  // namespace
}  // namespace gradzip::quant
