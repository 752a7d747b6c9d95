// The "Adding a codec" example of README.md, compiled and tested. The region between the
// readme-example markers is quoted verbatim in README.md (ReadmeExample.ReadmeQuotesThisFile
// fails when they differ). The codec is registered only in this test (mycodec_entry()),
// not in quant/registry.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/quant/codec_test_util.h"

// [readme-example-begin]
// quant/codecs/mycodec.cc: linear quantization to 2^bits levels over [-s, s], s = max |x|.
#include <algorithm>
#include <cmath>

#include "quant/bitpack.h"
#include "quant/codecs/codecs.h"
namespace gradzip::quant {
// A real codec adds `kMyCodec = 15,` to CodecId in quant/wire.h and uses CodecId::kMyCodec.
constexpr CodecId kMyCodec = static_cast<CodecId>(200);
namespace {
class MyCodec final : public Codec {
 public:
  explicit MyCodec(const Params& p) : bits_(static_cast<unsigned>(p.get_int("bits"))) {}
  CodecId id() const override { return kMyCodec; }
  std::string spec() const override { return "mycodec:bits=" + std::to_string(bits_); }

 protected:
  std::size_t params_bytes() const override { return 1; }  // params block: bits
  void write_params(std::uint8_t* dst) const override { dst[0] = static_cast<std::uint8_t>(bits_); }
  // Payload: fp32 scale s, then n codes of `bits` bits (quant/bitpack.h bit order).
  std::size_t max_payload_bytes(std::size_t n) const override { return 4 + packed_bytes(n, bits_); }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext&, PayloadSink* sink) const override {
    if (!all_finite(grad, n)) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
    float s = 0.0f;
    for (std::size_t i = 0; i < n; ++i) s = std::max(s, std::fabs(grad[i]));
    store_le<float>(sink->data, s);
    const float levels = static_cast<float>((1u << bits_) - 1);
    std::uint8_t* codes = sink->data + 4;
    std::fill(codes, codes + packed_bytes(n, bits_), std::uint8_t{0});
    for (std::size_t i = 0; i < n; ++i) {
      const float q = s > 0.0f ? std::nearbyint((grad[i] / s + 1.0f) * 0.5f * levels) : 0.0f;
      const std::size_t code = static_cast<std::size_t>(q);
      for (unsigned b = 0; b < bits_; ++b) {
        const std::size_t bit = i * bits_ + b;
        if ((code >> b) & 1u) codes[bit / 8] = static_cast<std::uint8_t>(codes[bit / 8] | (1u << (bit % 8)));
      }
    }
    sink->bytes = max_payload_bytes(n);
    return Status::Ok();
  }

  // Reads bits from the message (not bits_), validates everything, then writes.
  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    if (m.params_bytes != 1) return Status(Errc::kBadParams, "mycodec takes 1 params byte");
    const unsigned bits = m.params[0];
    if (bits < 1 || bits > 8) return Status(Errc::kBadParams, "bits must be 1..8");
    if (m.flags != 0) return Status(Errc::kBadParams, "unknown header flags");
    if (m.payload_bytes != 4 + packed_bytes(m.numel, bits)) return Status(Errc::kBadLength, "bad payload length");
    const float s = load_le<float>(m.payload);
    if (!std::isfinite(s) || s < 0.0f) return Status(Errc::kNonFiniteScale, "scale is not finite and >= 0");
    const float levels = static_cast<float>((1u << bits) - 1);
    const std::uint8_t* codes = m.payload + 4;
    for (std::size_t i = 0; i < m.numel; ++i) {
      unsigned code = 0;
      for (unsigned b = 0; b < bits; ++b) {
        const std::size_t bit = i * bits + b;
        code |= ((codes[bit / 8] >> (bit % 8)) & 1u) << b;
      }
      const float v = (2.0f * static_cast<float>(code) / levels - 1.0f) * s;
      if (accumulate) {
        emit<true>(out, i, v, scale);
      } else {
        emit<false>(out, i, v, scale);
      }
    }
    return Status::Ok();
  }

