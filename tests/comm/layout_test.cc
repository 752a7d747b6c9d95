// Placement: every strategy tiles the flat buffer exactly, routes every element to one
// shard, is deterministic, and balances as documented.
#include <gtest/gtest.h>

#include <numeric>

#include "comm/layout.h"
#include "tests/comm/lsq.h"

namespace gradzip::comm {
namespace {

using testing::lsq_signature;

struct Case {
  PlacementStrategy strategy;
  std::uint32_t shards;
  std::uint64_t bucket_bytes;
};

class LayoutSweep : public ::testing::TestWithParam<Case> {};

TEST_P(LayoutSweep, TilesFlatBufferAndRoundTrips) {
  const Case c = GetParam();
  const auto sig = lsq_signature({37, 5, 100, 1, 64, 13, 0, 211});
  PlacementOptions o;
  o.num_shards = c.shards;
  o.strategy = c.strategy;
  o.bucket_bytes = c.bucket_bytes;
  o.partition_bytes = 4 * 29;
  o.min_compress_numel = 10;
  const Layout layout = make_layout(sig, o);
  ASSERT_EQ(layout.total_numel, sig.total_numel());
  std::uint64_t next = 0;
  std::vector<std::uint64_t> per_shard(c.shards, 0);
  for (std::size_t i = 0; i < layout.buckets.size(); ++i) {
    const Bucket& b = layout.buckets[i];
    EXPECT_EQ(b.id, i);
    EXPECT_EQ(b.offset, next) << "gap or overlap before bucket " << i;
    EXPECT_GT(b.numel, 0u);
    EXPECT_LE(b.numel * 4, c.bucket_bytes);
    EXPECT_LT(b.shard, c.shards);
    EXPECT_EQ(b.compressed, b.numel >= 10);
    EXPECT_EQ(b.shard_offset, per_shard[b.shard]);
    per_shard[b.shard] += b.numel;
    next += b.numel;
  }
  EXPECT_EQ(next, sig.total_numel());
  EXPECT_EQ(per_shard, layout.shard_numel);
  // Scatter a flat vector into per-shard partitions and gather it back.
  std::vector<float> flat(layout.total_numel);
  std::iota(flat.begin(), flat.end(), 1.0f);
  std::vector<std::vector<float>> parts(c.shards);
  for (std::uint32_t s = 0; s < c.shards; ++s) {
    parts[s].resize(layout.shard_numel[s]);
    for (auto id : layout.shard_buckets[s]) {
      const Bucket& b = layout.buckets[id];
      std::copy_n(flat.begin() + b.offset, b.numel, parts[s].begin() + b.shard_offset);
    }
  }
  std::vector<float> back(layout.total_numel, -1.0f);
  for (const auto& b : layout.buckets) {
    std::copy_n(parts[b.shard].begin() + b.shard_offset, b.numel, back.begin() + b.offset);
  }
  EXPECT_EQ(back, flat);
  // Deterministic.
  const Layout again = make_layout(sig, o);
  ASSERT_EQ(again.buckets.size(), layout.buckets.size());
  for (std::size_t i = 0; i < layout.buckets.size(); ++i) EXPECT_EQ(again.buckets[i].shard, layout.buckets[i].shard);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (auto s : {PlacementStrategy::kRoundRobin, PlacementStrategy::kGreedyBytes, PlacementStrategy::kPartitioned}) {
    for (std::uint32_t m : {1u, 2u, 3u, 7u}) {
      for (std::uint64_t bb : {4ull, 44ull, 404ull, 1ull << 20}) out.push_back({s, m, bb});
    }
  }
  return out;
}
INSTANTIATE_TEST_SUITE_P(All, LayoutSweep, ::testing::ValuesIn(cases()));

TEST(Layout, GreedyBalancesBetterThanRoundRobinOnSkewedModel) {
  const auto sig = lsq_signature({1000, 10, 10, 10, 900, 10, 10, 10});
  PlacementOptions o;
  o.num_shards = 2;
  o.strategy = PlacementStrategy::kRoundRobin;
  const double rr = make_layout(sig, o).imbalance();
  o.strategy = PlacementStrategy::kGreedyBytes;
  const double greedy = make_layout(sig, o).imbalance();
  o.strategy = PlacementStrategy::kPartitioned;
  o.partition_bytes = 4 * 50;
  const double part = make_layout(sig, o).imbalance();
  EXPECT_GT(rr, 1.9);        // 1920 of 1960 elements on shard 0
  EXPECT_LT(greedy, 1.05);   // 1030 vs 930
  EXPECT_LT(part, 1.03);     // pieces of 50 spread evenly
}

TEST(Layout, RefusesBadOptionsAndParsesNames) {
  const auto sig = lsq_signature();
  PlacementOptions o;
  o.num_shards = 0;
  EXPECT_THROW(make_layout(sig, o), std::invalid_argument);
  o.num_shards = 1;
  o.bucket_bytes = 3;
  EXPECT_THROW(make_layout(sig, o), std::invalid_argument);
  EXPECT_THROW(make_layout(ModelSignature{}, PlacementOptions{}), std::invalid_argument);
  EXPECT_EQ(parse_placement_strategy("partitioned"), PlacementStrategy::kPartitioned);
  EXPECT_THROW(parse_placement_strategy("random"), std::invalid_argument);
  const std::string plan = make_layout(sig, PlacementOptions{}).describe(sig);
  EXPECT_NE(plan.find("imbalance"), std::string::npos);
  EXPECT_NE(plan.find("layer2.weight"), std::string::npos);
}

// A small first bucket (the tail of the flat buffer: the last layers, whose gradients
// backward produces first) is cut off the last run; the rest is cut as without it, and
// the canonical string names the option only when it is set (old layouts unchanged).
TEST(Layout, FirstBucketIsTheSmallTailOfTheFlatBuffer) {
  const auto sig = lsq_signature({37, 5, 100, 1, 64, 13});  // 220 elements
  PlacementOptions o;
  o.num_shards = 1;
  o.bucket_bytes = 4 * 64;
  const Layout plain = make_layout(sig, o);
  const std::string canonical = o.canonical();
  EXPECT_EQ(canonical.find("first_bucket"), std::string::npos);
  o.first_bucket_bytes = 4 * 10;
  const Layout first = make_layout(sig, o);
  EXPECT_NE(o.canonical().find(",first_bucket_bytes=40"), std::string::npos);
  ASSERT_GE(first.buckets.size(), 2u);
  const Bucket& tail = first.buckets.back();
  EXPECT_EQ(tail.numel, 10u);
  EXPECT_EQ(tail.offset + tail.numel, 220u);
  // Before the tail: buckets of 64 from offset 0, the last one shorter.
  std::uint64_t next = 0;
  for (std::size_t i = 0; i + 1 < first.buckets.size(); ++i) {
    EXPECT_EQ(first.buckets[i].offset, next);
    EXPECT_EQ(first.buckets[i].numel, std::min<std::uint64_t>(64, 210 - next));
    next += first.buckets[i].numel;
  }
  EXPECT_EQ(next, 210u);
  EXPECT_EQ(plain.buckets.back().offset + plain.buckets.back().numel, 220u);
  // A first bucket as large as the run changes nothing.
  o.first_bucket_bytes = 4 * 1000;
  EXPECT_EQ(make_layout(sig, o).buckets.size(), plain.buckets.size());
}

}  // namespace
}  // namespace gradzip::comm
