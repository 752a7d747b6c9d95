// The block-wide varint walk of the CUDA decode_own (quant/varint_walk.h), emulated on
// the CPU: for index blocks whose varints are 1 to 5 bytes long and cut across the
// 16-byte thread shares and 4096-byte windows, it yields every (ordinal, index) pair in
// order; a block without terminators stops instead of looping.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "quant/philox.h"
#include "quant/varint_walk.h"

namespace gradzip::quant {
namespace {

/// LEB128 varints of the gaps of ascending indices (the format of quant/sparse.h).
std::vector<std::uint8_t> varint_block(const std::vector<std::uint64_t>& idx) {
  std::vector<std::uint8_t> out;
  std::uint64_t prev = 0;
  for (std::size_t j = 0; j < idx.size(); ++j) {
    std::uint64_t gap = j == 0 ? idx[0] : idx[j] - prev - 1;
    prev = idx[j];
    do {
      const auto byte = static_cast<std::uint8_t>(gap & 0x7Fu);
      gap >>= 7;
      out.push_back(gap != 0 ? static_cast<std::uint8_t>(byte | 0x80u) : byte);
    } while (gap != 0);
  }
  return out;
}

/// Ascending indices with gaps of random magnitude (varints of 1..5 bytes).
std::vector<std::uint64_t> random_indices(std::size_t count, std::uint64_t salt) {
  std::vector<std::uint64_t> idx(count);
  std::uint64_t next = 0;
  const SeedContext ctx{salt, 1, 2, 3};
  for (std::size_t j = 0; j < count; ++j) {
    const std::uint32_t r = random_bits(ctx, RandomStream::kSampling, j);
    const unsigned bits = (r % 5) * 7;  // 0, 7, 14, 21 or 28 bits of gap
    const std::uint64_t gap = bits == 0 ? 0 : (static_cast<std::uint64_t>(r >> 3) & ((std::uint64_t{1} << bits) - 1));
    idx[j] = next + gap;
    next = idx[j] + 1;
  }
  return idx;
}

TEST(VarintWalk, YieldsEveryPairInOrder) {
  for (std::size_t count : {1, 2, 15, 16, 17, 1000, 4096, 30011}) {
    const std::vector<std::uint64_t> idx = random_indices(count, count);
    const std::vector<std::uint8_t> block = varint_block(idx);
    std::vector<std::uint64_t> got;
    std::uint64_t expected_j = 0;
    bool in_order = true;
    const std::uint64_t n = varint_walk_emulate(block.data(), block.size(), count, [&](std::uint64_t j, std::uint64_t i) {
      in_order = in_order && j == expected_j++;
      got.push_back(i);
    });
    EXPECT_EQ(n, count);
    EXPECT_TRUE(in_order) << count;
    EXPECT_EQ(got, idx) << count << " pairs, " << block.size() << " bytes";
  }
}

TEST(VarintWalk, FiveByteVarintsAcrossWindows) {
  // Every gap needs 5 bytes (>= 2^28), so varints straddle the 16-byte shares and the
  // 4096-byte windows at every possible offset.
  std::vector<std::uint64_t> idx;
  for (std::uint64_t j = 0, v = std::uint64_t{1} << 29; j < 2000; ++j, v += (std::uint64_t{1} << 28) + j) idx.push_back(v);
  const std::vector<std::uint8_t> block = varint_block(idx);
  ASSERT_EQ(block.size(), 5 * idx.size());
  std::vector<std::uint64_t> got;
  varint_walk_emulate(block.data(), block.size(), idx.size(), [&](std::uint64_t, std::uint64_t i) { got.push_back(i); });
  EXPECT_EQ(got, idx);
}

TEST(VarintWalk, BlockWithoutTerminatorsStops) {
  const std::vector<std::uint8_t> block(10000, 0x80u);
  std::uint64_t emitted = 0;
  EXPECT_EQ(varint_walk_emulate(block.data(), block.size(), 50, [&](std::uint64_t, std::uint64_t) { ++emitted; }), 0u);
  EXPECT_EQ(emitted, 0u);
}

}  // namespace
}  // namespace gradzip::quant
