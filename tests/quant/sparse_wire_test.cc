// The shared sparse payload: index encoding choice (u32 vs delta-varint), round trips in
// both encodings and every value format, and a typed error for each malformed message
// (with the output buffer left untouched).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "quant/registry.h"
#include "quant/sparse.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant {
namespace {

/// Spikes of value +-(i + 1) at the given positions of an otherwise zero vector.
std::vector<float> spikes(std::size_t n, const std::vector<std::size_t>& at) {
  std::vector<float> x(n, 0.0f);
  for (std::size_t j = 0; j < at.size(); ++j) x[at[j]] = (j % 2 ? -1.0f : 1.0f) * static_cast<float>(j + 1);
  return x;
}

bool uses_varint(const std::vector<std::uint8_t>& msg) { return (msg[7] & kFlagDeltaVarintIndices) != 0; }

TEST(SparseWire, VarintChosenForDenseRuns) {
  // 400 consecutive kept elements: first gap 1000 (2 bytes), then gaps of 0 (1 byte each).
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < 400; ++i) at.push_back(1000 + i);
  const auto x = spikes(9001, at);
  const auto codec = make_codec("threshold:tau=0.5");
  const auto msg = codec->encode(x.data(), x.size(), {});
  EXPECT_TRUE(uses_varint(msg));
  EXPECT_EQ(msg.size(), kHeaderBytes + 8 + 8 + 4 * 400 + (2 + 399));
  std::vector<float> y(x.size(), 3.0f);
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  EXPECT_EQ(y, x);
}

TEST(SparseWire, U32ChosenWhenVarintIsNotSmaller) {
  // Gaps >= 2^21 need 4 varint bytes: a tie with u32, which wins ties.
  const std::size_t n = 5000011;
  auto x = spikes(n, {2500000, 4900000});
  const auto codec = make_codec("threshold:tau=0.5");
  auto msg = codec->encode(x.data(), x.size(), {});
  EXPECT_FALSE(uses_varint(msg));
  EXPECT_EQ(msg.size(), kHeaderBytes + 8 + 8 + 4 * 2 + 4 * 2);
  std::vector<float> y(n, 3.0f);
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  EXPECT_EQ(y, x);
  // Gaps of 3 varint bytes (< 2^21): varint is smaller again.
  x = spikes(n, {2000000, 3999999, 4000000});
  msg = codec->encode(x.data(), x.size(), {});
  EXPECT_TRUE(uses_varint(msg));
  EXPECT_EQ(msg.size(), kHeaderBytes + 8 + 8 + 4 * 3 + (3 + 3 + 1));
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  EXPECT_EQ(y, x);
}

TEST(SparseWire, VarintGapsAreLeb128OfGapMinusOne) {
  const std::vector<std::uint64_t> idx = {0, 1, 129, 130 + 16384};
  // gaps: 0, 0, 127, 16384 -> 1 + 1 + 1 + 3 bytes
  EXPECT_EQ(varint_index_bytes(idx.data(), idx.size()), 6u);
  std::vector<float> x(20000, 0.0f);
  for (auto i : idx) x[i] = 2.0f;
  std::vector<std::uint8_t> block(sparse_block_max_bytes(x.size(), idx.size(), SparseValues::kFp16));
  std::uint64_t bytes = 0;
  std::uint8_t flags = 0;
  write_sparse_block(x.data(), x.size(), idx.data(), idx.size(), SparseValues::kFp16, block.data(), &bytes, &flags);
  ASSERT_EQ(flags, kFlagDeltaVarintIndices);
  ASSERT_EQ(bytes, 8u + 2 * 4 + 6);
  const std::uint8_t* v = block.data() + 8 + 8;
  EXPECT_EQ(std::vector<std::uint8_t>(v, v + 6), (std::vector<std::uint8_t>{0x00, 0x00, 0x7F, 0x80, 0x80, 0x01}));
}

TEST(SparseWire, ValueFormatsRoundTrip) {
  const auto x = testing::gaussian(3001, 9);
  for (const char* fmt : {"fp32", "fp16", "int8"}) {
    const auto codec = make_codec(std::string("topk:ratio=0.05,values=") + fmt);
    const auto msg = codec->encode(x.data(), x.size(), {});
    std::vector<float> y(x.size());
    ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok()) << fmt;
    const auto kept = testing::reference_topk(x, count_for_ratio(x.size(), 0.05));
    float max_kept = 0.0f;
    for (auto i : kept) max_kept = std::max(max_kept, std::fabs(x[i]));
    // fp32 exact; fp16 relative 2^-11; int8 absolute max/127/2 (round to nearest).
    const float abs_tol = std::string(fmt) == "int8" ? max_kept / 254.0f * 1.0001f : 0.0f;
    const float rel_tol = std::string(fmt) == "fp16" ? 1.0f / 2048.0f : 0.0f;
    std::size_t nonzero = 0;
    for (auto i : kept) {
      EXPECT_LE(std::fabs(y[i] - x[i]), abs_tol + rel_tol * std::fabs(x[i])) << fmt << " i=" << i;
    }
    for (float v : y) nonzero += v != 0.0f;
    EXPECT_LE(nonzero, kept.size());
    EXPECT_EQ(msg.size(), kHeaderBytes + 24 +
                              sparse_block_bytes(x.size(), kept.data(), kept.size(),
                                                 sparse_values_from_name(fmt), nullptr));
  }
}

