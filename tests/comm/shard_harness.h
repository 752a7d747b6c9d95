// Drives a comm::Shard with hand-built requests from named peers and decodes its
// replies (no transport). Shared by the shard unit tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "comm/shard.h"
#include "quant/registry.h"
#include "tests/comm/lsq.h"

namespace gradzip::comm::testing {

struct Harness {
  ModelSignature sig;
  Layout layout;
  ShardOptions options;
  std::unique_ptr<Shard> shard;
  std::vector<OutMessage> out;

  explicit Harness(ShardOptions o, std::uint32_t shards = 2, const std::string& spec = "identity") : options(o) {
    sig = lsq_signature();
    sig.compressor_spec = spec;
    PlacementOptions p;
    p.num_shards = shards;
    p.bucket_bytes = 4 * 40;
    sig.placement = p.canonical();
    layout = make_layout(sig, p);
    shard = std::make_unique<Shard>(o, sig, layout);
  }
  /// Sets the partition to `value` everywhere and binds every worker rank to "peer".
  void init(float value = 1.0f) {
    std::vector<float> v(layout.shard_numel[0], value);
    shard->initialize(v.data(), &out);
    for (std::uint32_t w = 0; w < options.num_workers; ++w) hello(w);
  }
  /// Worker `w` says hello from `peer`; returns the reply envelope.
  Envelope hello(std::uint32_t w, const std::string& peer = "peer", std::uint8_t flags = 0) {
    const std::string json = signature_to_json(sig);
    auto e = env(MsgType::kHello, w, 0, 0, 1000000 + w);
    e[7] = flags;
    const auto r = send({e, std::vector<std::uint8_t>(json.begin(), json.end())}, peer);
    EXPECT_EQ(r.size(), 1u);
    return r.empty() ? Envelope{} : r[0];
  }
  /// Sends frames from `peer`; returns the envelopes of the replies produced.
  std::vector<Envelope> send(const std::vector<std::vector<std::uint8_t>>& frames, const std::string& peer = "peer") {
    std::vector<FrameView> views;
    for (const auto& f : frames) views.push_back({f.data(), f.size()});
    out.clear();
    shard->handle(peer, views.data(), views.size(), Shard::Clock::now(), &out);
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
  std::size_t owned_count() const { return layout.shard_buckets[0].size(); }
  /// Worker w pushes `value` for every bucket of shard 0 at `step` (seq first_seq + i)
  /// from `peer`; returns the reply envelopes.
  std::vector<Envelope> push_all(std::uint32_t w, std::uint64_t step, float value, std::uint64_t first_seq,
                                 const std::string& peer = "peer") {
    std::vector<Envelope> replies;
    for (std::size_t i = 0; i < owned_count(); ++i) {
      for (const auto& r : send({env(MsgType::kPush, w, owned(i), step, first_seq + i), grad_msg(owned(i), value)},
                                peer)) {
        replies.push_back(r);
      }
    }
    return replies;
  }
  std::uint32_t foreign() const { return layout.shard_buckets[1].at(0); }
};

inline ProtoErr err_of(const Envelope& e) { return static_cast<ProtoErr>(e.bucket); }

}  // namespace gradzip::comm::testing
