// Shard logic without a transport: validation of hostile input, dedup, majority vote
// (sync and async), reply types, checkpoints (atomic, checksummed, corrupt ones skipped,
// a requested step restored or refused).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "comm/checkpoint.h"
#include "comm/shard.h"
#include "quant/registry.h"
#include "tests/comm/shard_harness.h"

namespace gradzip::comm {
namespace {

using testing::err_of;
using testing::Harness;


TEST(Shard, MalformedBarrageIsRefusedAndTheShardKeepsServing) {
  ShardOptions o;
  o.num_workers = 2;
  o.step_window = 100;
  Harness h(o);
  h.init();
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> byte(0, 255);
  // Random bytes of many lengths, alone and as multipart.
  for (int i = 0; i < 300; ++i) {
    std::vector<std::uint8_t> junk(static_cast<std::size_t>(i % 97));
    for (auto& b : junk) b = static_cast<std::uint8_t>(byte(rng));
    auto r = h.send({junk, junk});
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].type, MsgType::kError);
  }
  const std::uint32_t b0 = h.owned();
  auto good = h.grad_msg(b0, 0.5f);
  // Truncated gradzip message, flipped payload byte (checksum), oversized numel claim.
  auto truncated = good;
  truncated.resize(good.size() - 3);
  const float three_floats[3] = {1, 2, 3};
  const auto three = quant::make_codec("identity")->encode(three_floats, 3, quant::SeedContext{});
  auto flipped = good;
  flipped.back() ^= 0x40;
  struct Bad {
    std::vector<std::vector<std::uint8_t>> frames;
    ProtoErr want;
  };
  std::vector<Bad> bad = {
      {{Harness::env(MsgType::kPush, 0, b0, 0, 1)}, ProtoErr::kMalformed},                       // no body
      {{Harness::env(MsgType::kPush, 0, b0, 0, 1), good, good}, ProtoErr::kMalformed},           // two bodies
      {{Harness::env(MsgType::kPush, 9, b0, 0, 1), good}, ProtoErr::kUnknownWorker},
      {{Harness::env(MsgType::kPush, 0, h.foreign(), 0, 1), h.grad_msg(h.foreign(), 1)}, ProtoErr::kNotOwned},
      {{Harness::env(MsgType::kPush, 0, 60000, 0, 1), good}, ProtoErr::kNotOwned},
      {{Harness::env(MsgType::kPush, 0, b0, 1000, 1), good}, ProtoErr::kWrongStep},
      {{Harness::env(MsgType::kPush, 0, b0, 0, 1), truncated}, ProtoErr::kBadMessage},
      {{Harness::env(MsgType::kPush, 0, b0, 0, 1), flipped}, ProtoErr::kBadMessage},
      {{Harness::env(MsgType::kPush, 0, b0, 0, 1), three}, ProtoErr::kSizeMismatch},
      {{Harness::env(MsgType::kPush, 0, b0, 0, 1), h.grad_msg(b0, 1, "fp16")}, ProtoErr::kCodecMismatch},
      {{Harness::env(MsgType::kHello, 0, 0, 0, 1), {'{', 'x'}}, ProtoErr::kMalformed},
      {{Harness::env(static_cast<MsgType>(0x83), 0, 0, 0, 1)}, ProtoErr::kMalformed},           // reply as request
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    auto r = h.send(bad[i].frames);
    ASSERT_EQ(r.size(), 1u) << i;
    EXPECT_EQ(r[0].type, MsgType::kError) << i;
    EXPECT_EQ(err_of(r[0]), bad[i].want) << i << ": " << proto_err_name(err_of(r[0]));
  }
  const auto st = h.shard->stats();
  EXPECT_EQ(st.refused, 300u + bad.size());
  EXPECT_EQ(st.pushes_applied, 0u);
  // A well-behaved worker is still served.
  for (std::uint32_t w = 0; w < 2; ++w) {
    for (std::size_t i = 0; i < h.layout.shard_buckets[0].size(); ++i) {
      const auto id = h.owned(i);
      auto r = h.send({Harness::env(MsgType::kPush, w, id, 0, 10 + i), h.grad_msg(id, 1.0f)});
      ASSERT_EQ(r.size(), 1u);
      EXPECT_EQ(r[0].type, static_cast<MsgType>(0x83));
    }
  }
  EXPECT_EQ(h.shard->version(), 1u);
  // p = 1 - 0.1 * mean(1, 1)
  for (float v : h.shard->params()) EXPECT_FLOAT_EQ(v, 0.9f);
}

