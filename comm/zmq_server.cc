#include "comm/zmq_server.h"

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "comm/buffer_pool.h"
#include "comm/zmq_handshake.h"

namespace gradzip::comm {

std::string generate_curve_keypair(const std::string& path) {
  char pub[41] = {}, sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0) throw std::runtime_error("zmq_curve_keypair failed (libzmq without CURVE?)");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << pub << "\n" << sec << "\n";
    if (!f) throw std::runtime_error("cannot write key file " + path);
  }
  std::filesystem::permissions(tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::rename(tmp, path);
  return pub;
}

void read_curve_keypair(const std::string& path, std::string* public_key, std::string* secret_key) {
  std::ifstream f(path);
  std::string pub, sec;
  if (!(f >> pub >> sec) || pub.size() != 40 || sec.size() != 40) {
    throw std::runtime_error("key file " + path + ": expected two 40-character Z85 keys (public, secret)");
  }
  *public_key = pub;
  *secret_key = sec;
}

namespace {

std::set<std::string> read_authorized(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read authorized keys file " + path);
  std::set<std::string> keys;
  std::string line;
  while (f >> line) {
    if (line.size() != 40) throw std::runtime_error("authorized keys file " + path + ": bad key '" + line + "'");
    std::uint8_t raw[32];
    if (zmq_z85_decode(raw, line.c_str()) == nullptr) throw std::runtime_error("bad Z85 key in " + path);
    keys.insert(std::string(reinterpret_cast<char*>(raw), 32));
  }
  return keys;
}

void free_shared(void* /*data*/, void* hint) { delete static_cast<SharedBytes*>(hint); }

// Longest run() waits for a request before it turns (ticks, stats, stop()).
constexpr int kTurnMs = 20;

}  // namespace

struct ShardServer::Impl {
  ShardServerOptions opt;
  std::unique_ptr<Shard> shard;
  zmq::context_t ctx{1};
  zmq::socket_t router{ctx, zmq::socket_type::router};
  std::string endpoint;
  std::atomic<bool> stop{false};
  mutable std::mutex stats_mu;
  ShardStats stats_snapshot;
  std::atomic<std::uint64_t> send_failures{0};
  std::atomic<std::uint64_t> auth_refusals{0};
  std::thread zap_thread;
  std::set<std::string> authorized;
  std::unique_ptr<HandshakeWatch> handshakes;
  std::atomic<std::uint64_t> handshake_failures{0};

  void watch_handshakes() {
    const std::string why = handshakes->drain();
    const std::uint64_t before = handshake_failures.exchange(handshakes->failures());
    if (handshakes->failures() > before && !why.empty()) {
      spdlog::warn("shard {}: refused a connection in the handshake: {}", opt.shard.shard_id, why);
    }
  }

