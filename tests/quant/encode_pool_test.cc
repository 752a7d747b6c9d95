// EncodePool (quant/encode_pool.h): buckets encoded on 1..4 threads give the same
// messages and states as one thread calling Memory::encode_step bucket by bucket, over
// several steps; a refused bucket reports its own status and leaves the others done.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "quant/encode_pool.h"
#include "quant/registry.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

using codec_testing::cached_gradient;

const std::vector<std::size_t> kBucketSizes = {1, 4099, 777, 65537, 33, 9001, 12, 30011, 5, 1000, 2049, 7, 16384};

struct PoolRun {
  std::vector<std::vector<std::uint8_t>> messages;  // per step, all buckets concatenated
  std::vector<MemoryState> states;
};

PoolRun run_steps(const Compressor& c, unsigned threads, int steps) {
  EncodePool pool(threads);
  PoolRun r;
  r.states.resize(kBucketSizes.size());
  for (int step = 0; step < steps; ++step) {
    std::vector<std::vector<std::uint8_t>> out(kBucketSizes.size());
    std::vector<BucketJob> jobs(kBucketSizes.size());
    for (std::size_t b = 0; b < kBucketSizes.size(); ++b) {
      const std::size_t n = kBucketSizes[b];
      out[b].assign(c.codec->max_encoded_bytes(n), 0);
      jobs[b].grad = cached_gradient(n, 50 + static_cast<std::uint32_t>(step)).data();
      jobs[b].n = n;
      jobs[b].ctx = SeedContext{9, static_cast<std::uint64_t>(step), 1, static_cast<std::uint32_t>(b)};
      jobs[b].state = &r.states[b];
      jobs[b].out = out[b].data();
      jobs[b].out_capacity = out[b].size();
    }
    const Status st = pool.encode(*c.memory, *c.codec, jobs.data(), jobs.size());
    EXPECT_TRUE(st.ok()) << st.to_string();
    std::vector<std::uint8_t> all;
    for (std::size_t b = 0; b < jobs.size(); ++b) all.insert(all.end(), out[b].begin(), out[b].begin() + static_cast<std::ptrdiff_t>(jobs[b].out_bytes));
    r.messages.push_back(std::move(all));
  }
  return r;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), 4 * a.size()) == 0);
}

TEST(EncodePool, SameOutputForAnyThreadCount) {
  for (const char* spec : {"ef+fp16", "ef+qsgd:bits=4", "ef+scaled-sign", "ef+topk:ratio=0.01", "dgc+dgc",
                           "ef21+int8", "none+identity"}) {
    const Compressor c = make_compressor(spec);
    ASSERT_EQ(EncodePool(1).threads(), 1u);
    const PoolRun one = run_steps(c, 1, 3);
    for (unsigned threads : {2u, 3u, 4u}) {
      const PoolRun many = run_steps(c, threads, 3);
      EXPECT_EQ(many.messages, one.messages) << spec << " with " << threads << " threads";
      for (std::size_t b = 0; b < kBucketSizes.size(); ++b) {
        EXPECT_TRUE(same_bits(many.states[b].residual, one.states[b].residual)) << spec << " bucket " << b;
        EXPECT_TRUE(same_bits(many.states[b].momentum, one.states[b].momentum)) << spec << " bucket " << b;
        EXPECT_EQ(many.states[b].steps, one.states[b].steps);
      }
    }
  }
}

TEST(EncodePool, EqualsEncodeStepBucketByBucket) {
  const Compressor c = make_compressor("ef+int8");
  const PoolRun pooled = run_steps(c, 2, 2);
  std::vector<MemoryState> states(kBucketSizes.size());
  for (int step = 0; step < 2; ++step) {
    std::vector<std::uint8_t> all;
    for (std::size_t b = 0; b < kBucketSizes.size(); ++b) {
      const std::size_t n = kBucketSizes[b];
      std::vector<std::uint8_t> out(c.codec->max_encoded_bytes(n));
      std::size_t bytes = 0;
      const SeedContext ctx{9, static_cast<std::uint64_t>(step), 1, static_cast<std::uint32_t>(b)};
      ASSERT_TRUE(c.memory->encode_step(*c.codec, cached_gradient(n, 50 + static_cast<std::uint32_t>(step)).data(), n,
                                        ctx, &states[b], out.data(), out.size(), &bytes)
                      .ok());
      all.insert(all.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(bytes));
    }
    EXPECT_EQ(all, pooled.messages[static_cast<std::size_t>(step)]) << "step " << step;
  }
}

TEST(EncodePool, RefusedBucketReportsItsStatusOthersDone) {
  const Compressor c = make_compressor("ef+fp16");
  EncodePool pool(2);
  std::vector<float> good(1000, 0.25f), bad(1000, 0.25f);
  bad[500] = NAN;
  std::vector<MemoryState> states(3);
  std::vector<std::vector<std::uint8_t>> out(3, std::vector<std::uint8_t>(c.codec->max_encoded_bytes(1000)));
  std::vector<BucketJob> jobs(3);
  const float* grads[3] = {good.data(), bad.data(), good.data()};
  for (std::size_t b = 0; b < 3; ++b) {
    jobs[b].grad = grads[b];
    jobs[b].n = 1000;
    jobs[b].state = &states[b];
    jobs[b].out = out[b].data();
    jobs[b].out_capacity = out[b].size();
  }
  EXPECT_EQ(pool.encode(*c.memory, *c.codec, jobs.data(), jobs.size()).code(), Errc::kNonFiniteInput);
  EXPECT_TRUE(jobs[0].status.ok());
  EXPECT_EQ(jobs[1].status.code(), Errc::kNonFiniteInput);
  EXPECT_TRUE(jobs[2].status.ok());
  EXPECT_EQ(states[0].steps, 1u);
  EXPECT_EQ(states[1].steps, 0u);
  for (float e : states[1].residual) EXPECT_EQ(e, 0.0f);
  BucketJob no_state;
  EXPECT_EQ(pool.encode(*c.memory, *c.codec, &no_state, 1).code(), Errc::kInvalidArgument);
}

}  // namespace
}  // namespace gradzip::quant
