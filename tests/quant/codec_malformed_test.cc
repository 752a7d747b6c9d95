// Malformed messages and bad input: every case returns its typed Errc and leaves the
// output untouched. Header-level cases run over every registered codec; codec-level
// cases (bad params, non-finite scales, inconsistent lengths) are crafted by editing the
// params/payload of a valid message and re-writing the header (write_header), so they
// get past the checksum and reach the codec's own validation. Ends with a randomized
// corruption test (10^5 mutations) that checks no decode crashes or writes out of bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "quant/registry.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

using namespace codec_testing;  // NOLINT(google-build-using-namespace): test helpers

constexpr float kSentinel = -31337.0f;

/// Decodes `msg` with `codec` (both decode and decode_add) into a sentinel-filled buffer
/// and returns the error code; asserts the buffer is untouched on error.
Errc decode_code(const Codec& codec, const std::vector<std::uint8_t>& msg, std::size_t n) {
  std::vector<float> out(n, kSentinel);
  const Errc c1 = codec.decode(msg.data(), msg.size(), out.data(), n).code();
  const Errc c2 = codec.decode_add(msg.data(), msg.size(), out.data(), n, 0.5f).code();
  EXPECT_EQ(c1, c2) << "decode and decode_add disagree";
  if (c1 != Errc::kOk) {
    for (float v : out) EXPECT_EQ(v, kSentinel) << "output written although decode failed";
  }
  return c1;
}

void put_f32(std::vector<std::uint8_t>& bytes, std::size_t off, float v) { store_le<float>(bytes.data() + off, v); }

TEST(CodecMalformed, HeaderLevelCasesEveryCodec) {
  for (const auto& spec : all_specs()) {
    SCOPED_TRACE(spec);
    const auto codec = make_codec(spec);
    const bool dense = is_dense(spec_name(spec));
    for (std::size_t n : {1, 45, 257}) {
      const auto x = test_gradient(n);
      const auto msg = codec->encode(x.data(), n, SeedContext{1, 2, 3, 4});
      ASSERT_EQ(decode_code(*codec, msg, n), Errc::kOk);
      // Truncated: inside the header, and by one byte.
      EXPECT_EQ(decode_code(*codec, {msg.begin(), msg.begin() + 39}, n), Errc::kTruncated);
      EXPECT_EQ(decode_code(*codec, {msg.begin(), msg.end() - 1}, n), Errc::kTruncated);
      // A flipped bit in the params/payload or in the numel field: checksum.
      auto m = msg;
      m.back() ^= 0x04;
      EXPECT_EQ(decode_code(*codec, m, n), Errc::kBadChecksum);
      m = msg;
      m[kHeaderBytes] ^= 0x80;
      EXPECT_EQ(decode_code(*codec, m, n), Errc::kBadChecksum);
      // Wrong version, bad magic.
      m = msg;
      store_le<std::uint16_t>(m.data() + 4, 2);
      EXPECT_EQ(decode_code(*codec, m, n), Errc::kBadVersion);
      m = msg;
      m[1] ^= 0xFF;
      EXPECT_EQ(decode_code(*codec, m, n), Errc::kBadMagic);
      const MessageParts parts = split_message(msg);
      // Unknown flag bit, with a valid checksum.
      MessageParts bad = parts;
      bad.flags |= 0x80;
      const Errc flags = decode_code(*codec, bad.build(), n);
      if (dense) {
        EXPECT_EQ(flags, Errc::kBadParams);
      } else {
        EXPECT_NE(flags, Errc::kOk);
      }
      // Payload one byte longer / shorter than the format says, with a valid checksum.
      bad = parts;
      bad.payload.push_back(0);
      const Errc longer = decode_code(*codec, bad.build(), n);
      if (dense || spec_name(spec) == "identity") {
        EXPECT_EQ(longer, Errc::kBadLength);
      } else {
        EXPECT_NE(longer, Errc::kOk);
      }
      if (!parts.payload.empty() && dense) {
        bad = parts;
        bad.payload.pop_back();
        EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadLength);
      }
      // Same message declared with another codec id: the codec refuses it.
      bad = parts;
      bad.codec = parts.codec == CodecId::kSign ? CodecId::kNatural : CodecId::kSign;
      EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kCodecMismatch);
    }
    // Non-finite input is refused by every codec.
    for (float poison : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity()}) {
      auto x = test_gradient(300);
      x[211] = poison;
      std::vector<std::uint8_t> out(codec->max_encoded_bytes(x.size()));
      std::size_t bytes = 0;
      EXPECT_EQ(codec->encode(x.data(), x.size(), {}, out.data(), out.size(), &bytes).code(), Errc::kNonFiniteInput);
    }
  }
}