TEST(Shard, DuplicatePushIsAppliedOnce) {
  ShardOptions o;
  o.num_workers = 2;
  Harness h(o, 1);
  h.init(0.0f);
  const auto id = h.owned();
  for (int rep = 0; rep < 3; ++rep) {
    auto r = h.send({Harness::env(MsgType::kPush, 0, id, 0, 7), h.grad_msg(id, 2.0f)});
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].flags & kFlagDuplicate, rep == 0 ? 0 : kFlagDuplicate);
  }
  // A different seq for the same bucket and step is a duplicate too.
  auto r = h.send({Harness::env(MsgType::kPush, 0, id, 0, 8), h.grad_msg(id, 2.0f)});
  EXPECT_EQ(r[0].flags & kFlagDuplicate, kFlagDuplicate);
  EXPECT_EQ(h.shard->stats().duplicates, 3u);
  EXPECT_EQ(h.shard->stats().pushes_applied, 1u);
}

// One sync step with majority vote (lr 1) where worker w pushes grads[w] everywhere;
// returns the shard's parameters after it.
std::vector<float> majority_vote_step(const std::vector<float>& grads, float initial) {
  ShardOptions o;
  o.num_workers = static_cast<std::uint32_t>(grads.size());
  o.aggregation = Aggregation::kMajorityVote;
  o.optimizer.lr = 1.0;
  Harness h(o, 1);
  h.init(initial);
  for (std::uint32_t w = 0; w < o.num_workers; ++w) h.push_all(w, 0, grads[w], 1);
  EXPECT_EQ(h.shard->version(), 1u);
  return h.shard->params();
}

TEST(Shard, MajorityVoteTakesTheSignOfTheSignSum) {
  // mean > 0, majority < 0
  for (float v : majority_vote_step({5.0f, -0.1f, -0.2f}, 0.0f)) EXPECT_FLOAT_EQ(v, 1.0f);  // p = 0 - 1 * sign(-1)
}

TEST(Shard, MajorityVoteTieTakesNoStep) {
  // One vote each way: sign(sum of votes) = 0.
  for (float v : majority_vote_step({3.0f, -0.5f}, 0.25f)) EXPECT_FLOAT_EQ(v, 0.25f);
}

TEST(Shard, AsyncMajorityVoteStepsByTheSignOfEachPush) {
  ShardOptions o;
  o.num_workers = 2;
  o.mode = SyncMode::kAsync;
  o.aggregation = Aggregation::kMajorityVote;
  o.optimizer.lr = 0.5;
  Harness h(o, 1);
  h.init(0.0f);
  const auto id = h.owned();
  const std::uint64_t begin = h.layout.buckets[id].shard_offset;
  const std::uint64_t end = begin + h.layout.buckets[id].numel;
  // Applied on arrival, each by its sign only: p = 0 - 0.5 * sign(-7) - 0.5 * sign(-0.01).
  h.send({Harness::env(MsgType::kPush, 0, id, 0, 1), h.grad_msg(id, -7.0f)});
  h.send({Harness::env(MsgType::kPush, 1, id, 0, 1), h.grad_msg(id, -0.01f)});
  const auto& p = h.shard->params();
  for (std::uint64_t k = 0; k < p.size(); ++k) EXPECT_FLOAT_EQ(p[k], k >= begin && k < end ? 1.0f : 0.0f) << k;
  EXPECT_EQ(h.shard->stats().pushes_applied, 2u);
}

