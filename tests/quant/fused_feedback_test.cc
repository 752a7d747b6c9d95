// The fused error-feedback path (Memory::encode_step, quant/feedback.h) against the
// reference compensate -> encode -> decode -> update, for every registered codec (defaults
// and extra specs of codec_test_util.h) x every registered memory (plus dgc with
// clipping, ef:scale=0.5 and ef with its scale resolved against the codec as
// make_compressor does: 1/(1+omega) over the unbiased codecs), at sizes that are not multiples of the tiles, buckets or bytes: the same
// message bytes and the same state bits, step after step; a NaN/Inf bucket refused with
// the state untouched; buckets with |p| >= 2^50 (the untiled scratch path) equal too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "quant/feedback.h"
#include "quant/memory.h"
#include "quant/registry.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

using namespace codec_testing;  // NOLINT(google-build-using-namespace): test helpers

/// Stands for "ef" as make_compressor builds it next to the codec (scale=auto resolved).
const char kAutoEf[] = "ef:scale=auto";

/// Memory specs: every registered memory, plus dgc with clipping, ef with an explicit
/// scale and ef with the auto scale.
std::vector<std::string> memory_specs() {
  std::vector<std::string> specs;
  for (const auto* e : memory_entries()) specs.push_back(e->name);
  if (find_memory("dgc") != nullptr) specs.push_back("dgc:momentum=0.5,clip=0.5");
  specs.push_back("ef:scale=0.5");
  specs.push_back(kAutoEf);
  return specs;
}

/// The memory of `memory_spec` next to codec `codec_spec`; kAutoEf resolves the scale
/// against the codec (make_compressor), nullptr when it refuses (randk with a fixed k and
/// scale=true has no size-independent omega).
std::unique_ptr<Memory> memory_for(const std::string& memory_spec, const std::string& codec_spec) {
  if (memory_spec != kAutoEf) return make_memory(memory_spec);
  try {
    return make_compressor("ef+" + codec_spec).memory;
  } catch (const SpecError&) {
    return nullptr;
  }
}

/// Sizes that are not multiples of the tiles (4096), buckets or bytes.
const std::size_t kSizes[] = {1, 7, 33, 1000, 4099, 9001, 65537};

/// One test case per codec spec (ctest runs each case as a process: few, larger cases);
/// each loops over every memory and size.
std::string case_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

/// The reference step (what trainer/worker.cc did): compensate, encode, decode when the
/// memory needs it, update, on a copy of the state kept only when every call succeeded
/// (the contract of encode_step).
Status reference_step(const Memory& memory, const Codec& codec, const std::vector<float>& g, const SeedContext& ctx,
                      MemoryState* state, std::vector<std::uint8_t>* msg) {
  const std::size_t n = g.size();
  MemoryState next = *state;
  std::vector<float> p(n), d(n);
  memory.compensate(g.data(), p.data(), n, &next);
  msg->assign(codec.max_encoded_bytes(n), 0);
  std::size_t bytes = 0;
  GZ_RETURN_IF_ERROR(codec.encode(p.data(), n, ctx, msg->data(), msg->size(), &bytes));
  msg->resize(bytes);
  if (memory.needs_decoded()) GZ_RETURN_IF_ERROR(codec.decode(msg->data(), bytes, d.data(), n));
  memory.update(p.data(), d.data(), n, &next);
  *state = std::move(next);
  return Status::Ok();
}

Status fused_step(const Memory& memory, const Codec& codec, const std::vector<float>& g, const SeedContext& ctx,
                  MemoryState* state, std::vector<std::uint8_t>* msg) {
  msg->assign(codec.max_encoded_bytes(g.size()), 0);
  std::size_t bytes = 0;
  GZ_RETURN_IF_ERROR(memory.encode_step(codec, g.data(), g.size(), ctx, state, msg->data(), msg->size(), &bytes));
  msg->resize(bytes);
  return Status::Ok();
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), 4 * a.size()) == 0);
}

void expect_same_state(const MemoryState& fused, const MemoryState& ref, const std::string& where) {
  EXPECT_TRUE(same_bits(fused.residual, ref.residual)) << where << ": residual differs";
  EXPECT_TRUE(same_bits(fused.momentum, ref.momentum)) << where << ": momentum differs";
  EXPECT_EQ(fused.steps, ref.steps) << where;
}

/// Both paths side by side for one codec and memory, from equal (empty) states.
struct Pair {
  Pair(const std::string& codec_spec, const std::string& memory_spec)
      : codec(make_codec(codec_spec)), memory(memory_for(memory_spec, codec_spec)) {}
  /// One step of both paths; asserts equal status, bytes and state.
  void step_both(const std::vector<float>& g, std::uint64_t step, const std::string& where) {
    const SeedContext ctx{77, step, 3, 5};
    std::vector<std::uint8_t> msg_ref, msg_fused;
    const Status st_ref = reference_step(*memory, *codec, g, ctx, &ref, &msg_ref);
    const Status st_fused = fused_step(*memory, *codec, g, ctx, &fused, &msg_fused);
    ASSERT_EQ(st_fused.code(), st_ref.code()) << where << ": " << st_fused.to_string() << " vs " << st_ref.to_string();
    if (st_ref.ok()) {
      EXPECT_EQ(msg_fused, msg_ref) << where << ": message bytes differ";
    }
    expect_same_state(fused, ref, where);
  }
  std::unique_ptr<Codec> codec;
  std::unique_ptr<Memory> memory;
  MemoryState ref, fused;
};