// Codec-level cases of the dense codecs.
MessageParts parts_of(const std::string& spec, std::size_t n) {
  const auto codec = make_codec(spec);
  const auto x = test_gradient(n);
  return split_message(codec->encode(x.data(), n, SeedContext{5, 6, 7, 8}));
}

TEST(CodecMalformed, BucketedScalesAndParams) {
  // spec, scales per bucket, params offset of the u32 bucket
  struct Row {
    const char* spec;
    std::size_t scales;
    std::size_t bucket_off;
  };
  for (const Row& row : {Row{"int8:bucket=50", 1, 0}, Row{"qsgd:bits=4,bucket=50", 1, 4},
                         Row{"terngrad:bucket=50", 1, 0}, Row{"scaled-sign:bucket=50", 1, 0},
                         Row{"onebit:bucket=50", 2, 0}}) {
    SCOPED_TRACE(row.spec);
    const auto codec = make_codec(row.spec);
    const std::size_t n = 123;  // 3 buckets: 50, 50, 23
    const MessageParts ok = parts_of(row.spec, n);
    ASSERT_EQ(decode_code(*codec, ok.build(), n), Errc::kOk);
    // Non-finite / out-of-range / wrong-sign scales in the last bucket.
    const std::size_t last = 4 * row.scales * 2;
    for (float v : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), 0x1p127f}) {
      MessageParts bad = ok;
      put_f32(bad.payload, last, v);
      EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kNonFiniteScale) << v;
    }
    MessageParts bad = ok;
    put_f32(bad.payload, last, -1.0f);
    EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadParams);
    if (row.scales == 2) {  // onebit: the negative mean must be <= 0
      bad = ok;
      put_f32(bad.payload, last + 4, 1.0f);
      EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadParams);
    }
    // Bucket 0, bucket > 2^24, and a bucket that changes the expected payload length.
    for (std::uint32_t b : {0u, (1u << 24) + 1u}) {
      bad = ok;
      store_le<std::uint32_t>(bad.params.data() + row.bucket_off, b);
      EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadParams) << b;
    }
    bad = ok;
    store_le<std::uint32_t>(bad.params.data() + row.bucket_off, 10);
    EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadLength);
    // Params block of the wrong size.
    bad = ok;
    bad.params.push_back(0);
    EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadParams);
  }
}

TEST(CodecMalformed, QsgdParams) {
  const auto codec = make_codec("qsgd:bits=4,bucket=64,norm=l2");
  const std::size_t n = 200;
  const MessageParts ok = parts_of(codec->spec(), n);
  auto with = [&](std::size_t off, std::uint8_t v) {
    MessageParts bad = ok;
    bad.params[off] = v;
    return decode_code(*codec, bad.build(), n);
  };
  EXPECT_EQ(with(0, 1), Errc::kBadParams);  // bits < 2
  EXPECT_EQ(with(0, 9), Errc::kBadParams);  // bits > 8
  EXPECT_EQ(with(1, 2), Errc::kBadParams);  // unknown norm
  EXPECT_EQ(with(2, 1), Errc::kBadParams);  // reserved
  EXPECT_EQ(with(0, 3), Errc::kBadLength);  // valid bits, but the payload is 4-bit sized
  EXPECT_EQ(with(1, 1), Errc::kOk);         // norm id is informative only: max is valid
}