TEST(Shard, EveryRequestTypeIsAnsweredWithItsReplyTypeAndItsSeq) {
  ShardOptions o;
  o.num_workers = 1;
  Harness h(o, 1);
  const std::string sig = signature_to_json(h.sig);
  std::vector<std::vector<std::uint8_t>> init{Harness::env(MsgType::kInit, 0, 0, 0, 2)};
  for (std::size_t i = 0; i < h.layout.shard_buckets[0].size(); ++i) init.push_back(h.grad_msg(h.owned(i), 0.5f));
  const std::vector<std::vector<std::vector<std::uint8_t>>> requests = {
      {Harness::env(MsgType::kHello, 0, 0, 0, 1), std::vector<std::uint8_t>(sig.begin(), sig.end())},
      init,
      {Harness::env(MsgType::kPush, 0, h.owned(), 0, 3), h.grad_msg(h.owned(), 1.0f)},
      {Harness::env(MsgType::kPull, 0, 0, kLatestStep, 4)},
      {Harness::env(MsgType::kBarrier, 0, 0, 0, 5)},
      {Harness::env(MsgType::kHeartbeat, 0, 0, 0, 6)},
      {Harness::env(MsgType::kShutdown, 0, 0, 0, 7)},
  };
  for (std::size_t i = 0; i < requests.size(); ++i) {
    Envelope req;
    std::string why;
    ASSERT_TRUE(read_envelope(requests[i][0].data(), requests[i][0].size(), &req, &why)) << why;
    const auto r = h.send(requests[i]);
    // A dense pull is answered in parts, one message per bucket; every other request once.
    ASSERT_EQ(r.size(), req.type == MsgType::kPull ? h.owned_count() : 1u) << i;
    for (const auto& reply : r) {
      EXPECT_EQ(reply.type, reply_type(req.type)) << i;
      EXPECT_EQ(reply.seq, req.seq) << i;
      EXPECT_EQ(reply.worker, req.worker) << i;
    }
  }
  EXPECT_TRUE(h.shard->all_workers_shut_down());
}

TEST(Shard, BarrierReleasesWhenEveryLiveWorkerArrivedAndAnswersARetryAtOnce) {
  ShardOptions o;
  o.num_workers = 2;
  Harness h(o, 1);
  h.init();
  EXPECT_TRUE(h.send({Harness::env(MsgType::kBarrier, 0, 0, 0, 5)}).empty());
  const auto released = h.send({Harness::env(MsgType::kBarrier, 1, 0, 0, 9)});
  ASSERT_EQ(released.size(), 2u);
  for (const auto& r : released) EXPECT_EQ(r.type, reply_type(MsgType::kBarrier));
  // Worker 0's reply was lost; its retry (same seq) must not wait for a new barrier.
  const auto retry = h.send({Harness::env(MsgType::kBarrier, 0, 0, 0, 5)});
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].seq, 5u);
  // A new barrier (new seq) waits again.
  EXPECT_TRUE(h.send({Harness::env(MsgType::kBarrier, 0, 0, 0, 6)}).empty());
}

// Two workers, parameters 0: worker 0 pushed every bucket of step 0 (gradient 1), worker
// 1 none yet.
ShardOptions two_workers() {
  ShardOptions o;
  o.num_workers = 2;
  return o;
}
void worker_zero_pushed_step_zero(Harness& h) {
  h.init(0.0f);
  ASSERT_GE(h.owned_count(), 3u);
  h.push_all(0, 0, 1.0f, 1);
}

TEST(Shard, AWaitingPullGetsEachBucketAsSoonAsEveryWorkerPushedIt) {
  Harness h(two_workers(), 1);
  worker_zero_pushed_step_zero(h);
  EXPECT_TRUE(h.send({Harness::env(MsgType::kPull, 0, 0, 0, 50)}).empty()) << "step 0 is not complete";
  std::vector<int> parts(h.owned_count(), 0);
  for (std::size_t i = 0; i < h.owned_count(); ++i) {
    // Worker 1's push of bucket i completes that bucket: its part of worker 0's pull goes
    // out with the push's ack, before the step is complete.
    const auto r = h.send({Harness::env(MsgType::kPush, 1, h.owned(i), 0, 100 + i), h.grad_msg(h.owned(i), 3.0f)});
    for (const auto& e : r) {
      if (e.type != reply_type(MsgType::kPull)) continue;
      EXPECT_EQ(e.seq, 50u);
      EXPECT_EQ(e.flags & kFlagPart, kFlagPart);
      ASSERT_LT(e.bucket, parts.size());
      ++parts[e.bucket];
      EXPECT_EQ(e.aux, 1u) << "the part reflects step 0 applied";
    }
    EXPECT_EQ(parts[i], 1) << "bucket " << i << " was not sent when it was complete";
    if (i + 1 < h.owned_count()) {
      EXPECT_EQ(h.shard->version(), 0u);
    }
  }
  EXPECT_EQ(h.shard->version(), 1u);
  EXPECT_EQ(parts, std::vector<int>(h.owned_count(), 1)) << "every part exactly once";
  for (float v : h.shard->params()) EXPECT_FLOAT_EQ(v, -0.2f);  // 0 - 0.1 * mean(1, 3)
}

