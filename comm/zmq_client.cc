#include "comm/zmq_client.h"

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
}  // namespace

struct ZmqWorkerTransport::Impl {
  ZmqClientOptions opt;
  BufferPool pool;
  zmq::context_t ctx{1};
  std::vector<zmq::socket_t> sockets;
  std::vector<std::unique_ptr<HandshakeWatch>> watches;  // per shard: refusals in the handshake
  std::vector<zmq::pollitem_t> items;                     // sockets, then watches
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
  for (auto& w : s.watches) s.items.push_back(w->pollitem());
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
  Impl& s = *impl_;
  for (auto& it : s.items) it.revents = 0;
  zmq::poll(s.items.data(), s.items.size(), std::chrono::milliseconds(static_cast<long>(timeout_s * 1000)));
  const std::size_t n = s.sockets.size();
  for (std::uint32_t i = 0; i < n; ++i) {
    if (!(s.items[n + i].revents & ZMQ_POLLIN)) continue;
    const std::string refused = s.watches[i]->drain();
    if (refused.empty()) continue;
    out->shard = i;
    out->frames.clear();
    out->refused = fmt::format("shard {} ({}) refused the connection: {}", i, s.opt.shard_endpoints[i], refused);
    return true;
  }
  for (std::uint32_t i = 0; i < n; ++i) {
    if (!(s.items[i].revents & ZMQ_POLLIN)) continue;
    auto msgs = std::make_shared<std::vector<zmq::message_t>>();
    if (!zmq::recv_multipart(s.sockets[i], std::back_inserter(*msgs), zmq::recv_flags::dontwait)) continue;
    out->shard = i;
    out->frames.clear();
    for (auto& m : *msgs) out->frames.push_back({static_cast<const std::uint8_t*>(m.data()), m.size()});
    out->owner = msgs;
    return true;
  }
  return false;
}

}  // namespace gradzip::comm