class FusedFeedback : public ::testing::TestWithParam<std::string> {
 protected:
  /// Runs body(pair, n) for every memory and size, each in a fresh Pair.
  template <typename Body>
  void for_each_memory_and_size(Body body) {
    for (const auto& memory : memory_specs()) {
      for (const std::size_t n : kSizes) {
        SCOPED_TRACE(memory + "+" + GetParam() + " n=" + std::to_string(n));
        Pair pair(GetParam(), memory);
        if (pair.memory == nullptr) break;  // make_compressor refuses this pair
        body(pair, n);
        if (HasFatalFailure()) return;
      }
    }
  }
};

TEST_P(FusedFeedback, SameBytesAndStateAsReference) {
  for_each_memory_and_size([](Pair& pair, std::size_t n) {
    for (std::uint32_t step = 0; step < 3; ++step) {
      pair.step_both(cached_gradient(n, 20 + step), step, "step " + std::to_string(step));
    }
  });
}

TEST_P(FusedFeedback, NonFiniteBucketLeavesStateUntouched) {
  for_each_memory_and_size([](Pair& pair, std::size_t n) {
    pair.step_both(cached_gradient(n, 30), 0, "warm-up step");
    const MemoryState before = pair.fused;
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      for (const std::size_t at : {std::size_t{0}, n / 2, n - 1}) {
        std::vector<float> g = cached_gradient(n, 31);
        g[at] = bad;
        std::vector<std::uint8_t> msg;
        const Status st = fused_step(*pair.memory, *pair.codec, g, SeedContext{77, 1, 3, 5}, &pair.fused, &msg);
        EXPECT_EQ(st.code(), Errc::kNonFiniteInput) << "bad value at " << at << ": " << st.to_string();
        expect_same_state(pair.fused, before, "after a refused bucket (bad value at " + std::to_string(at) + ")");
      }
    }
    // The next good step continues exactly as the reference does.
    pair.step_both(cached_gradient(n, 32), 2, "step after the refused buckets");
  });
}

TEST_P(FusedFeedback, HugeValuesTakeTheScratchPathAndMatch) {
  // |p| >= 2^50 anywhere (finite) routes the bucket to the untiled scratch path; the
  // reference may also refuse it (a statistic overflowing fp32): the same status either way.
  for_each_memory_and_size([](Pair& pair, std::size_t n) {
    pair.step_both(cached_gradient(n, 40), 0, "warm-up step");
    std::vector<float> g = cached_gradient(n, 41);
    g[n - 1] = 0x1p60f;
    pair.step_both(g, 1, "step with 2^60");
    g[n / 2] = -FLT_MAX;
    pair.step_both(g, 2, "step with -FLT_MAX");
  });
}

INSTANTIATE_TEST_SUITE_P(EveryCodec, FusedFeedback, ::testing::ValuesIn(all_specs()), case_name);

TEST(FusedFeedbackCases, ScaledEfAndZipmlAreCovered) {
  // The case list derives from the registry; make sure it reaches the auto-scaled EF over
  // every unbiased codec family, the explicit scale, and both zipml layouts (tiled with
  // scope=bucket, untiled with scope=tensor).
  std::set<std::string> scaled_over;
  bool zipml_tiled = false, zipml_untiled = false;
  for (const auto& spec : all_specs()) {
    const auto memory = memory_for(kAutoEf, spec);
    if (memory != nullptr && memory->spec() != "ef") scaled_over.insert(spec_name(spec));
    if (spec_name(spec) == "zipml") (make_codec(spec)->tile_alignment() != 0 ? zipml_tiled : zipml_untiled) = true;
  }
  for (const char* name : {"qsgd", "terngrad", "natural", "randk", "zipml"}) {
    EXPECT_EQ(scaled_over.count(name), 1u) << "no auto-scaled ef case over " << name;
  }
  EXPECT_EQ(scaled_over.count("topk"), 0u) << "ef over a biased codec must stay unscaled";
  EXPECT_TRUE(zipml_tiled);
  EXPECT_TRUE(zipml_untiled);
  const auto specs = memory_specs();
  EXPECT_NE(std::find(specs.begin(), specs.end(), "ef:scale=0.5"), specs.end());
}