// A waiting one-bucket pull (the pipelined worker's next forward needs that bucket only)
// is answered as soon as its bucket is complete, not when the whole step is.
TEST(Shard, AWaitingOneBucketPullIsAnsweredWhenItsBucketIsComplete) {
  Harness h(two_workers(), 1);
  worker_zero_pushed_step_zero(h);
  const std::size_t last = h.owned_count() - 1;
  auto frame = Harness::env(MsgType::kPull, 0, h.owned(last), 0, 60);
  frame[7] = kFlagOneBucket;  // envelope flags byte (comm/protocol.h)
  EXPECT_TRUE(h.send({frame}).empty()) << "step 0 is not complete";
  // Complete the last bucket first: the pull is answered with it while the others wait.
  std::vector<std::size_t> order = {last};
  for (std::size_t i = 0; i < last; ++i) order.push_back(i);
  int answers = 0;
  for (std::size_t i : order) {
    const auto r = h.send({Harness::env(MsgType::kPush, 1, h.owned(i), 0, 100 + i), h.grad_msg(h.owned(i), 3.0f)});
    for (std::size_t k = 0; k < r.size(); ++k) {
      if (r[k].type != reply_type(MsgType::kPull)) continue;
      ++answers;
      EXPECT_EQ(i, last) << "answered when bucket " << i << " completed";
      EXPECT_EQ(r[k].seq, 60u);
      EXPECT_EQ(r[k].flags & kFlagPart, 0) << "one reply, no part";
      EXPECT_EQ(r[k].aux, 1u) << "reflects step 0 applied";
      EXPECT_EQ(h.shard->version(), 0u) << "before the step is complete";
      const auto& msg = h.out[k];
      ASSERT_EQ(msg.frames.size(), 2u);
      std::vector<float> got(h.layout.buckets[h.owned(last)].numel);
      ASSERT_TRUE(quant::decode_any(msg.frames[1]->data(), msg.frames[1]->size(), got.data(), got.size()).ok());
      for (float v : got) EXPECT_FLOAT_EQ(v, -0.2f);  // 0 - 0.1 * mean(1, 3)
    }
  }
  EXPECT_EQ(answers, 1) << "answered exactly once";
  EXPECT_EQ(h.shard->version(), 1u);
}

