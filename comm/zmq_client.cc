#include "comm/zmq_client.h"

#include <chrono>
#include <cstring>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "comm/buffer_pool.h"
#include "comm/zmq_handshake.h"
#include "comm/zmq_server.h"

namespace gradzip::comm {

namespace {
void release_shared_bytes(void* /*data*/, void* hint) { delete static_cast<SharedBytes*>(hint); }
// Smaller frames (envelopes, hellos) are copied into the zmq message: cheaper than a
// reference count and a free function.
constexpr std::size_t kCopyBelowBytes = 64 << 10;
// Longest a handshake monitor goes unread while replies keep the sockets busy.
constexpr std::chrono::milliseconds kWatchEvery{20};
}  // namespace

struct ZmqWorkerTransport::Impl {
  ZmqClientOptions opt;
  BufferPool pool;
  zmq::context_t ctx{1};
  std::vector<zmq::socket_t> sockets;
  std::vector<std::unique_ptr<HandshakeWatch>> watches;  // per shard: refusals in the handshake
  std::vector<zmq::pollitem_t> items;                     // per shard socket
  std::chrono::steady_clock::time_point last_watch;       // watches last drained
  std::chrono::milliseconds rcvtimeo{-1};                 // ZMQ_RCVTIMEO of a lone socket

  /// Drains every shard's handshake monitor; true (and *out names the shard) when one
  /// refuses this worker's connection.
  bool refused_by_a_shard(Received* out) {
    last_watch = std::chrono::steady_clock::now();
    for (std::uint32_t i = 0; i < watches.size(); ++i) {
      const std::string refused = watches[i]->drain();
      if (refused.empty()) continue;
      out->shard = i;
      out->frames.clear();
      out->refused = fmt::format("shard {} ({}) refused the connection: {}", i, opt.shard_endpoints[i], refused);
      return true;
    }
    return false;
  }
};

ZmqWorkerTransport::ZmqWorkerTransport(ZmqClientOptions options)
    : RequestClient(options.client), impl_(std::make_unique<Impl>()) {
  if (options.shard_endpoints.size() != options.client.placement.num_shards) {
    throw std::invalid_argument("zmq client: " + std::to_string(options.shard_endpoints.size()) +
                                " shard endpoints for " + std::to_string(options.client.placement.num_shards) +
                                " shards");
  }
  impl_->opt = std::move(options);
}

ZmqWorkerTransport::~ZmqWorkerTransport() { stop_heartbeats(); }

void ZmqWorkerTransport::open(std::uint32_t num_shards, std::uint32_t worker_rank) {
  Impl& s = *impl_;
  keep_freed_message_memory();
  std::string pub, sec;
  if (!s.opt.curve_server_public_key.empty()) read_curve_keypair(s.opt.curve_key_file, &pub, &sec);
  // The routing id names this transport's connections for the life of the process: it
  // survives reconnects (a cut link), and a restarted worker gets a new one, so a shard
  // can tell the worker bound by its hello from any other claimant of the rank.
  std::random_device rd;
  const std::uint64_t nonce = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  const std::string routing_id = fmt::format("w{}-{:016x}", worker_rank, nonce);
  for (std::uint32_t i = 0; i < num_shards; ++i) {
    zmq::socket_t sock(s.ctx, zmq::socket_type::dealer);
    sock.set(zmq::sockopt::routing_id, routing_id);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::sndhwm, 0);
    sock.set(zmq::sockopt::rcvhwm, 0);
    sock.set(zmq::sockopt::heartbeat_ivl, s.opt.heartbeat_ivl_ms);
    sock.set(zmq::sockopt::heartbeat_timeout, s.opt.heartbeat_timeout_ms);
    sock.set(zmq::sockopt::reconnect_ivl, 100);
    sock.set(zmq::sockopt::reconnect_ivl_max, 1000);
    if (!s.opt.curve_server_public_key.empty()) {
      sock.set(zmq::sockopt::curve_serverkey, s.opt.curve_server_public_key);
      sock.set(zmq::sockopt::curve_publickey, pub);
      sock.set(zmq::sockopt::curve_secretkey, sec);
    }
    s.watches.push_back(std::make_unique<HandshakeWatch>(
        s.ctx, sock, fmt::format("inproc://gz-handshake-{}", i), !s.opt.curve_server_public_key.empty()));
    sock.connect(s.opt.shard_endpoints[i]);
    s.sockets.push_back(std::move(sock));
  }
  for (auto& sock : s.sockets) s.items.push_back({sock.handle(), 0, ZMQ_POLLIN, 0});
}

