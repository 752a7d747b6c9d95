// serialize_memory_state / restore_memory_state (quant/memory.h): a DGC memory stopped
// after some steps, saved and restored into a fresh state, then continued, produces the
// same messages and state as the memory that never stopped; truncated or oversized
// images are typed errors that leave the state untouched.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "quant/registry.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant {
namespace {

/// One step of memory + codec on `grad`; returns the message.
std::vector<std::uint8_t> step(const Compressor& c, const std::vector<float>& grad, std::uint64_t t, MemoryState* st) {
  const std::size_t n = grad.size();
  std::vector<float> p(n), d(n);
  c.memory->compensate(grad.data(), p.data(), n, st);
  auto msg = c.codec->encode(p.data(), n, SeedContext{7, t, 0, 0});
  EXPECT_TRUE(c.codec->decode(msg.data(), msg.size(), d.data(), n).ok());
  c.memory->update(p.data(), d.data(), n, st);
  return msg;
}

TEST(MemoryState, RestoredDgcMemoryContinuesIdentically) {
  const Compressor c = make_compressor("dgc:ratio=0.05", "dgc:momentum=0.9");
  const std::size_t n = 997;
  MemoryState kept, stopped;
  for (std::uint64_t t = 0; t < 4; ++t) {
    const auto g = testing::gaussian(n, 100 + t);
    step(c, g, t, &kept);
    step(c, g, t, &stopped);
  }
  ASSERT_FALSE(stopped.momentum.empty()) << "dgc keeps momentum";
  std::vector<std::uint8_t> image;
  serialize_memory_state(stopped, &image);
  MemoryState restored;
  std::size_t used = 0;
  ASSERT_TRUE(restore_memory_state(image.data(), image.size(), n, &restored, &used).ok());
  EXPECT_EQ(used, image.size());
  EXPECT_EQ(restored.steps, stopped.steps);
  for (std::uint64_t t = 4; t < 9; ++t) {
    const auto g = testing::gaussian(n, 100 + t);
    EXPECT_EQ(step(c, g, t, &kept), step(c, g, t, &restored)) << "step " << t;
  }
  EXPECT_EQ(kept.residual, restored.residual);
  EXPECT_EQ(kept.momentum, restored.momentum);
  EXPECT_EQ(kept.steps, restored.steps);
}

TEST(MemoryState, EmptyStateRoundTrips) {
  std::vector<std::uint8_t> image;
  serialize_memory_state(MemoryState{}, &image);
  MemoryState s;
  s.residual = {1.0f};
  std::size_t used = 0;
  ASSERT_TRUE(restore_memory_state(image.data(), image.size(), 0, &s, &used).ok());
  EXPECT_TRUE(s.residual.empty());
  EXPECT_EQ(used, image.size());
}

TEST(MemoryState, TruncatedOrOversizedImagesAreTypedErrors) {
  MemoryState st;
  st.residual.assign(37, 0.5f);
  st.momentum.assign(37, -1.0f);
  st.steps = 3;
  std::vector<std::uint8_t> image;
  serialize_memory_state(st, &image);
  for (std::size_t cut = 0; cut < image.size(); cut += 13) {
    MemoryState out;
    out.steps = 99;
    std::size_t used = 0;
    const Status s = restore_memory_state(image.data(), cut, 37, &out, &used);
    EXPECT_EQ(s.code(), Errc::kTruncated) << "cut at " << cut;
    EXPECT_EQ(out.steps, 99u) << "state untouched";
  }
  MemoryState out;
  std::size_t used = 0;
  EXPECT_EQ(restore_memory_state(image.data(), image.size(), 36, &out, &used).code(), Errc::kBadLength)
      << "37 residual values for a bucket of 36";
}

}  // namespace
}  // namespace gradzip::quant