TEST(Shard, CheckpointsAreWrittenAndACorruptOneIsSkipped) {
  const auto dir = std::filesystem::temp_directory_path() / ("gz_ckpt_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ShardOptions o;
  o.num_workers = 1;
  o.checkpoint_dir = dir.string();
  o.checkpoint_every = 1;
  o.optimizer.momentum = 0.5;
  std::vector<float> after_step2;
  {
    Harness h(o, 1);
    h.init(0.0f);
    for (std::uint64_t step = 0; step < 3; ++step) {
      for (std::size_t i = 0; i < h.layout.shard_buckets[0].size(); ++i) {
        const auto id = h.owned(i);
        h.send({Harness::env(MsgType::kPush, 0, id, step, 100 * step + i), h.grad_msg(id, 1.0f)});
      }
      if (step == 1) after_step2 = h.shard->params();
    }
    EXPECT_EQ(h.shard->stats().checkpoints_written, 3u);
  }
  // Corrupt the newest (step 3): one flipped byte in the parameters.
  const auto newest = dir / "shard-0-step-000000000003.ckpt";
  ASSERT_TRUE(std::filesystem::exists(newest));
  {
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(50);
    char c = 0x7f;
    f.write(&c, 1);
  }
  o.restore = true;
  Harness r(o, 1);
  EXPECT_TRUE(r.shard->initialized());
  EXPECT_EQ(r.shard->version(), 2u);
  EXPECT_EQ(r.shard->params(), after_step2);
  // A resumed run asks for one step: it is restored, or the shard refuses to start.
  o.restore_version = 2;
  Harness exact(o, 1);
  EXPECT_EQ(exact.shard->version(), 2u);
  o.restore_version = 3;  // the corrupt one
  EXPECT_THROW({ Harness refused(o, 1); }, std::runtime_error);
  std::filesystem::remove_all(dir);
}

TEST(Shard, StaleAndAheadStepsAfterRestoreJumpForward) {
  const auto dir = std::filesystem::temp_directory_path() / ("gz_jump_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ShardOptions o;
  o.num_workers = 1;
  o.checkpoint_dir = dir.string();
  o.checkpoint_every = 1;
  {
    Harness h(o, 1);
    h.init(0.0f);
    h.push_all(0, 0, 1.0f, 1);
    ASSERT_EQ(h.shard->version(), 1u);
  }
  // Restored to step 1 while the worker continues at step 5: the shard jumps.
  o.restore = true;
  Harness h(o, 1);
  ASSERT_EQ(h.shard->version(), 1u);
  h.hello(0);
  h.push_all(0, 5, 1.0f, 1);
  EXPECT_EQ(h.shard->version(), 6u);
  auto r = h.send({Harness::env(MsgType::kPush, 0, h.owned(), 3, 99), h.grad_msg(h.owned(), 1.0f)});
  EXPECT_EQ(r[0].flags & kFlagStale, kFlagStale);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gradzip::comm

namespace gradzip::comm {
namespace {

// A kFlagOneBucket pull is answered with that bucket's message only, and refused for a
// bucket the shard does not own; an async push's acknowledgement carries its staleness.
TEST(Shard, OneBucketPullsAndStalenessInAsyncAcks) {
  ShardOptions o;
  o.num_workers = 2;
  o.mode = SyncMode::kAsync;
  Harness h(o);
  h.init(2.0f);
  auto pull = [](std::uint32_t worker, std::uint32_t bucket, std::uint64_t seq) {
    auto frame = Harness::env(MsgType::kPull, worker, bucket, kLatestStep, seq);
    frame[7] = kFlagOneBucket;  // envelope flags byte (comm/protocol.h)
    return frame;
  };
  const std::uint32_t b1 = h.owned(1);
  auto r = h.send({pull(0, b1, 1)});
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].type, reply_type(MsgType::kPull));
  ASSERT_EQ(h.out[0].frames.size(), 2u) << "envelope + one bucket";
  std::vector<float> got(h.layout.buckets[b1].numel);
  ASSERT_TRUE(quant::decode_any(h.out[0].frames[1]->data(), h.out[0].frames[1]->size(), got.data(), got.size()).ok());
  EXPECT_EQ(got, std::vector<float>(got.size(), 2.0f));
  r = h.send({pull(0, h.foreign(), 2)});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].type, MsgType::kError);
  EXPECT_EQ(err_of(r[0]), ProtoErr::kNotOwned);

  // Worker 1 pulls bucket b1, worker 0 pushes it three times, then worker 1 pushes it:
  // three updates happened since worker 1 read it.
  h.send({pull(1, b1, 3)});
  for (std::uint64_t s = 0; s < 3; ++s) {
    r = h.send({Harness::env(MsgType::kPush, 0, b1, s, 10 + s), h.grad_msg(b1, 0.1f)});
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].flags & kFlagStaleness, kFlagStaleness);
  }
  r = h.send({Harness::env(MsgType::kPush, 1, b1, 0, 20), h.grad_msg(b1, 0.1f)});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].flags & kFlagStaleness, kFlagStaleness);
  EXPECT_EQ(r[0].bucket, 3u) << "staleness of worker 1's push";
  // The histogram counts each of the four pushes once, by its staleness; worker 1's is 3,
  // the largest.
  const auto hist = h.shard->stats().staleness_histogram;
  std::uint64_t pushes = 0;
  for (const auto& [staleness, n] : hist) pushes += n;
  EXPECT_EQ(pushes, 4u);
  EXPECT_EQ(hist.count(3), 1u);
  EXPECT_EQ(hist.at(3), 1u);
  EXPECT_EQ(hist.rbegin()->first, h.shard->stats().staleness_max);
  EXPECT_NE(h.shard->stats().to_json().find("\"histogram\":{"), std::string::npos);
}

