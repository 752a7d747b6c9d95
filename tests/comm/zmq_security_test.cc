// Who may talk to a shard over TCP: CURVE (a refused client learns kRefused from the
// ZAP handshake, not from a timeout) and worker-rank binding (a second connection
// claiming a bound rank, and a raw peer that never said hello, are refused with typed
// errors). In-process ShardServer on loopback; every wait is bounded in time.
#include <gtest/gtest.h>

#include <thread>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tests/comm/zmq_helpers.h"

namespace gradzip::comm {
namespace {

using namespace testing;  // NOLINT: the helpers of these tests

// Sends one request envelope from a raw DEALER and returns the reply envelope (or a
// default one with type kHello when nothing came back within 5 s).
Envelope raw_request(zmq::socket_t& sock, const Envelope& e) {
  std::uint8_t head[kEnvelopeBytes];
  write_envelope(e, head);
  sock.send(zmq::buffer(head, sizeof head), zmq::send_flags::none);
  zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, std::chrono::milliseconds(5000));
  std::vector<zmq::message_t> parts;
  Envelope r;
  std::string why;
  if ((item.revents & ZMQ_POLLIN) && zmq::recv_multipart(sock, std::back_inserter(parts)) && !parts.empty()) {
    EXPECT_TRUE(read_envelope(static_cast<const std::uint8_t*>(parts[0].data()), parts[0].size(), &r, &why)) << why;
  }
  return r;
}

TEST(ZmqServer, ASecondConnectionClaimingABoundRankAndARawPeerWithoutHelloAreRefused) {
  ShardServer server(server_options(2));
  std::thread loop([&] { server.run(); });
  ZmqWorkerTransport first(client_options(server.endpoint()));
  std::vector<float> x(lsq_signature().total_numel(), 0.0f);
  first.connect(lsq_signature(), 0, x.data());
  {
    ZmqWorkerTransport second(client_options(server.endpoint()));
    try {
      second.connect(lsq_signature(), 0, x.data());
      ADD_FAILURE() << "a second connection took bound rank 0";
    } catch (const CommError& e) {
      EXPECT_EQ(e.kind(), CommError::Kind::kRefused);
      EXPECT_NE(std::string(e.what()).find("rank_taken"), std::string::npos) << e.what();
    }
  }
  {
    // A raw peer that never said hello asks for rank 0's and rank 1's pulls far ahead.
    zmq::context_t ctx;
    zmq::socket_t raw(ctx, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(server.endpoint());
    for (std::uint32_t w = 0; w < 2; ++w) {
      Envelope e;
      e.type = MsgType::kPull;
      e.worker = w;
      e.step = 50;
      e.seq = 1 + w;
      const Envelope r = raw_request(raw, e);
      EXPECT_EQ(r.type, MsgType::kError);
      EXPECT_EQ(static_cast<ProtoErr>(r.bucket), ProtoErr::kNotBound) << proto_err_name(static_cast<ProtoErr>(r.bucket));
    }
  }
  // Rank 1 connects normally and both train: the shard's step moved only with them.
  std::thread other([&] {
    ZmqWorkerTransport t(client_options(server.endpoint()));
    train_steps(t, 1, 2);
    t.shutdown();
  });
  std::vector<float> g(x.size());
  LsqProblem prob(x.size(), 24, 0);
  BucketEncoder enc("identity");
  for (std::uint64_t step = first.resume_step(); step < 2; ++step) {
    prob.gradient(x.data(), g.data());
    auto msgs = enc.encode(first.layout(), g.data(), step, 0);
    std::vector<Handle> hs;
    for (std::uint32_t b = 0; b < msgs.size(); ++b) hs.push_back(first.push(step, b, msgs[b].data(), msgs[b].size()));
    for (auto h : hs) first.wait(h);
    first.wait(first.pull(step, x.data()));
  }
  first.shutdown();
  other.join();
  loop.join();
  const auto st = server.stats();
  EXPECT_EQ(st.version, 2u);
  EXPECT_EQ(st.refused_by_reason.at("rank_taken"), 1u);
  EXPECT_EQ(st.refused_by_reason.at("not_bound"), 2u);
}

TEST(ZmqServer, CurveAdmitsKnownKeysAndRefusesUnknownOnes) {
  TempDir dir;
  const std::string server_pub = generate_curve_keypair(dir / "server.key");
  const std::string client_pub = generate_curve_keypair(dir / "client.key");
  generate_curve_keypair(dir / "stranger.key");
  {
    std::ofstream f(dir / "authorized");
    f << client_pub << "\n";
  }
  auto o = server_options(1);
  o.curve_key_file = dir / "server.key";
  o.curve_authorized_keys_file = dir / "authorized";
  ShardServer server(o);
  std::thread loop([&] { server.run(); });
  {
    auto c = client_options(server.endpoint());
    c.curve_server_public_key = server_pub;
    c.curve_key_file = dir / "stranger.key";
    c.client.op_timeout_s = 1.5;
    ZmqWorkerTransport stranger(c);
    std::vector<float> x(lsq_signature().total_numel());
    EXPECT_THROW(stranger.connect(lsq_signature(), 0, x.data()), CommError);
  }
  EXPECT_GE(server.auth_refusals(), 1u);
  auto c = client_options(server.endpoint());
  c.curve_server_public_key = server_pub;
  c.curve_key_file = dir / "client.key";
  ZmqWorkerTransport friendly(c);
  train_steps(friendly, 0, 2);
  friendly.shutdown();
  loop.join();
  EXPECT_EQ(server.stats().version, 2u);
}

}  // namespace
}  // namespace gradzip::comm