  void zap_loop(std::shared_ptr<zmq::socket_t> zap) {
    while (!stop.load()) {
      zmq::pollitem_t item{zap->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> req;
      if (!zmq::recv_multipart(*zap, std::back_inserter(req), zmq::recv_flags::dontwait)) continue;
      // RFC 27: version, request id, domain, address, identity, mechanism, credentials...
      bool ok = false;
      if (req.size() >= 7 && req[5].to_string() == "CURVE" && req[6].size() == 32) {
        ok = authorized.count(req[6].to_string()) != 0;
      }
      if (!ok) {
        ++auth_refusals;
        spdlog::warn("shard {}: refused a client (unknown CURVE key) from {}", opt.shard.shard_id,
                     req.size() > 3 ? req[3].to_string() : "?");
      }
      std::vector<zmq::message_t> rep;
      rep.emplace_back(std::string("1.0"));
      rep.emplace_back(req.size() > 1 ? req[1].to_string() : std::string());
      rep.emplace_back(std::string(ok ? "200" : "400"));
      rep.emplace_back(std::string(ok ? "OK" : "unknown client key"));
      rep.emplace_back(std::string());
      rep.emplace_back(std::string());
      zmq::send_multipart(*zap, rep);
    }
  }

  void send(std::vector<OutMessage>& out) {
    for (auto& m : out) {
      try {
        zmq::message_t id(m.peer.data(), m.peer.size());
        if (!router.send(id, zmq::send_flags::sndmore)) {
          ++send_failures;
          continue;
        }
        for (std::size_t i = 0; i < m.frames.size(); ++i) {
          auto* hold = new SharedBytes(m.frames[i]);  // released by libzmq via free_shared
          zmq::message_t frame(const_cast<std::uint8_t*>((*hold)->data()), (*hold)->size(), &free_shared, hold);
          const auto flags = i + 1 < m.frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
          if (!router.send(frame, flags)) {
            ++send_failures;
            break;
          }
        }
      } catch (const zmq::error_t& e) {
        // EHOSTUNREACH (ROUTER_MANDATORY): the worker went away; its retry will ask again.
        ++send_failures;
        spdlog::warn("shard {}: reply to a gone peer dropped: {}", opt.shard.shard_id, e.what());
      }
    }
    out.clear();
  }
};

ShardServer::ShardServer(const ShardServerOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  keep_freed_message_memory();  // libzmq's receive buffers for large pushes reuse mapped memory
  s.opt = options;
  if (s.opt.signature.placement.empty()) s.opt.signature.placement = s.opt.placement.canonical();
  Layout layout = make_layout(s.opt.signature, s.opt.placement);
  s.shard = std::make_unique<Shard>(s.opt.shard, s.opt.signature, std::move(layout));

  s.router.set(zmq::sockopt::router_mandatory, 1);
  s.router.set(zmq::sockopt::router_handover, 1);
  s.router.set(zmq::sockopt::linger, 0);
  s.router.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(s.shard->max_frame_bytes() + (64 << 10)));
  s.router.set(zmq::sockopt::heartbeat_ivl, s.opt.heartbeat_ivl_ms);
  s.router.set(zmq::sockopt::heartbeat_timeout, s.opt.heartbeat_timeout_ms);
  s.router.set(zmq::sockopt::heartbeat_ttl, s.opt.heartbeat_timeout_ms);
  s.router.set(zmq::sockopt::sndtimeo, 2000);
  s.router.set(zmq::sockopt::rcvtimeo, kTurnMs);  // run() turns at least this often
  s.router.set(zmq::sockopt::sndhwm, 0);
  s.router.set(zmq::sockopt::rcvhwm, 0);
  if (!s.opt.curve_key_file.empty()) {
    std::string pub, sec;
    read_curve_keypair(s.opt.curve_key_file, &pub, &sec);
    if (s.opt.curve_authorized_keys_file.empty()) {
      throw std::invalid_argument("CURVE needs an authorized keys file (client public keys)");
    }
    s.authorized = read_authorized(s.opt.curve_authorized_keys_file);
    auto zap = std::make_shared<zmq::socket_t>(s.ctx, zmq::socket_type::rep);
    zap->set(zmq::sockopt::linger, 0);
    zap->bind("inproc://zeromq.zap.01");
    s.zap_thread = std::thread([&s, zap] { s.zap_loop(zap); });
    s.router.set(zmq::sockopt::zap_domain, "gradzip");
    s.router.set(zmq::sockopt::curve_server, 1);
    s.router.set(zmq::sockopt::curve_secretkey, sec);
  }
  s.handshakes = std::make_unique<HandshakeWatch>(
      s.ctx, s.router, fmt::format("inproc://gz-shard-handshake-{}", static_cast<const void*>(&s)), false);
  try {
    s.router.bind(s.opt.bind);
  } catch (const zmq::error_t& e) {
    s.stop = true;
    if (s.zap_thread.joinable()) s.zap_thread.join();
    throw std::runtime_error("shard " + std::to_string(s.opt.shard.shard_id) + ": cannot bind " + s.opt.bind + ": " +
                             e.what());
  }
  s.endpoint = s.router.get(zmq::sockopt::last_endpoint);
  if (!s.opt.endpoint_file.empty()) {
    const std::string tmp = s.opt.endpoint_file + ".tmp";
    {
      std::ofstream f(tmp);
      f << s.endpoint << "\n";
    }
    std::filesystem::rename(tmp, s.opt.endpoint_file);
  }
  s.stats_snapshot = s.shard->stats();
  spdlog::info("shard {}/{}: listening on {} ({} workers, {} mode, {} elements)", s.opt.shard.shard_id,
               s.opt.placement.num_shards, s.endpoint, s.opt.shard.num_workers, sync_mode_name(s.opt.shard.mode),
               s.shard->params().size());
}

ShardServer::~ShardServer() {
  impl_->stop = true;
  if (impl_->zap_thread.joinable()) impl_->zap_thread.join();
}