 private:
  unsigned bits_;
};
}  // namespace
const CodecEntry& mycodec_entry() {
  static const CodecEntry entry{"mycodec", kMyCodec, "bits-bit linear levels over [-max|x|, max|x|]",
                                "Author et al. 2024, venue",
                                {{"bits", ParamKind::kInt, "4", 1, 8, {}, "bits per element"}},
                                [](const Params& p) -> std::unique_ptr<Codec> { return std::make_unique<MyCodec>(p); }};
  return entry;
}
}  // namespace gradzip::quant
// [readme-example-end]

namespace gradzip::quant {
namespace {

using codec_testing::split_message;
using codec_testing::test_gradient;

std::unique_ptr<Codec> make_mycodec(const RawParams& raw) {
  const CodecEntry& e = mycodec_entry();
  return e.make(resolve_params(e.name, e.params, raw));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The lines strictly between `begin` and `end` (both searched from `from`).
std::string between(const std::string& text, const std::string& from, const std::string& begin,
                    const std::string& end) {
  const std::size_t f = text.find(from);
  if (f == std::string::npos) return "<missing " + from + ">";
  const std::size_t b = text.find(begin, f);
  if (b == std::string::npos) return "<missing " + begin + ">";
  const std::size_t start = b + begin.size();
  const std::size_t e = text.find(end, start);
  if (e == std::string::npos) return "<missing " + end + ">";
  return text.substr(start, e - start);
}

TEST(ReadmeExample, ReadmeQuotesThisFile) {
  const std::string src = read_text(GRADZIP_SOURCE_DIR "/tests/quant/readme_example_codec_test.cc");
  const std::string readme = read_text(GRADZIP_SOURCE_DIR "/README.md");
  const std::string region = between(src, "\n// [readme-example-begin]\n", "// [readme-example-begin]\n",
                                     "// [readme-example-end]\n");
  const std::string quoted = between(readme, "\n## Adding a codec\n", "```cpp\n", "```\n");
  EXPECT_GT(region.size(), 1000u);
  EXPECT_EQ(quoted, region) << "README.md's 'Adding a codec' block must equal the marked region of "
                               "tests/quant/readme_example_codec_test.cc";
}

TEST(ReadmeExample, EntryParamsAndSpec) {
  EXPECT_EQ(make_mycodec({})->spec(), "mycodec:bits=4");
  EXPECT_EQ(make_mycodec({{"bits", "2"}})->spec(), "mycodec:bits=2");
  EXPECT_THROW(make_mycodec({{"bits", "9"}}), SpecError);
  EXPECT_THROW(make_mycodec({{"bits", "0"}}), SpecError);
  EXPECT_EQ(find_codec("mycodec"), nullptr);  // test-local: not in the registry table
}

TEST(ReadmeExample, RoundTripWithinHalfStep) {
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
      ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), n).ok()) << bits << " n=" << n;
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

TEST(ReadmeExample, MessageSizeFormula) {
  for (unsigned b = 1; b <= 8; ++b) {
    const auto codec = make_mycodec({{"bits", std::to_string(b)}});
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{9}, std::size_t{1000}}) {
      const std::vector<float> x = test_gradient(n, 1);
      const auto msg = codec->encode(x.data(), n, {});
      const std::size_t expected = kHeaderBytes + 1 + 4 + (n * b + 7) / 8;
      EXPECT_EQ(msg.size(), expected) << "bits=" << b << " n=" << n;
      EXPECT_EQ(codec->max_encoded_bytes(n), expected);
    }
  }
}

TEST(ReadmeExample, MalformedMessagesGiveTypedErrors) {
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
  // Not registered: a receiver that looks codecs up by wire id refuses it.
  EXPECT_EQ(decode_any(msg.data(), msg.size(), y.data(), y.size()).code(), Errc::kUnknownCodec);
  const std::vector<float> bad = {1.0f, INFINITY};
  std::vector<std::uint8_t> out(codec->max_encoded_bytes(2));
  std::size_t bytes = 0;
  EXPECT_EQ(codec->encode(bad.data(), 2, {}, out.data(), out.size(), &bytes).code(), Errc::kNonFiniteInput);
}

}  // namespace
}  // namespace gradzip::quant
