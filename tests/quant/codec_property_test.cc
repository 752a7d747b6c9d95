// Property suite over every registered codec (quant::codec_entries(), so new codecs join
// automatically) x sizes 1, 7, 31, 33, 1000, 65537, 1000003. See codec_test_util.h for
// what a codec may add (extra specs, reference kept sets of sparse codecs).
//
// Properties: message size <= max_encoded_bytes and == the size formula its CodecEntry
// documents; same seed -> byte-identical; different seed -> different (stochastic
// codecs); decode_add == decode + scale * add (bitwise); decode_any == decode; the EF
// invariant with the "ef" memory; size/codec mismatches refused with the output untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "quant/memory.h"
#include "quant/registry.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

using namespace codec_testing;  // NOLINT(google-build-using-namespace): test helpers

struct Case {
  std::string spec;
  std::size_t n;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.spec << " n=" << c.n; }

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const auto& spec : all_specs()) {
    for (std::size_t n : {1, 7, 31, 33, 1000, 65537, 1000003}) cases.push_back({spec, n});
  }
  return cases;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string s = info.param.spec + "_n" + std::to_string(info.param.n);
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

class CodecProperty : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    codec_ = make_codec(GetParam().spec);
    name_ = spec_name(GetParam().spec);
    x_ = cached_gradient(GetParam().n);
  }
  std::vector<std::uint8_t> encode(const float* x, const SeedContext& ctx) const {
    return codec_->encode(x, GetParam().n, ctx);
  }
  std::vector<float> decode(const std::vector<std::uint8_t>& msg) const {
    std::vector<float> y(GetParam().n, 12345.0f);
    const Status st = codec_->decode(msg.data(), msg.size(), y.data(), y.size());
    EXPECT_TRUE(st.ok()) << st.to_string();
    return y;
  }

  std::unique_ptr<Codec> codec_;
  std::string name_;
  std::vector<float> x_;
  SeedContext ctx_{0xC0FFEEull, 3, 1, 4};
};

TEST_P(CodecProperty, SizeMatchesFormulaAndBound) {
  const std::size_t n = GetParam().n;
  const auto msg = encode(x_.data(), ctx_);
  EXPECT_LE(msg.size(), codec_->max_encoded_bytes(n));
  std::size_t documented = 0;
  std::string why;
  ASSERT_TRUE(documented_size(*find_codec(name_), codec_params(*codec_), n, x_.data(), ctx_, &documented, &why)) << why;
  EXPECT_EQ(msg.size(), documented) << codec_->spec();
  // Encoding into a buffer of exactly max_encoded_bytes works; one byte less is refused.
  std::vector<std::uint8_t> out(codec_->max_encoded_bytes(n));
  std::size_t bytes = 0;
  ASSERT_TRUE(codec_->encode(x_.data(), n, ctx_, out.data(), out.size(), &bytes).ok());
  EXPECT_EQ(bytes, msg.size());
  EXPECT_EQ(codec_->encode(x_.data(), n, ctx_, out.data(), out.size() - 1, &bytes).code(), Errc::kBufferTooSmall);
}

// A codec without a documented size formula, or a sparse one without a reference kept
// set, fails the size test with a message that names the step to take.
TEST(CodecSizeFormula, MissingFormulaOrReferenceIsNamed) {
  CodecEntry entry = *find_codec("identity");
  entry.name = "nosizecodec";
  entry.size = SizeFormula{};
  const std::vector<float> x(3, 1.0f);
  std::size_t bytes = 0;
  std::string why;
  EXPECT_FALSE(documented_size(entry, Params{}, x.size(), x.data(), SeedContext{}, &bytes, &why));
  EXPECT_NE(why.find("'nosizecodec' documents no message-size formula"), std::string::npos) << why;
  entry.size = find_codec("topk")->size;
  EXPECT_FALSE(documented_size(entry, Params{}, x.size(), x.data(), SeedContext{}, &bytes, &why));
  EXPECT_NE(why.find("kept_set_references()"), std::string::npos) << why;
  entry.size = find_codec("identity")->size;
  ASSERT_TRUE(documented_size(entry, Params{}, x.size(), x.data(), SeedContext{}, &bytes, &why)) << why;
  EXPECT_EQ(bytes, make_codec("identity")->encode(x.data(), x.size(), SeedContext{}).size());
}