TEST(CodecMalformed, TernGradClip) {
  const auto codec = make_codec("terngrad:bucket=64");
  const std::size_t n = 100;
  const MessageParts ok = parts_of(codec->spec(), n);
  for (float clip : {-1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    MessageParts bad = ok;
    put_f32(bad.params, 4, clip);
    EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadParams) << clip;
  }
}

TEST(CodecMalformed, NonFiniteValuesInUnscaledCodecs) {
  const std::size_t n = 77;
  {  // fp16: an Inf half
    const auto codec = make_codec("fp16");
    MessageParts bad = parts_of("fp16", n);
    store_le<std::uint16_t>(bad.payload.data() + 2 * 40, 0x7C00);
    EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kNonFiniteScale);
    store_le<std::uint16_t>(bad.payload.data() + 2 * 40, 0xFE01);  // NaN
    EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kNonFiniteScale);
  }
  {  // bf16: an Inf
    const auto codec = make_codec("bf16");
    MessageParts bad = parts_of("bf16", n);
    store_le<std::uint16_t>(bad.payload.data() + 2 * 76, 0xFF80);
    EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kNonFiniteScale);
  }
  {  // natural: exponent code 255
    const auto codec = make_codec("natural");
    MessageParts bad = parts_of("natural", n);
    bad.payload[3] = 0xFF;
    EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kNonFiniteScale);
  }
  for (const char* spec : {"fp16", "bf16", "natural", "sign"}) {  // these take no params
    const auto codec = make_codec(spec);
    MessageParts bad = parts_of(spec, n);
    bad.params.push_back(1);
    EXPECT_EQ(decode_code(*codec, bad.build(), n), Errc::kBadParams) << spec;
  }
}

TEST(CodecMalformed, EncodeRefusesOverflowingStatistics) {
  // Finite input whose bucket statistic overflows fp32 is refused, never sent as Inf.
  std::vector<float> x(100, 3e19f);  // sum of squares overflows
  for (const char* spec : {"qsgd", "terngrad:clip=2.5"}) {
    const auto codec = make_codec(spec);
    std::vector<std::uint8_t> out(codec->max_encoded_bytes(x.size()));
    std::size_t bytes = 0;
    EXPECT_EQ(codec->encode(x.data(), x.size(), {}, out.data(), out.size(), &bytes).code(), Errc::kNonFiniteInput)
        << spec;
  }
  std::vector<float> huge(10, 0x1p127f);
  for (const char* spec : {"int8", "qsgd:norm=max", "terngrad", "scaled-sign", "onebit"}) {
    const auto codec = make_codec(spec);
    std::vector<std::uint8_t> out(codec->max_encoded_bytes(huge.size()));
    std::size_t bytes = 0;
    EXPECT_EQ(codec->encode(huge.data(), huge.size(), {}, out.data(), out.size(), &bytes).code(),
              Errc::kNonFiniteInput)
        << spec;
  }
}

