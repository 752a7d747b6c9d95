// Who may talk to a shard over TCP: CURVE (a refused client learns kRefused from the
// ZAP handshake, not from a timeout) and worker-rank binding (a second connection
// claiming a bound rank, and a raw peer that never said hello, are refused with typed
// errors). In-process ShardServer on loopback; every wait is bounded in time.
#include <gtest/gtest.h>

#include <fstream>
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
      const auto err = static_cast<ProtoErr>(r.bucket);
      EXPECT_EQ(err, ProtoErr::kNotBound) << proto_err_name(err);
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

// A CURVE shard that admits the key pair in client.key; stranger.key is unknown to it.
struct CurveShard {
  TempDir dir;
  std::string server_pub, client_pub;
  std::unique_ptr<ShardServer> server;
  std::thread loop;
  CurveShard() {
    server_pub = generate_curve_keypair(dir / "server.key");
    client_pub = generate_curve_keypair(dir / "client.key");
    generate_curve_keypair(dir / "stranger.key");
    generate_curve_keypair(dir / "impostor-server.key");
    {
      std::ofstream f(dir / "authorized");
      f << client_pub << "\n";
    }
    auto o = server_options(1);
    o.curve_key_file = dir / "server.key";
    o.curve_authorized_keys_file = dir / "authorized";
    server = std::make_unique<ShardServer>(o);
    loop = std::thread([this] { server->run(); });
  }
  ~CurveShard() {
    server->stop();
    join();
  }
  void join() {
    if (loop.joinable()) loop.join();
  }
  // Connects with `c` and returns the CommError (kind and text); fails when it connects.
  static CommError refusal(const ZmqClientOptions& c) {
    ZmqWorkerTransport t(c);
    std::vector<float> x(lsq_signature().total_numel());
    try {
      t.connect(lsq_signature(), 0, x.data());
    } catch (const CommError& e) {
      return e;
    }
    ADD_FAILURE() << "the shard admitted the client";
    return CommError(CommError::Kind::kProtocol, "admitted");
  }
  ZmqClientOptions client(const std::string& server_key, const std::string& key_file) const {
    auto c = client_options(server->endpoint());
    c.curve_server_public_key = server_key;
    c.curve_key_file = key_file.empty() ? "" : dir / key_file;
    c.client.op_timeout_s = 30.0;  // a refusal must not wait for this: kTimeout would say it did
    return c;
  }
};

TEST(ZmqServer, CurveRefusesAPlaintextClientWithKRefused) {
  CurveShard shard;
  const CommError e = CurveShard::refusal(shard.client("", ""));
  EXPECT_EQ(e.kind(), CommError::Kind::kRefused) << e.what();
  EXPECT_NE(std::string(e.what()).find("mechanism mismatch"), std::string::npos) << e.what();
  EXPECT_GE(shard.server->handshake_failures(), 1u);
  EXPECT_EQ(shard.server->stats().version, 0u);
}

TEST(ZmqServer, CurveRefusesAClientWithAWrongServerKeyWithKRefused) {
  CurveShard shard;
  std::string impostor_pub, impostor_sec;
  read_curve_keypair(shard.dir / "impostor-server.key", &impostor_pub, &impostor_sec);
  const CommError e = CurveShard::refusal(shard.client(impostor_pub, "client.key"));
  EXPECT_EQ(e.kind(), CommError::Kind::kRefused) << e.what();
  EXPECT_NE(std::string(e.what()).find("wrong server public key"), std::string::npos) << e.what();
  EXPECT_GE(shard.server->handshake_failures(), 1u);
}

TEST(ZmqServer, CurveRefusesAnUnknownClientKeyWithKRefusedFromTheZapStatus) {
  CurveShard shard;
  const CommError e = CurveShard::refusal(shard.client(shard.server_pub, "stranger.key"));
  EXPECT_EQ(e.kind(), CommError::Kind::kRefused) << e.what();
  EXPECT_NE(std::string(e.what()).find("ZAP handler refused this CURVE key (status 400)"), std::string::npos)
      << e.what();
  EXPECT_GE(shard.server->auth_refusals(), 1u);
}

TEST(ZmqServer, CurveAdmitsAKnownKeyThatTrains) {
  CurveShard shard;
  ZmqWorkerTransport friendly(shard.client(shard.server_pub, "client.key"));
  train_steps(friendly, 0, 2);
  friendly.shutdown();
  shard.join();  // the shard exits once its only worker shut down
  EXPECT_EQ(shard.server->stats().version, 2u);
  EXPECT_EQ(shard.server->auth_refusals(), 0u);
}

}  // namespace
}  // namespace gradzip::comm