TEST_P(CodecProperty, SameSeedIdenticalDifferentSeedDiffers) {
  const auto a = encode(x_.data(), ctx_);
  const auto b = encode(x_.data(), ctx_);
  EXPECT_EQ(a, b);
  if (stochastic_codecs().count(name_) != 0 && GetParam().n >= 31) {
    for (auto change : {0, 1, 2, 3}) {
      SeedContext other = ctx_;
      if (change == 0) other.seed += 1;
      if (change == 1) other.step += 1;
      if (change == 2) other.worker += 1;
      if (change == 3) other.bucket += 1;
      EXPECT_NE(encode(x_.data(), other), a) << "context field " << change << " does not change the message";
    }
  }
}

TEST_P(CodecProperty, DecodeAddEqualsDecodePlusScaledAdd) {
  const std::size_t n = GetParam().n;
  const auto msg = encode(x_.data(), ctx_);
  const auto y = decode(msg);
  for (float v : y) ASSERT_TRUE(std::isfinite(v));
  const auto& acc0 = cached_gradient(n, 99);
  for (float scale : {1.0f, 0.37f, -2.5f}) {
    auto acc = acc0;
    const Status st = codec_->decode_add(msg.data(), msg.size(), acc.data(), n, scale);
    ASSERT_TRUE(st.ok()) << st.to_string();
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) bad += acc[i] != acc0[i] + scale * y[i];
    EXPECT_EQ(bad, 0u) << "scale " << scale;
  }
  std::vector<float> any(n, -7.0f);
  ASSERT_TRUE(decode_any(msg.data(), msg.size(), any.data(), n).ok());
  EXPECT_EQ(0, std::memcmp(any.data(), y.data(), 4 * n));
}

TEST_P(CodecProperty, ErrorFeedbackInvariant) {
  // Two EF steps so the residual is non-zero: decoded + e_{t+1} == g_t + e_t.
  const std::size_t n = GetParam().n;
  const auto memory = make_memory("ef");
  MemoryState state;
  std::vector<float> p(n), d(n);
  for (std::uint32_t step = 0; step < 2; ++step) {
    const auto& g = cached_gradient(n, 10 + step);
    const std::vector<float> e_old = state.residual.empty() ? std::vector<float>(n, 0.0f) : state.residual;
    memory->compensate(g.data(), p.data(), n, &state);
    SeedContext ctx = ctx_;
    ctx.step = step;
    const auto msg = codec_->encode(p.data(), n, ctx);
    d = decode(msg);
    memory->update(p.data(), d.data(), n, &state);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double lhs = static_cast<double>(d[i]) + state.residual[i];
      const double rhs = static_cast<double>(g[i]) + e_old[i];
      const double tol = 0x1p-23 * (std::fabs(g[i]) + std::fabs(e_old[i]) + std::fabs(state.residual[i])) + 1e-44;
      bad += std::fabs(lhs - rhs) > tol;
    }
    EXPECT_EQ(bad, 0u) << "step " << step;
  }
}

TEST_P(CodecProperty, MismatchesRefusedOutputUntouched) {
  const std::size_t n = GetParam().n;
  const auto msg = encode(x_.data(), ctx_);
  std::vector<float> out(n + 1, 3.0f);
  EXPECT_EQ(codec_->decode(msg.data(), msg.size(), out.data(), n + 1).code(), Errc::kSizeMismatch);
  EXPECT_EQ(codec_->decode_add(msg.data(), msg.size(), out.data(), n - 1, 1.0f).code(), Errc::kSizeMismatch);
  const auto other = make_codec(name_ == "identity" ? "sign" : "identity");
  EXPECT_EQ(other->decode(msg.data(), msg.size(), out.data(), n).code(), Errc::kCodecMismatch);
  EXPECT_EQ(other->decode_add(msg.data(), msg.size(), out.data(), n, 1.0f).code(), Errc::kCodecMismatch);
  for (float v : out) ASSERT_EQ(v, 3.0f);
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CodecProperty, ::testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace gradzip::quant