// Randomized corruption: 10^5 mutations (bit flips, byte changes, truncations, extensions,
// header-field changes; half re-checksummed so they reach the codec's validation) of valid
// messages of every tested spec. No decode may crash (run under the sanitizer build too),
// write outside [out, out + n), or touch the output when it fails; dense codecs must also
// never accept a message that decodes to a non-finite value.
TEST(CodecMalformed, RandomCorruptionNeverCrashesOrWritesOutOfBounds) {
  struct Sample {
    std::unique_ptr<Codec> codec;
    bool strict;
    std::size_t n;
    std::vector<std::uint8_t> msg;
  };
  std::vector<Sample> samples;
  for (const auto& spec : all_specs()) {
    for (std::size_t n : {1, 13, 100, 1029}) {
      auto codec = make_codec(spec);
      const auto x = test_gradient(n, static_cast<std::uint32_t>(n));
      auto msg = codec->encode(x.data(), n, SeedContext{11, 12, 13, 14});
      samples.push_back({std::move(codec), strict_value_codecs().count(spec_name(spec)) != 0, n, std::move(msg)});
    }
  }
  constexpr std::size_t kGuard = 16;
  constexpr int kIterations = 100000;
  SeedContext rng_ctx{0xF022ull, 0, 0, 0};
  std::uint64_t counter = 0;
  auto rnd = [&]() { return random_bits(rng_ctx, RandomStream::kSampling, counter++); };
  std::vector<float> buf, pattern;
  int accepted = 0, refused = 0;
  for (int it = 0; it < kIterations; ++it) {
    const Sample& s = samples[rnd() % samples.size()];
    std::vector<std::uint8_t> m = s.msg;
    const std::uint32_t kind = rnd() % 6;
    const std::size_t mutations = 1 + rnd() % 3;
    for (std::size_t k = 0; k < mutations && !m.empty(); ++k) {
      switch (kind) {
        case 0: m[rnd() % m.size()] ^= static_cast<std::uint8_t>(1u << (rnd() % 8)); break;  // bit flip
        case 1: m[rnd() % m.size()] = static_cast<std::uint8_t>(rnd()); break;               // byte change
        case 2: m.resize(rnd() % m.size()); break;                                           // truncation
        case 3: m.push_back(static_cast<std::uint8_t>(rnd())); break;                        // extension
        case 4: {  // payload byte change biased to the start (scales, params)
          const std::size_t span = std::min<std::size_t>(m.size(), kHeaderBytes + 24);
          m[kHeaderBytes / 2 + rnd() % (span - kHeaderBytes / 2)] = static_cast<std::uint8_t>(rnd());
          break;
        }
        default: {  // header length fields
          if (m.size() >= kHeaderBytes) {
            const std::size_t field = (rnd() % 3 == 0) ? 8 : (rnd() % 2 ? 16 : 24);
            m[field + rnd() % 4] ^= static_cast<std::uint8_t>(1u << (rnd() % 8));
          }
          break;
        }
      }
    }
    // Half of the mutations get a valid checksum over the declared ranges, when the
    // declared lengths fit the buffer (so they reach codec-level validation).
    if ((rnd() & 1u) && m.size() >= kHeaderBytes) {
      const auto pb = load_le<std::uint32_t>(m.data() + 24);
      const auto lb = load_le<std::uint64_t>(m.data() + 16);
      if (pb <= m.size() - kHeaderBytes && lb <= m.size() - kHeaderBytes - pb) {
        store_le<std::uint64_t>(m.data() + 32, message_checksum(m.data(), pb, lb));
      }
    }
    const bool accumulate = (it & 1) != 0;
    pattern.assign(s.n + 2 * kGuard, 0.0f);
    for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<float>(i) * 0.25f - 3.0f;
    buf = pattern;
    float* out = buf.data() + kGuard;
    const Status st = accumulate ? s.codec->decode_add(m.data(), m.size(), out, s.n, 1.5f)
                                 : s.codec->decode(m.data(), m.size(), out, s.n);
    if (!st.ok()) {
      ++refused;
      ASSERT_EQ(0, std::memcmp(buf.data(), pattern.data(), 4 * buf.size()))
          << s.codec->spec() << ": output modified by a failed decode (" << st.to_string() << ")";
      continue;
    }
    ++accepted;
    ASSERT_EQ(0, std::memcmp(buf.data(), pattern.data(), 4 * kGuard)) << s.codec->spec() << ": wrote before out";
    ASSERT_EQ(0, std::memcmp(buf.data() + kGuard + s.n, pattern.data() + kGuard + s.n, 4 * kGuard))
        << s.codec->spec() << ": wrote past out + n";
    if (s.strict && !accumulate) {  // (acc + 1.5 * v may overflow for a large valid v)
      for (std::size_t i = 0; i < s.n; ++i) ASSERT_TRUE(std::isfinite(out[i])) << s.codec->spec() << " element " << i;
    }
  }
  // Both outcomes must occur, or the mutations are not reaching the codecs.
  EXPECT_GT(accepted, kIterations / 100);
  EXPECT_GT(refused, kIterations / 2);
}

}  // namespace
}  // namespace gradzip::quant