// Flag bits per message type: a request carries none but kFlagOneBucket on a pull (reply
// flags are refused), and a whole-model dense pull is answered in kFlagPart messages while
// a one-bucket pull gets one reply without kFlagPart (the client tells them apart).
TEST(Shard, RequestFlagsAreCheckedAndPartsAreTellableFromOneBucketReplies) {
  ShardOptions o;
  o.num_workers = 1;
  Harness h(o);
  h.init(1.0f);
  auto with_flags = [](MsgType t, std::uint32_t bucket, std::uint64_t step, std::uint64_t seq, std::uint8_t flags) {
    auto frame = Harness::env(t, 0, bucket, step, seq);
    frame[7] = flags;  // envelope flags byte (comm/protocol.h)
    return frame;
  };
  const std::vector<std::pair<MsgType, std::uint8_t>> bad = {
      {MsgType::kPull, kFlagPart},           {MsgType::kPull, kFlagStaleness}, {MsgType::kPull, kFlagDelta},
      {MsgType::kPush, kFlagOneBucket},      {MsgType::kBarrier, kFlagPart},  {MsgType::kHeartbeat, kFlagStale},
      {MsgType::kPull, kFlagOneBucket | kFlagPart}};
  std::uint64_t seq = 1;
  for (const auto& [type, flags] : bad) {
    std::vector<std::vector<std::uint8_t>> frames = {with_flags(type, h.owned(), 0, seq++, flags)};
    if (type == MsgType::kPush) frames.push_back(h.grad_msg(h.owned(), 1.0f));
    const auto r = h.send(frames);
    ASSERT_EQ(r.size(), 1u) << "type " << int(type) << " flags " << int(flags);
    EXPECT_EQ(r[0].type, MsgType::kError) << "type " << int(type) << " flags " << int(flags);
    EXPECT_EQ(err_of(r[0]), ProtoErr::kMalformed) << "type " << int(type) << " flags " << int(flags);
  }
  EXPECT_EQ(h.shard->version(), 0u) << "no refused push was applied";
  EXPECT_EQ(h.hello(0, "peer", kFlagUninitialized).type, MsgType::kError) << "a reply flag on a hello";

  auto r = h.send({with_flags(MsgType::kPull, h.owned(1), kLatestStep, seq++, kFlagOneBucket)});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].type, reply_type(MsgType::kPull));
  EXPECT_EQ(r[0].flags & kFlagPart, 0) << "a one-bucket reply is no part";
  EXPECT_EQ(r[0].bucket, 1u) << "one body frame";
  r = h.send({with_flags(MsgType::kPull, 0, kLatestStep, seq++, 0)});
  ASSERT_EQ(r.size(), h.owned_count()) << "one message per bucket";
  std::vector<int> parts(h.owned_count(), 0);
  for (const auto& e : r) {
    EXPECT_EQ(e.flags & kFlagPart, kFlagPart);
    ASSERT_LT(e.bucket, parts.size());
    ++parts[e.bucket];
  }
  EXPECT_EQ(parts, std::vector<int>(h.owned_count(), 1));
}

// Sync acknowledgements keep echoing the bucket and carry no staleness.
TEST(Shard, SyncAcksCarryNoStaleness) {
  ShardOptions o;
  o.num_workers = 1;
  Harness h(o);
  h.init();
  const auto r = h.send({Harness::env(MsgType::kPush, 0, h.owned(), 0, 1), h.grad_msg(h.owned(), 0.5f)});
  ASSERT_FALSE(r.empty());
  EXPECT_EQ(r[0].flags & kFlagStaleness, 0);
  EXPECT_EQ(r[0].bucket, h.owned());
}

}  // namespace
}  // namespace gradzip::comm