TEST(SparseWire, Fp16SaturatesInsteadOfInf) {
  std::vector<float> x = {1e6f, -7e4f, 1.0f, 0.5f};
  const auto codec = make_codec("topk:k=2,values=fp16");
  const auto msg = codec->encode(x.data(), x.size(), {});
  std::vector<float> y(x.size());
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  EXPECT_EQ(y, (std::vector<float>{65504.0f, -65504.0f, 0.0f, 0.0f}));
}

// ---- malformed messages ------------------------------------------------------------

/// A topk (k = 3, n = 10) message with hand-written payload bytes.
struct HandMessage {
  std::vector<std::uint8_t> params = std::vector<std::uint8_t>(24, 0);
  std::vector<std::uint8_t> payload;
  std::uint8_t flags = 0;
  std::uint64_t numel = 10;
  HandMessage() { store_le<std::uint64_t>(params.data() + 16, 3); }
  void count(std::uint64_t c) { append(c); }
  template <typename T>
  void append(T v) {
    const std::size_t at = payload.size();
    payload.resize(at + sizeof(T));
    store_le<T>(payload.data() + at, v);
  }
  std::vector<std::uint8_t> bytes() const {
    std::vector<std::uint8_t> m(kHeaderBytes + params.size() + payload.size());
    std::copy(params.begin(), params.end(), m.begin() + kHeaderBytes);
    std::copy(payload.begin(), payload.end(), m.begin() + static_cast<std::ptrdiff_t>(kHeaderBytes + params.size()));
    write_header(m.data(), CodecId::kTopK, flags, numel, params.size(), payload.size());
    return m;
  }
};

HandMessage fp32_pairs(const std::vector<std::uint32_t>& idx) {
  HandMessage h;
  h.count(idx.size());
  for (std::size_t j = 0; j < idx.size(); ++j) h.append<float>(1.0f + static_cast<float>(j));
  for (auto i : idx) h.append<std::uint32_t>(i);
  return h;
}

HandMessage varint_pairs(const std::vector<std::uint8_t>& varints, std::uint64_t count = 3) {
  HandMessage h;
  h.flags = kFlagDeltaVarintIndices;
  h.count(count);
  for (std::uint64_t j = 0; j < count; ++j) h.append<float>(2.0f);
  for (auto b : varints) h.payload.push_back(b);
  return h;
}

Errc decode_code(const HandMessage& h) {
  const auto codec = make_codec("topk:k=3");
  const auto msg = h.bytes();
  std::vector<float> out(h.numel, 42.0f);
  const Status st = codec->decode(msg.data(), msg.size(), out.data(), out.size());
  std::vector<float> acc(h.numel, 42.0f);
  const Status st_add = codec->decode_add(msg.data(), msg.size(), acc.data(), acc.size(), 1.0f);
  EXPECT_EQ(st.code(), st_add.code());
  if (!st.ok()) {  // an error leaves the output untouched
    EXPECT_EQ(out, std::vector<float>(h.numel, 42.0f)) << st.to_string();
    EXPECT_EQ(acc, std::vector<float>(h.numel, 42.0f)) << st.to_string();
  }
  return st.code();
}

TEST(SparseMalformed, ValidHandMessagesDecode) {
  EXPECT_EQ(decode_code(fp32_pairs({1, 5, 9})), Errc::kOk);
  EXPECT_EQ(decode_code(varint_pairs({0x01, 0x03, 0x03})), Errc::kOk);  // indices 1, 5, 9
}

TEST(SparseMalformed, UnsortedIndices) {
  EXPECT_EQ(decode_code(fp32_pairs({1, 5, 2})), Errc::kIndicesUnsorted);
  EXPECT_EQ(decode_code(fp32_pairs({1, 5, 5})), Errc::kIndicesUnsorted);
}

TEST(SparseMalformed, IndexOutOfRange) {
  EXPECT_EQ(decode_code(fp32_pairs({1, 5, 10})), Errc::kIndexOutOfRange);
  EXPECT_EQ(decode_code(fp32_pairs({0xFFFFFFFFu, 1, 2})), Errc::kIndexOutOfRange);
  EXPECT_EQ(decode_code(varint_pairs({0x01, 0x03, 0x04})), Errc::kIndexOutOfRange);  // 1, 5, 10
  EXPECT_EQ(decode_code(varint_pairs({0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x00})), Errc::kIndexOutOfRange);
}

