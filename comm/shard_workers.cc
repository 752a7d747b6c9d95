// Shard, who may speak for a worker: the hello that binds a worker rank to its
// connection, admission of every other request (bound connection, live rank), workers
// declared dead and their explicit rejoin, the barrier over the live workers, and when
// every worker is done (semantics: comm/shard.h).
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "comm/shard.h"

namespace gradzip::comm {

bool Shard::all_workers_shut_down() const {
  bool any = false;
  for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
    if (!shut_down_[w] && live_[w]) return false;
    any = any || shut_down_[w];
  }
  return any;
}

bool Shard::admit_sender(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out) {
  if (bound_peer_[e.worker] != peer) {
    refuse(peer, e, ProtoErr::kNotBound,
           bound_peer_[e.worker].empty()
               ? fmt::format("worker {} has not said hello (no request is accepted before the handshake)", e.worker)
               : fmt::format("worker rank {} is bound to another connection", e.worker),
           out);
    return false;
  }
  if (!live_[e.worker] && e.type != MsgType::kShutdown) {
    refuse(peer, e, ProtoErr::kDeclaredDead,
           fmt::format("worker {} was declared dead; the shard is at step {}; say hello again to rejoin", e.worker,
                       version_),
           out);
    return false;
  }
  return true;
}

void Shard::on_hello(const std::string& peer, const Envelope& e, const FrameView* body, std::size_t n,
                     Clock::time_point now, std::vector<OutMessage>* out) {
  ModelSignature theirs;
  std::string why;
  if (n != 1 || !signature_from_json(body[0].data, body[0].size, &theirs, &why)) {
    refuse(peer, e, ProtoErr::kMalformed, n != 1 ? "hello needs one signature frame" : why, out);
    return;
  }
  const std::string diff = theirs.diff(sig_);
  if (!diff.empty()) {
    refuse(peer, e, ProtoErr::kSignatureMismatch, "model signature differs (worker vs shard): " + diff, out);
    return;
  }
  const std::uint32_t w = e.worker;
  const bool other_peer = !bound_peer_[w].empty() && bound_peer_[w] != peer;
  if (other_peer && live_[w] && !shut_down_[w]) {
    refuse(peer, e, ProtoErr::kRankTaken,
           fmt::format("worker rank {} is bound to another live connection (heard {:.1f} s ago); a restarted worker "
                       "can rejoin once the shard declared the old one dead (worker timeout)",
                       w, std::chrono::duration<double>(now - last_heard_[w]).count()),
           out);
    return;
  }
  if (!live_[w]) {
    ++stats_.rejoins;
    spdlog::info("shard {}: worker {} rejoined at step {}{}", opt_.shard_id, w, version_,
                 other_peer ? " from a new connection" : "");
  }
  if (other_peer) drop_waiting(w);
  bound_peer_[w] = peer;
  live_[w] = true;
  shut_down_[w] = false;
  last_heard_[w] = now;
  heartbeats_[w] = e.aux > 0;  // the hello's aux: the worker's heartbeat interval in ms (0 = none)
  Envelope r = ack(e);
  r.flags = initialized_ ? 0 : kFlagUninitialized;
  // Where this worker resumes: sync workers move in lockstep; an async/ssp worker
  // continues its own clock.
  if (opt_.mode != SyncMode::kSync) r.aux = clock_[e.worker];
  reply(peer, e.worker, r, {}, out);
}

void Shard::on_barrier(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out) {
  if (barrier_released_seq_[e.worker] == e.seq) {  // a retry whose reply was lost: released already
    reply(peer, e.worker, ack(e), {}, out);
    return;
  }
  bool present = false;
  for (auto& b : barrier_waiting_) {
    if (b.env.worker == e.worker) {
      b = {peer, e, {}};
      present = true;
    }
  }
  if (!present) barrier_waiting_.push_back({peer, e, {}});
  release_barrier(out);
}

void Shard::release_barrier(std::vector<OutMessage>* out) {
  if (barrier_waiting_.empty()) return;
  for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
    const bool waiting = std::any_of(barrier_waiting_.begin(), barrier_waiting_.end(),
                                     [w](const PendingPull& b) { return b.env.worker == w; });
    if (live_[w] && !waiting) return;
  }
  for (const auto& b : barrier_waiting_) {
    barrier_released_seq_[b.env.worker] = b.env.seq;
    reply(b.peer, b.env.worker, ack(b.env), {}, out);
  }
  barrier_waiting_.clear();
}

void Shard::drop_waiting(std::uint32_t w) {
  auto of_w = [w](const PendingPull& p) { return p.env.worker == w; };
  pending_pulls_.erase(std::remove_if(pending_pulls_.begin(), pending_pulls_.end(), of_w), pending_pulls_.end());
  barrier_waiting_.erase(std::remove_if(barrier_waiting_.begin(), barrier_waiting_.end(), of_w),
                         barrier_waiting_.end());
}

void Shard::declare_dead(std::uint32_t w, const std::string& why, std::vector<OutMessage>* out) {
  live_[w] = false;
  ++stats_.workers_declared_dead;
  spdlog::warn("shard {}: worker {} declared dead at step {}: {}", opt_.shard_id, w, version_, why);
  barrier_waiting_.erase(std::remove_if(barrier_waiting_.begin(), barrier_waiting_.end(),
                                        [w](const PendingPull& b) { return b.env.worker == w; }),
                         barrier_waiting_.end());
  release_barrier(out);
}

}  // namespace gradzip::comm