void ZmqWorkerTransport::send_frames(std::uint32_t shard, const std::vector<FrameView>& frames,
                                     const std::vector<SharedBytes>& owners) {
  Impl& s = *impl_;
  auto& sock = s.sockets.at(shard);
  try {
    for (std::size_t i = 0; i < frames.size(); ++i) {
      const auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      SharedBytes owner = i < owners.size() ? owners[i] : nullptr;
      if (!owner && frames[i].size > kCopyBelowBytes) {
        // A borrowed body: one copy into a pooled buffer (no page faults), then zero-copy.
        auto copy = s.pool.acquire(frames[i].size);
        std::memcpy(copy->data(), frames[i].data, frames[i].size);
        owner = std::move(copy);
      }
      if (!owner) {
        zmq::message_t m(frames[i].data, frames[i].size);
        sock.send(m, flags);
        continue;
      }
      // Zero-copy: libzmq reads the owner's bytes and releases the reference when sent.
      auto* hold = new SharedBytes(std::move(owner));
      zmq::message_t m(const_cast<std::uint8_t*>(frames[i].data), frames[i].size, &release_shared_bytes, hold);
      sock.send(m, flags);
    }
  } catch (const zmq::error_t& e) {
    throw CommError(CommError::Kind::kIo, std::string("zmq send to shard ") + std::to_string(shard) + ": " + e.what());
  }
}

bool ZmqWorkerTransport::receive(double timeout_s, Received* out) {
  // System calls set the round trip of a small request (bench/comm, strace -f -c): each
  // zmq socket in a zmq_poll set costs a poll(2) per pass, so the handshake monitors are
  // not polled; they are drained when a receive times out (a refusing shard sends
  // nothing) and at least every kWatchEvery while replies flow. With one shard the reply
  // is read by a blocking receive (ZMQ_RCVTIMEO): a queued reply costs no system call
  // and a wait one poll(2) on the socket's mailbox, where zmq_poll and a non-blocking
  // receive take ~4.
  Impl& s = *impl_;
  if (std::chrono::steady_clock::now() - s.last_watch >= kWatchEvery && s.refused_by_a_shard(out)) return true;
  const std::size_t n = s.sockets.size();
  const auto timeout = std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  auto msgs = std::make_shared<std::vector<zmq::message_t>>();
  std::uint32_t from = 0;
  bool got = false;
  if (n == 1) {
    if (s.rcvtimeo != timeout) {
      s.sockets[0].set(zmq::sockopt::rcvtimeo, static_cast<int>(timeout.count()));
      s.rcvtimeo = timeout;
    }
    got = zmq::recv_multipart(s.sockets[0], std::back_inserter(*msgs)).has_value();
  } else {
    for (auto& it : s.items) it.revents = 0;
    zmq::poll(s.items.data(), n, timeout);
    for (from = 0; from < n; ++from) {
      if (!(s.items[from].revents & ZMQ_POLLIN)) continue;
      got = zmq::recv_multipart(s.sockets[from], std::back_inserter(*msgs), zmq::recv_flags::dontwait).has_value();
      if (got) break;
    }
  }
  if (!got) return s.refused_by_a_shard(out);
  out->shard = from;
  out->frames.clear();
  for (auto& m : *msgs) out->frames.push_back({static_cast<const std::uint8_t*>(m.data()), m.size()});
  out->owner = msgs;
  return true;
}

}  // namespace gradzip::comm
