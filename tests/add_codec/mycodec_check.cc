// The README's example codec, added through the README's steps (tests/add_codec/
// readme_steps.cmake builds this program against that copy of the tree): the registry
// lists it under its wire id, spec strings reach it, it round-trips a gradient within half
// a quantization step, its messages have the size its entry documents, and malformed
// messages get typed errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/registry.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

using codec_testing::split_message;
using codec_testing::test_gradient;

std::unique_ptr<Codec> make_mycodec(const RawParams& raw) { return make_codec("mycodec", raw); }

TEST(AddedCodec, RegistryListsItLastUnderItsWireId) {
  const CodecEntry* e = find_codec("mycodec");
  ASSERT_NE(e, nullptr) << "the registry does not list mycodec";
  EXPECT_EQ(e->id, CodecId::kMyCodec);
  EXPECT_EQ(find_codec(CodecId::kMyCodec), e);
  EXPECT_EQ(codec_entries().back(), e) << "the appended row is last in `gradzip compressors`";
  const std::string listing = describe_registry();
  EXPECT_NE(listing.find("  mycodec [" + std::to_string(static_cast<int>(CodecId::kMyCodec)) + "]"),
            std::string::npos)
      << listing;
}

TEST(AddedCodec, SpecStringsReachIt) {
  EXPECT_EQ(make_mycodec({})->spec(), "mycodec:bits=4");
  EXPECT_EQ(make_codec("mycodec:bits=2")->spec(), "mycodec:bits=2");
  EXPECT_THROW(make_codec("mycodec:bits=9"), SpecError);
  EXPECT_THROW(make_codec("mycodec:bits=0"), SpecError);
  EXPECT_EQ(make_compressor("ef+mycodec:bits=2").spec(), "ef+mycodec:bits=2");
}

TEST(AddedCodec, RoundTripWithinHalfStep) {
  for (const char* bits : {"1", "2", "3", "4", "7", "8"}) {
    const auto codec = make_mycodec({{"bits", bits}});
    const unsigned b = static_cast<unsigned>(std::stoi(bits));
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{1001}}) {
      const std::vector<float> x = test_gradient(n, 3);
      const auto msg = codec->encode(x.data(), n, {});
      float s = 0.0f;
      for (float v : x) s = std::max(s, std::fabs(v));
      const float half_step = s / static_cast<float>((1u << b) - 1);
      std::vector<float> y(n, 99.0f);
      // decode_any looks the codec up by the wire id in the message.
      ASSERT_TRUE(decode_any(msg.data(), msg.size(), y.data(), n).ok()) << bits << " n=" << n;
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(y[i], x[i], half_step * 1.001f + 1e-6f) << "bits=" << bits << " i=" << i;
      }
      std::vector<float> acc(n, 1.0f);
      ASSERT_TRUE(codec->decode_add(msg.data(), msg.size(), acc.data(), n, -0.5f).ok());
      for (std::size_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(acc[i], 1.0f - 0.5f * y[i]);
    }
  }
  // bits=1 has the two levels -s and s: they round-trip exactly.
  const auto one = make_mycodec({{"bits", "1"}});
  const std::vector<float> x = {-2.0f, 2.0f, 2.0f, -2.0f};
  const auto msg = one->encode(x.data(), x.size(), {});
  std::vector<float> y(x.size());
  ASSERT_TRUE(one->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  EXPECT_EQ(y, x);
}

TEST(AddedCodec, MessageSizeIsTheDocumentedFormula) {
  for (unsigned b = 1; b <= 8; ++b) {
    const auto codec = make_mycodec({{"bits", std::to_string(b)}});
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{9}, std::size_t{1000}}) {
      const std::vector<float> x = test_gradient(n, 1);
      const auto msg = codec->encode(x.data(), n, {});
      const std::size_t expected = kHeaderBytes + 1 + 4 + (n * b + 7) / 8;
      EXPECT_EQ(msg.size(), expected) << "bits=" << b << " n=" << n;
      EXPECT_EQ(codec->max_encoded_bytes(n), expected);
      std::size_t documented = 0;
      std::string why;
      ASSERT_TRUE(codec_testing::documented_size(*find_codec("mycodec"), codec_testing::codec_params(*codec), n,
                                                 x.data(), SeedContext{}, &documented, &why))
          << why;
      EXPECT_EQ(documented, expected) << "bits=" << b << " n=" << n;
    }
  }
}

TEST(AddedCodec, MalformedMessagesGiveTypedErrors) {
  const auto codec = make_mycodec({{"bits", "3"}});
  const std::vector<float> x = test_gradient(20, 2);
  const auto msg = codec->encode(x.data(), x.size(), {});
  const auto parts = split_message(msg);
  std::vector<float> y(x.size(), 7.0f);
  auto code = [&](const codec_testing::MessageParts& p) {
    const auto m = p.build();
    return codec->decode(m.data(), m.size(), y.data(), y.size()).code();
  };
  EXPECT_EQ(code(parts), Errc::kOk);
  const std::vector<float> decoded = y;
  auto p = parts;
  p.params[0] = 0;
  EXPECT_EQ(code(p), Errc::kBadParams);
  p.params[0] = 9;
  EXPECT_EQ(code(p), Errc::kBadParams);
  p = parts;
  p.params.push_back(0);
  EXPECT_EQ(code(p), Errc::kBadParams);
  p = parts;
  p.flags = 1;
  EXPECT_EQ(code(p), Errc::kBadParams);
  p = parts;
  p.payload.pop_back();
  EXPECT_EQ(code(p), Errc::kBadLength);
  p = parts;
  p.params[0] = 4;  // 20 x 4 bits needs 10 code bytes, the message has 8
  EXPECT_EQ(code(p), Errc::kBadLength);
  p = parts;
  store_le<float>(p.payload.data(), NAN);
  EXPECT_EQ(code(p), Errc::kNonFiniteScale);
  store_le<float>(p.payload.data(), -1.0f);
  EXPECT_EQ(code(p), Errc::kNonFiniteScale);
  EXPECT_EQ(y, decoded);  // errors leave the output untouched
  const std::vector<float> bad = {1.0f, INFINITY};
  std::vector<std::uint8_t> out(codec->max_encoded_bytes(2));
  std::size_t bytes = 0;
  EXPECT_EQ(codec->encode(bad.data(), 2, {}, out.data(), out.size(), &bytes).code(), Errc::kNonFiniteInput);
}

}  // namespace
}  // namespace gradzip::quant
