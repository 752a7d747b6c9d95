// The bare-ZeroMQ floor of the parameter-server benchmarks (bench/comm/comm_bench.cc):
// the messages gradzip's parameter server moves, over the same kind of sockets with the
// same settings, and no gradzip code (no envelope, request table, retries, decode,
// aggregation or optimizer). What a benchmark loses between raw TCP and this floor is
// ZeroMQ's own cost; what it loses between this floor and gradzip is gradzip's.
//
// Sockets as in comm/zmq_server.cc and comm/zmq_client.cc: per shard a ROUTER in its own
// context with one I/O thread, served by one thread; the worker's
// one context (one I/O thread) with a DEALER per shard; high-water marks off, linger 0,
// ZMTP heartbeats, ROUTER_MANDATORY and HANDOVER, bodies sent zero-copy. Each side reads
// with the fewest system calls libzmq allows: blocking receives (ZMQ_RCVTIMEO) on one
// socket, zmq_poll only across several.
//
// Messages (frame 0 is a one-byte kind):
//   ['P'][body]  push: the shard keeps the body (a reference, no copy), answers ['A'];
//   ['L']        pull: the shard sends each body it kept back as ['D'][body] (zero-copy,
//                zmq_msg_copy shares the buffer) and forgets them;
//   [64 bytes]   anything else is echoed as is (the round-trip ping-pong).
// The worker drops the pulled bodies (no copy into a parameter array): a floor.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace gradzip::comm::bench {

/// One floor shard: a bound ROUTER and the thread that serves it.
class BareZmqShard {
 public:
  explicit BareZmqShard(std::size_t max_message_bytes) {
    router_.set(zmq::sockopt::router_mandatory, 1);
    router_.set(zmq::sockopt::router_handover, 1);
    router_.set(zmq::sockopt::linger, 0);
    router_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(max_message_bytes + (64 << 10)));
    router_.set(zmq::sockopt::heartbeat_ivl, 1000);
    router_.set(zmq::sockopt::heartbeat_timeout, 10000);
    router_.set(zmq::sockopt::heartbeat_ttl, 10000);
    router_.set(zmq::sockopt::sndtimeo, 2000);
    router_.set(zmq::sockopt::sndhwm, 0);
    router_.set(zmq::sockopt::rcvhwm, 0);
    router_.set(zmq::sockopt::rcvtimeo, 20);  // serve() turns to see stop_
    router_.bind("tcp://127.0.0.1:0");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    loop_ = std::thread([this] { serve(); });
  }
  ~BareZmqShard() {
    stop_ = true;
    loop_.join();
  }
  BareZmqShard(const BareZmqShard&) = delete;
  BareZmqShard& operator=(const BareZmqShard&) = delete;
  const std::string& endpoint() const { return endpoint_; }

 private:
  void serve() {
    std::vector<zmq::message_t> kept;
    while (!stop_.load()) {
      std::vector<zmq::message_t> msgs;
      if (!zmq::recv_multipart(router_, std::back_inserter(msgs)) || msgs.size() < 2) continue;
      const char kind = msgs[1].size() == 1 ? *static_cast<const char*>(msgs[1].data()) : '\0';
      if (kind == 'P' && msgs.size() == 3) {
        kept.push_back(std::move(msgs[2]));
        router_.send(msgs[0], zmq::send_flags::sndmore);
        router_.send(zmq::str_buffer("A"));
      } else if (kind == 'L') {
        for (auto& body : kept) {
          zmq::message_t id, shared;
          id.copy(msgs[0]);
          shared.copy(body);  // a reference to the same buffer
          router_.send(id, zmq::send_flags::sndmore);
          router_.send(zmq::str_buffer("D"), zmq::send_flags::sndmore);
          router_.send(shared, zmq::send_flags::none);
        }
        kept.clear();
      } else {
        zmq::send_multipart(router_, msgs);
      }
    }
  }

  zmq::context_t ctx_{1};
  zmq::socket_t router_{ctx_, zmq::socket_type::router};
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

/// The worker side: `bytes` in bodies of `bucket_bytes`, bucket b to shard b % shards.
class BareZmqPs {
 public:
  BareZmqPs(std::uint32_t shards, std::size_t bytes, std::size_t bucket_bytes) : body_(bytes, 1) {
    for (std::size_t off = 0; off < bytes; off += bucket_bytes) buckets_.push_back({off, std::min(bucket_bytes, bytes - off)});
    for (std::uint32_t s = 0; s < shards; ++s) {
      shards_.push_back(std::make_unique<BareZmqShard>(bucket_bytes));
      zmq::socket_t sock(ctx_, zmq::socket_type::dealer);
      sock.set(zmq::sockopt::routing_id, "floor-worker");
      sock.set(zmq::sockopt::linger, 0);
      sock.set(zmq::sockopt::sndhwm, 0);
      sock.set(zmq::sockopt::rcvhwm, 0);
      sock.set(zmq::sockopt::heartbeat_ivl, 1000);
      sock.set(zmq::sockopt::heartbeat_timeout, 10000);
      sock.set(zmq::sockopt::rcvtimeo, 1000);
      sock.connect(shards_.back()->endpoint());
      sockets_.push_back(std::move(sock));
    }
    for (auto& s : sockets_) items_.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
    round();  // warm: TCP windows, libzmq's buffers
    for (int i = 0; i < 100; ++i) ping();
  }
  BareZmqPs(const BareZmqPs&) = delete;
  BareZmqPs& operator=(const BareZmqPs&) = delete;

  /// Every bucket pushed (zero-copy) and acknowledged, then pulled back from every shard.
  void round() {
    const std::size_t n = sockets_.size();
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      auto& sock = sockets_[b % n];
      sock.send(zmq::str_buffer("P"), zmq::send_flags::sndmore);
      zmq::message_t body(body_.data() + buckets_[b].offset, buckets_[b].bytes, &no_free, nullptr);
      sock.send(body, zmq::send_flags::none);
    }
    for (auto& sock : sockets_) sock.send(zmq::str_buffer("L"), zmq::send_flags::none);
    receive(2 * buckets_.size());
  }

  /// One 64-byte message to shard 0 and its echo.
  void ping() {
    sockets_[0].send(zmq::buffer(ping_, sizeof(ping_)), zmq::send_flags::none);
    receive(1);
  }

 private:
  struct Slice {
    std::size_t offset, bytes;
  };
  // body_ outlives every send: round() returns only after every body came back.
  static void no_free(void*, void*) {}

  void receive(std::size_t messages) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (messages > 0) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("bare ZeroMQ floor: no reply in 60 s");
      std::vector<zmq::message_t> msgs;
      if (sockets_.size() == 1) {  // a blocking receive: the fewest system calls
        if (zmq::recv_multipart(sockets_[0], std::back_inserter(msgs))) --messages;
        continue;
      }
      zmq::poll(items_.data(), items_.size(), std::chrono::milliseconds(1000));
      for (std::size_t i = 0; i < sockets_.size(); ++i) {
        while (messages > 0 && zmq::recv_multipart(sockets_[i], std::back_inserter(msgs), zmq::recv_flags::dontwait)) {
          --messages;
          msgs.clear();
        }
      }
    }
  }

  std::vector<std::uint8_t> body_;
  std::vector<Slice> buckets_;
  std::uint8_t ping_[64] = {};
  std::vector<std::unique_ptr<BareZmqShard>> shards_;
  zmq::context_t ctx_{1};
  std::vector<zmq::socket_t> sockets_;
  std::vector<zmq::pollitem_t> items_;
};

}  // namespace gradzip::comm::bench