TEST(FusedFeedbackOverflow, ResidualPlusGradientOverflowIsRefusedUntouched) {
  // g and e finite, g + e = Inf (also after the scale): the reference's encode refuses it,
  // so must the fused path.
  for (const char* memory_spec : {"ef", "ef:scale=0.5"}) {
    const auto memory = make_memory(memory_spec);
    for (const auto& spec : all_specs()) {
      const auto codec = make_codec(spec);
      MemoryState state;
      state.residual.assign(100, 1.0f);
      state.residual[60] = FLT_MAX;
      const MemoryState before = state;
      std::vector<float> g(100, 0.5f);
      g[60] = FLT_MAX;
      std::vector<std::uint8_t> msg;
      EXPECT_EQ(fused_step(*memory, *codec, g, SeedContext{1, 1, 0, 0}, &state, &msg).code(), Errc::kNonFiniteInput)
          << memory_spec << "+" << spec;
      expect_same_state(state, before, std::string(memory_spec) + "+" + spec);
    }
  }
}

TEST(FusedFeedbackLarge, StreamedResidualMatchesAndALateNaNLeavesItUntouched) {
  // From kStreamingNumel elements on, the double-buffered memories write the next residual
  // with streaming stores; a NaN in the last tile stops the pass after every other tile
  // was written aside, and the residual must still be the previous one.
  const std::size_t n = kStreamingNumel + 4099;
  for (const char* memory_spec : {"ef", "ef:scale=0.5", "ef21"}) {
    for (const char* spec : {"identity", "fp16", "int8:bucket=512", "scaled-sign:bucket=100", "qsgd:bits=4"}) {
      SCOPED_TRACE(std::string(memory_spec) + "+" + spec);
      Pair pair(spec, memory_spec);
      ASSERT_NE(pair.memory, nullptr);
      pair.step_both(cached_gradient(n, 70), 0, "step 0");
      pair.step_both(cached_gradient(n, 71), 1, "step 1");
      const MemoryState before = pair.fused;
      std::vector<float> g = cached_gradient(n, 72);
      g[n - 3] = std::numeric_limits<float>::quiet_NaN();
      std::vector<std::uint8_t> msg;
      EXPECT_EQ(fused_step(*pair.memory, *pair.codec, g, SeedContext{77, 2, 3, 5}, &pair.fused, &msg).code(),
                Errc::kNonFiniteInput);
      expect_same_state(pair.fused, before, "after a NaN in the last tile");
      pair.step_both(cached_gradient(n, 73), 3, "step after the refused bucket");
    }
  }
}

/// A memory without fused operations (keeps half of the error), to exercise the default
/// Memory::encode_step that a newly added memory inherits.
class HalfErrorMemory final : public Memory {
 public:
  std::string spec() const override { return "half-error"; }
  void compensate(const float* grad, float* p, std::size_t n, MemoryState* state) const override {
    if (state->residual.size() != n) state->residual.assign(n, 0.0f);
    for (std::size_t i = 0; i < n; ++i) p[i] = grad[i] + state->residual[i];
  }
  void update(const float* p, const float* d, std::size_t n, MemoryState* state) const override {
    for (std::size_t i = 0; i < n; ++i) state->residual[i] = 0.5f * (p[i] - d[i]);
    ++state->steps;
  }
};

TEST(FusedFeedbackDefault, MemoryWithoutFusedOpsMatchesReference) {
  const HalfErrorMemory memory;
  const auto codec = make_codec("int8:bucket=33");
  MemoryState ref, fused;
  for (std::uint64_t step = 0; step < 3; ++step) {
    std::vector<float> g = cached_gradient(1001, 60 + static_cast<std::uint32_t>(step));
    if (step == 1) g[500] = std::numeric_limits<float>::quiet_NaN();
    std::vector<std::uint8_t> msg_ref, msg_fused;
    const SeedContext ctx{5, step, 0, 0};
    const Status a = reference_step(memory, *codec, g, ctx, &ref, &msg_ref);
    const Status b = fused_step(memory, *codec, g, ctx, &fused, &msg_fused);
    ASSERT_EQ(a.code(), b.code()) << "step " << step;
    if (a.ok()) {
      EXPECT_EQ(msg_fused, msg_ref) << "step " << step;
    }
    expect_same_state(fused, ref, "step " + std::to_string(step));
  }
}

TEST(FusedFeedbackArguments, BadArgumentsRefusedBeforeTheState) {
  const auto memory = make_memory("ef");
  const auto codec = make_codec("fp16");
  const std::vector<float> g(10, 1.0f);
  MemoryState state;
  std::vector<std::uint8_t> out(codec->max_encoded_bytes(10));
  std::size_t bytes = 0;
  EXPECT_EQ(memory->encode_step(*codec, g.data(), 10, {}, &state, out.data(), out.size() - 1, &bytes).code(),
            Errc::kBufferTooSmall);
  SeedContext tile_ctx;
  tile_ctx.first_element = 8;
  EXPECT_EQ(memory->encode_step(*codec, g.data(), 10, tile_ctx, &state, out.data(), out.size(), &bytes).code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(memory->encode_step(*codec, nullptr, 10, {}, &state, out.data(), out.size(), &bytes).code(),
            Errc::kInvalidArgument);
  for (float v : state.residual) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(state.steps, 0u);
}

}  // namespace
}  // namespace gradzip::quant
