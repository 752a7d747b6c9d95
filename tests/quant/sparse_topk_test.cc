// topk keeps exactly the k largest |x| (ties: smaller index first), compared with a
// sort-based reference, across sizes that are not round numbers and tie-heavy inputs.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "quant/registry.h"
#include "quant/sparse.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant {
namespace {

using testing::gaussian;
using testing::reference_topk;
using testing::tied;

struct TopKCase {
  std::size_t n;
  bool ties;
};

class TopKExact : public ::testing::TestWithParam<TopKCase> {};

/// Decoded positions that are nonzero must be exactly the reference set (inputs have
/// no kept zero unless the test says so), with the original values.
void expect_topk(const std::vector<float>& x, const std::vector<std::uint64_t>& order, std::uint64_t k,
                 const std::string& spec) {
  const auto codec = make_codec(spec);
  const auto msg = codec->encode(x.data(), x.size(), SeedContext{});
  std::vector<float> y(x.size(), 7.0f);
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  const auto want = reference_topk(order, k);
  // Same set: every reference position carries x, everything else is 0 (fp32 lossless).
  std::vector<char> kept(x.size(), 0);
  for (auto i : want) kept[i] = 1;
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float expect = kept[i] ? x[i] : 0.0f;
    if (std::memcmp(&expect, &y[i], 4) != 0 && !(expect == 0.0f && y[i] == 0.0f)) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0u) << spec << " n=" << x.size();
  // The selection itself (independent of the wire): exact index list.
  std::vector<std::uint64_t> got;
  select_top_keys(x.size(), k, [&](std::uint64_t i) { return abs_key(x[i]); }, &got);
  EXPECT_EQ(got, want) << "n=" << x.size() << " k=" << k;
  // Message size = header + params + sparse block of exactly these indices.
  bool varint = false;
  EXPECT_EQ(msg.size(), kHeaderBytes + 24 + sparse_block_bytes(x.size(), want.data(), want.size(),
                                                                SparseValues::kFp32, &varint));
  EXPECT_EQ((msg[7] & kFlagDeltaVarintIndices) != 0, varint);
}

TEST_P(TopKExact, MatchesSortReference) {
  const auto [n, ties] = GetParam();
  const auto x = ties ? tied(n, 11u + static_cast<std::uint32_t>(n)) : gaussian(n, 5u + static_cast<std::uint32_t>(n));
  // k from the ratio rule, a fixed k, and k near n.
  const auto order = testing::magnitude_order(x);
  const std::uint64_t k_ratio = count_for_ratio(n, 0.013);
  expect_topk(x, order, k_ratio, "topk:ratio=0.013");
  for (const std::uint64_t k : {std::uint64_t{1}, std::uint64_t{3}, std::uint64_t{n / 3 + 1}}) {
    expect_topk(x, order, std::min<std::uint64_t>(k, n), "topk:k=" + std::to_string(k));
  }
  expect_topk(x, order, n, "topk:k=" + std::to_string(n + 5));
}

INSTANTIATE_TEST_SUITE_P(Sizes, TopKExact,
                         ::testing::Values(TopKCase{1, false}, TopKCase{7, false}, TopKCase{31, true},
                                           TopKCase{33, false}, TopKCase{1000, true}, TopKCase{65537, false},
                                           TopKCase{65537, true}, TopKCase{1000003, false},
                                           TopKCase{1000003, true}),
                         [](const auto& param_info) {
                           return "n" + std::to_string(param_info.param.n) + (param_info.param.ties ? "_ties" : "");
                         });

TEST(TopK, TieRulePrefersSmallerIndex) {
  // Five equal magnitudes (both signs), keep 3: the first three positions win.
  std::vector<float> x = {0.1f, -2.0f, 2.0f, 0.3f, -2.0f, 2.0f, 2.0f, 1.0f};
  const auto codec = make_codec("topk:k=3");
  const auto msg = codec->encode(x.data(), x.size(), {});
  std::vector<float> y(x.size());
  ASSERT_TRUE(codec->decode(msg.data(), msg.size(), y.data(), y.size()).ok());
  EXPECT_EQ(y, (std::vector<float>{0, -2.0f, 2.0f, 0, -2.0f, 0, 0, 0}));
}

TEST(TopK, DecodeAddEqualsDecodePlusAdd) {
  const auto x = gaussian(4099, 3);
  for (const char* spec : {"topk:ratio=0.02", "topk:ratio=0.02,values=fp16", "topk:ratio=0.3,values=int8"}) {
    const auto codec = make_codec(spec);
    const auto msg = codec->encode(x.data(), x.size(), {});
    std::vector<float> decoded(x.size());
    ASSERT_TRUE(codec->decode(msg.data(), msg.size(), decoded.data(), decoded.size()).ok());
    std::vector<float> acc = gaussian(x.size(), 4);
    std::vector<float> want = acc;
    for (std::size_t i = 0; i < x.size(); ++i) want[i] += -0.75f * decoded[i];
    ASSERT_TRUE(decode_add_any(msg.data(), msg.size(), acc.data(), acc.size(), -0.75f).ok());
    EXPECT_EQ(acc, want) << spec;
  }
}

TEST(TopK, NonFiniteInputRefused) {
  std::vector<float> x(77, 1.0f);
  x[40] = INFINITY;
  const auto codec = make_codec("topk:ratio=0.1");
  std::vector<std::uint8_t> out(codec->max_encoded_bytes(x.size()));
  std::size_t bytes = 0;
  EXPECT_EQ(codec->encode(x.data(), x.size(), {}, out.data(), out.size(), &bytes).code(), Errc::kNonFiniteInput);
}

TEST(TopK, SpecIsCanonical) {
  EXPECT_EQ(make_codec("topk:values=fp16,ratio=0.05")->spec(), "topk:ratio=0.05,k=0,values=fp16");
  EXPECT_THROW(make_codec("topk:ratio=0"), SpecError);
  EXPECT_THROW(make_codec("topk:values=fp8"), SpecError);
}

}  // namespace
}  // namespace gradzip::quant
