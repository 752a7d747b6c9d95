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
#include "tests/comm/lsq.h"

namespace gradzip::comm {
namespace {

using testing::lsq_signature;

// Drives a Shard with hand-built requests and decodes its replies.
struct Harness {
  ModelSignature sig;
  Layout layout;
  std::unique_ptr<Shard> shard;
  std::vector<OutMessage> out;

  Harness(ShardOptions o, std::uint32_t shards = 2, const std::string& spec = "identity") {
    sig = lsq_signature();
    sig.compressor_spec = spec;
    PlacementOptions p;
    p.num_shards = shards;
    p.bucket_bytes = 4 * 40;
    sig.placement = p.canonical();
    layout = make_layout(sig, p);
    shard = std::make_unique<Shard>(o, sig, layout);
  }
  void init(float value = 1.0f) {
    std::vector<float> v(layout.shard_numel[0], value);
    shard->initialize(v.data(), &out);
  }
  // Sends frames; returns the envelopes of the replies produced.
  std::vector<Envelope> send(const std::vector<std::vector<std::uint8_t>>& frames) {
    std::vector<FrameView> views;
    for (const auto& f : frames) views.push_back({f.data(), f.size()});
    out.clear();
    shard->handle("peer", views.data(), views.size(), Shard::Clock::now(), &out);
    std::vector<Envelope> envs;
    for (const auto& m : out) {
      Envelope e;
      std::string why;
      EXPECT_TRUE(read_envelope(m.frames[0]->data(), m.frames[0]->size(), &e, &why)) << why;
      envs.push_back(e);
    }
    return envs;
  }
  static std::vector<std::uint8_t> env(MsgType t, std::uint32_t worker, std::uint32_t bucket, std::uint64_t step,
                                       std::uint64_t seq) {
    Envelope e;
    e.type = t;
    e.worker = worker;
    e.bucket = bucket;
    e.step = step;
    e.seq = seq;
    std::vector<std::uint8_t> b(kEnvelopeBytes);
    write_envelope(e, b.data());
    return b;
  }
  std::vector<std::uint8_t> grad_msg(std::uint32_t bucket, float value, const std::string& codec = "identity") {
    std::vector<float> g(layout.buckets[bucket].numel, value);
    return quant::make_codec(codec)->encode(g.data(), g.size(), quant::SeedContext{});
  }
  std::uint32_t owned(std::size_t i = 0) const { return layout.shard_buckets[0].at(i); }
  // Worker w pushes `value` for every bucket of shard 0 at `step` (seq first_seq + i).
  void push_all(std::uint32_t w, std::uint64_t step, float value, std::uint64_t first_seq) {
    for (std::size_t i = 0; i < layout.shard_buckets[0].size(); ++i) {
      send({env(MsgType::kPush, w, owned(i), step, first_seq + i), grad_msg(owned(i), value)});
    }
  }
  std::uint32_t foreign() const { return layout.shard_buckets[1].at(0); }
};

ProtoErr err_of(const Envelope& e) { return static_cast<ProtoErr>(e.bucket); }

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
    ASSERT_EQ(r.size(), 1u) << i;
    EXPECT_EQ(r[0].type, reply_type(req.type)) << i;
    EXPECT_EQ(r[0].seq, req.seq) << i;
    EXPECT_EQ(r[0].worker, req.worker) << i;
  }
  EXPECT_TRUE(h.shard->all_workers_shut_down());
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
  ShardOptions o;
  o.num_workers = 1;
  Harness h(o, 1);
  h.init(0.0f);
  // Workers continue at step 5 (the shard was restored to step 0): the shard jumps.
  for (std::size_t i = 0; i < h.layout.shard_buckets[0].size(); ++i) {
    const auto id = h.owned(i);
    h.send({Harness::env(MsgType::kPush, 0, id, 5, 1 + i), h.grad_msg(id, 1.0f)});
  }
  EXPECT_EQ(h.shard->version(), 6u);
  auto r = h.send({Harness::env(MsgType::kPush, 0, h.owned(), 3, 99), h.grad_msg(h.owned(), 1.0f)});
  EXPECT_EQ(r[0].flags & kFlagStale, kFlagStale);
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