const std::string& ShardServer::endpoint() const { return impl_->endpoint; }
void ShardServer::stop() { impl_->stop = true; }
ShardStats ShardServer::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  return impl_->stats_snapshot;
}
std::uint64_t ShardServer::send_failures() const { return impl_->send_failures.load(); }
std::uint64_t ShardServer::auth_refusals() const { return impl_->auth_refusals.load(); }
std::uint64_t ShardServer::handshake_failures() const { return impl_->handshake_failures.load(); }

void ShardServer::run() {
  Impl& s = *impl_;
  std::vector<OutMessage> out;
  auto last_request = Shard::Clock::now();
  auto last_stats = Shard::Clock::now();
  auto last_watch = Shard::Clock::now();
  bool finished = false;
  Shard::Clock::time_point finished_at;
  std::ofstream stats_out;
  if (!s.opt.stats_file.empty()) stats_out.open(s.opt.stats_file, std::ios::app);
  auto write_stats = [&] {
    const ShardStats st = s.shard->stats();
    {
      std::lock_guard<std::mutex> lock(s.stats_mu);
      s.stats_snapshot = st;
    }
    if (stats_out) stats_out << st.to_json() << "\n" << std::flush;
  };
  while (!s.stop.load()) {
    // One request per turn, read by a blocking receive (ZMQ_RCVTIMEO = kTurnMs, so the
    // loop still turns for ticks, stats and stop()): a queued request costs no system
    // call and a wait one poll(2) on the socket's mailbox, where zmq_poll and a
    // non-blocking receive took ~4 per request (bench/comm, strace -f -c). The handshake
    // monitor is not polled (a zmq socket in a poll set costs a poll(2) per pass); it is
    // drained when a receive times out and at least every kTurnMs while requests flow.
    std::vector<zmq::message_t> msgs;
    std::optional<std::size_t> got;
    try {
      got = zmq::recv_multipart(s.router, std::back_inserter(msgs));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::warn("shard {}: receive failed: {}", s.opt.shard.shard_id, e.what());
    }
    const auto now = Shard::Clock::now();
    if (!got || now - last_watch >= std::chrono::milliseconds(kTurnMs)) {
      s.watch_handshakes();
      last_watch = now;
    }
    if (got && !msgs.empty()) {
      last_request = now;
      std::vector<FrameView> frames;
      for (std::size_t i = 1; i < msgs.size(); ++i) {
        frames.push_back({static_cast<const std::uint8_t*>(msgs[i].data()), msgs[i].size()});
      }
      s.shard->handle(msgs[0].to_string(), frames.data(), frames.size(), now, &out);
      s.send(out);
    }
    s.shard->tick(now, &out);
    s.send(out);
    if (std::chrono::duration<double>(now - last_stats).count() > s.opt.stats_interval_s) {
      write_stats();
      last_stats = now;
    }
    if (s.shard->all_workers_shut_down()) {
      // Linger a moment: a worker whose shutdown reply was lost retries it.
      if (!finished) {
        finished = true;
        finished_at = now;
      } else if (std::chrono::duration<double>(now - finished_at).count() >= s.opt.shutdown_linger_s) {
        spdlog::info("shard {}: every worker finished; exiting at step {}", s.opt.shard.shard_id,
                     s.shard->version());
        break;
      }
    }
    if (s.opt.idle_exit_s > 0 && std::chrono::duration<double>(now - last_request).count() > s.opt.idle_exit_s) {
      spdlog::warn("shard {}: no request for {:.0f} s; exiting", s.opt.shard.shard_id, s.opt.idle_exit_s);
      break;
    }
  }
  write_stats();
}

namespace {
std::atomic<ShardServer*> g_signal_target{nullptr};
extern "C" void on_stop_signal(int) {
  ShardServer* s = g_signal_target.load();
  if (s) s->stop();  // only sets an atomic flag: async-signal-safe
}
}  // namespace

int run_shard_server(const ShardServerOptions& options) {
  try {
    ShardServer server(options);
    g_signal_target.store(&server);
    struct sigaction sa{};
    sa.sa_handler = &on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    server.run();
    g_signal_target.store(nullptr);
    const auto st = server.stats();
    spdlog::info("shard {}: done at step {}: {} pushes applied, {} refused, {} duplicates, {} bytes up, {} bytes down",
                 st.shard_id, st.version, st.pushes_applied, st.refused, st.duplicates,
                 st.total.up.payload_bytes + st.total.up.framing_bytes,
                 st.total.down.payload_bytes + st.total.down.framing_bytes);
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("shard {}: {}", options.shard.shard_id, e.what());
    return 1;
  }
}

}  // namespace gradzip::comm
