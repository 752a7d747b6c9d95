// One bucket, one compressor: with a rule list (quant/rules.h) as the signature's
// compressor, buckets merge only tensors of the same spec; a plain spec, or a rule list
// that sends everything to one spec, gives exactly the buckets of a plain spec.
#include <gtest/gtest.h>

#include "comm/layout.h"
#include "quant/rules.h"
#include "tests/comm/lsq.h"

namespace gradzip::comm {
namespace {

using testing::lsq_signature;

ModelSignature named_signature() {
  // conv (big), bn (small), conv, bn, fc.weight, fc.bias: flat order as a CNN registers them.
  ModelSignature s;
  const std::pair<const char*, std::uint64_t> tensors[] = {{"conv1.weight", 432}, {"bn1.weight", 16},
                                                           {"bn1.bias", 16},      {"layer1.conv1.weight", 2304},
                                                           {"layer1.bn1.weight", 16}, {"fc.weight", 160},
                                                           {"fc.bias", 10}};
  for (const auto& [name, n] : tensors) s.tensors.push_back({name, {static_cast<std::int64_t>(n)}, n});
  return s;
}

TEST(LayoutRules, OneSpecPerBucketAndTensorsGetTheirRule) {
  ModelSignature sig = named_signature();
  sig.compressor_spec = quant::CompressorRules::parse("*bn*=identity;fc.*=ef+fp16", "ef+topk:ratio=0.01").canonical();
  for (auto strategy : {PlacementStrategy::kGreedyBytes, PlacementStrategy::kRoundRobin, PlacementStrategy::kPartitioned}) {
    for (std::uint32_t shards : {1u, 2u}) {
      PlacementOptions o;
      o.num_shards = shards;
      o.strategy = strategy;
      o.bucket_bytes = 4 * 1000;
      o.partition_bytes = 4 * 300;
      const Layout layout = make_layout(sig, o);
      ASSERT_EQ(layout.specs.size(), 3u);
      // Every element's bucket has the spec its tensor's rule names.
      std::uint64_t t_begin = 0;
      for (const auto& t : sig.tensors) {
        const std::string want = t.name.find("bn") != std::string::npos ? "none+identity"
                                 : t.name.rfind("fc.", 0) == 0        ? "ef+fp16"
                                                                      : layout.specs[2];
        for (const auto& b : layout.buckets) {
          if (b.offset < t_begin + t.numel && t_begin < b.offset + b.numel) {
            EXPECT_EQ(layout.specs[b.spec], want) << t.name << " bucket " << b.id;
          }
        }
        t_begin += t.numel;
      }
      // One shard: runs conv1 | bn1.weight+bn1.bias (merged: same spec) | layer1.conv1 (2304
      // elements: 3 buckets of <= 1000) | layer1.bn1 | fc.weight+fc.bias.
      if (strategy == PlacementStrategy::kGreedyBytes && shards == 1) {
        ASSERT_EQ(layout.buckets.size(), 7u);
        EXPECT_EQ(layout.buckets[1].numel, 32u);
        EXPECT_EQ(layout.buckets[6].numel, 170u);
      }
    }
  }
}

TEST(LayoutRules, SingleSpecRuleListGivesThePlainBuckets) {
  const auto plain_sig = lsq_signature({37, 5, 100, 1, 64, 13, 0, 211});
  ModelSignature rules_sig = plain_sig;
  rules_sig.compressor_spec = quant::CompressorRules::parse("numel<10=ef+fp16;*=ef+fp16").canonical();
  ModelSignature plain = plain_sig;
  plain.compressor_spec = "ef+fp16";
  for (auto strategy : {PlacementStrategy::kGreedyBytes, PlacementStrategy::kRoundRobin, PlacementStrategy::kPartitioned}) {
    PlacementOptions o;
    o.num_shards = 2;
    o.strategy = strategy;
    o.bucket_bytes = 4 * 50;
    o.partition_bytes = 4 * 29;
    const Layout a = make_layout(plain, o), b = make_layout(rules_sig, o);
    ASSERT_EQ(a.buckets.size(), b.buckets.size());
    for (std::size_t i = 0; i < a.buckets.size(); ++i) {
      EXPECT_EQ(a.buckets[i].offset, b.buckets[i].offset);
      EXPECT_EQ(a.buckets[i].numel, b.buckets[i].numel);
      EXPECT_EQ(a.buckets[i].shard, b.buckets[i].shard);
      EXPECT_EQ(a.buckets[i].spec, 0u);
      EXPECT_EQ(b.buckets[i].spec, 0u);
    }
    EXPECT_EQ(a.specs, std::vector<std::string>{"ef+fp16"});
    EXPECT_EQ(b.specs, std::vector<std::string>{"ef+fp16"});
  }
}

TEST(LayoutRules, UnmatchedTensorOrBadListIsRefused) {
  ModelSignature sig = named_signature();
  sig.compressor_spec = "rules:conv*=fp16";
  EXPECT_THROW(make_layout(sig, PlacementOptions{}), std::invalid_argument);
  sig.compressor_spec = "rules:conv*";
  EXPECT_THROW(make_layout(sig, PlacementOptions{}), std::invalid_argument);
}

}  // namespace
}  // namespace gradzip::comm