TEST(SparseMalformed, VarintOverrunAndForm) {
  EXPECT_EQ(decode_code(varint_pairs({0x01, 0x03, 0x83})), Errc::kTruncated);        // runs past the end
  EXPECT_EQ(decode_code(varint_pairs({0x01, 0x03})), Errc::kTruncated);              // fewer bytes than count
  EXPECT_EQ(decode_code(varint_pairs({0x81, 0x00, 0x01, 0x01})), Errc::kBadLength);  // overlong 0x81 0x00
  EXPECT_EQ(decode_code(varint_pairs({0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00, 0x00})), Errc::kBadLength);  // 6 bytes
  EXPECT_EQ(decode_code(varint_pairs({0x01, 0x01, 0x01, 0x01})), Errc::kBadLength);  // a byte left over
}

TEST(SparseMalformed, CountMismatch) {
  EXPECT_EQ(decode_code(fp32_pairs({1, 5})), Errc::kBadLength);         // params say k = 3
  EXPECT_EQ(decode_code(fp32_pairs({1, 2, 3, 4})), Errc::kBadLength);
  HandMessage h = fp32_pairs({1, 5, 9});
  store_le<std::uint64_t>(h.payload.data(), 11);  // count > numel
  EXPECT_EQ(decode_code(h), Errc::kBadLength);
  h = fp32_pairs({1, 5, 9});
  store_le<std::uint64_t>(h.payload.data(), 4);  // count disagrees with the bytes
  EXPECT_EQ(decode_code(h), Errc::kTruncated);
  h = fp32_pairs({1, 5, 9});
  h.payload.push_back(0);
  EXPECT_EQ(decode_code(h), Errc::kBadLength);
  h = fp32_pairs({1, 5, 9});
  h.payload.resize(5);
  EXPECT_EQ(decode_code(h), Errc::kTruncated);
}

TEST(SparseMalformed, NonFiniteValuesAndScale) {
  HandMessage h;
  h.params[0] = static_cast<std::uint8_t>(SparseValues::kInt8);
  h.count(3);
  h.append<float>(NAN);
  for (int j = 0; j < 3; ++j) h.payload.push_back(10);
  for (std::uint32_t i : {1u, 2u, 3u}) h.append<std::uint32_t>(i);
  EXPECT_EQ(decode_code(h), Errc::kNonFiniteScale);
  store_le<float>(h.payload.data() + 8, INFINITY);
  EXPECT_EQ(decode_code(h), Errc::kNonFiniteScale);
  store_le<float>(h.payload.data() + 8, 3e37f);  // 127 * scale overflows
  EXPECT_EQ(decode_code(h), Errc::kNonFiniteScale);
  store_le<float>(h.payload.data() + 8, -1.0f);
  EXPECT_EQ(decode_code(h), Errc::kBadParams);
  store_le<float>(h.payload.data() + 8, 0.5f);
  EXPECT_EQ(decode_code(h), Errc::kOk);
  h.payload[12] = 0x80;  // q = -128
  EXPECT_EQ(decode_code(h), Errc::kBadParams);
  HandMessage f = fp32_pairs({1, 5, 9});
  store_le<float>(f.payload.data() + 12, NAN);
  EXPECT_EQ(decode_code(f), Errc::kNonFiniteScale);
  HandMessage g;
  g.params[0] = static_cast<std::uint8_t>(SparseValues::kFp16);
  g.count(3);
  for (std::uint16_t v : {0x3C00, 0x7C00, 0x3C00}) g.append<std::uint16_t>(v);  // 1, Inf, 1
  for (std::uint32_t i : {1u, 2u, 3u}) g.append<std::uint32_t>(i);
  EXPECT_EQ(decode_code(g), Errc::kNonFiniteScale);
}

TEST(SparseMalformed, UnknownFlagsAndParams) {
  HandMessage h = fp32_pairs({1, 5, 9});
  h.flags = 0x02;
  EXPECT_EQ(decode_code(h), Errc::kBadParams);
  h = fp32_pairs({1, 5, 9});
  h.params[0] = 3;  // unknown value format
  EXPECT_EQ(decode_code(h), Errc::kBadParams);
  h = fp32_pairs({1, 5, 9});
  h.params[3] = 1;  // reserved
  EXPECT_EQ(decode_code(h), Errc::kBadParams);
  h = fp32_pairs({1, 5, 9});
  h.params.resize(20);
  EXPECT_EQ(decode_code(h), Errc::kBadParams);
}

}  // namespace
}  // namespace gradzip::quant
