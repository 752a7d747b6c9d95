// RequestClient, the transport side: sending under the I/O lock (with fault injection
// on requests and replies), the heartbeat thread, and saying hello again to a shard
// that does not know this connection or declared this worker dead (comm/client.h).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "comm/accounting.h"
#include "comm/client.h"

namespace gradzip::comm {

void RequestClient::stop_heartbeats() {
  {
    std::lock_guard<std::mutex> lock(heartbeat_mu_);
    heartbeat_stop_ = true;
  }
  heartbeat_cv_.notify_all();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
}

void RequestClient::send_locked(std::uint32_t shard, const std::vector<FrameView>& frames,
                                const std::vector<SharedBytes>& owners) {
  // Caller holds io_mu_.
  send_frames(shard, frames, owners);
  if (shard < last_send_.size()) last_send_[shard] = Clock::now();
}

void RequestClient::heartbeat_loop() {
  const auto interval = std::chrono::duration<double>(opt_.heartbeat_interval_s);
  const auto shards = active_shards();
  std::unique_lock<std::mutex> hb(heartbeat_mu_);
  while (!heartbeat_cv_.wait_for(hb, interval / 2, [this] { return heartbeat_stop_; })) {
    std::lock_guard<std::mutex> lock(io_mu_);
    const auto now = Clock::now();
    for (auto s : shards) {
      if (now - last_send_[s] < interval) continue;
      Envelope e;  // seq 0: no request waits for its reply, dispatch() ignores it
      e.type = MsgType::kHeartbeat;
      e.worker = worker_;
      std::uint8_t head[kEnvelopeBytes];
      write_envelope(e, head);
      const std::size_t size = kEnvelopeBytes;
      count_message(&counters_.up, &size, 1);
      try {
        send_locked(s, {{head, kEnvelopeBytes}}, {});
      } catch (const CommError& ex) {
        spdlog::warn("worker {}: heartbeat to shard {} failed: {}", worker_, s, ex.what());
      }
    }
  }
}

void RequestClient::transmit(Request& r) {
  std::lock_guard<std::mutex> lock(io_mu_);
  r.last_sent = Clock::now();
  std::vector<std::size_t> sizes;
  for (const auto& f : r.frames) sizes.push_back(f.size);
  count_message(&counters_.up, sizes.data(), sizes.size());
  if (!request_faults_.active()) {
    send_locked(r.shard, r.frames, r.owners);
    return;
  }
  // A held or delayed copy may outlive the request (a retry completes it first).
  OutgoingCopy copy;
  copy.shard = r.shard;
  for (const auto& f : r.frames) copy.frames.emplace_back(f.data, f.data + f.size);
  request_faults_.pass(std::move(copy), r.last_sent, [this](OutgoingCopy& m) { send_copy(m); });
}

void RequestClient::send_copy(const OutgoingCopy& m) {
  // Caller holds io_mu_.
  std::vector<FrameView> views;
  for (const auto& f : m.frames) views.push_back({f.data(), f.size()});
  send_locked(m.shard, views, {});
}

void RequestClient::on_received(Received& rx) {
  if (!reply_faults_.active() || !rx.refused.empty()) {
    dispatch(rx);
    return;
  }
  reply_faults_.pass(std::move(rx), Clock::now(), [this](Received& m) { dispatch(m); });
}

void RequestClient::release_faults(bool idle) {
  const auto now = Clock::now();
  {
    std::lock_guard<std::mutex> lock(io_mu_);
    request_faults_.release_due(now, [this](OutgoingCopy& m) { send_copy(m); });
    if (idle) request_faults_.release_held([this](OutgoingCopy& m) { send_copy(m); });
  }
  reply_faults_.release_due(now, [this](Received& m) { dispatch(m); });
  if (idle) reply_faults_.release_held([this](Received& m) { dispatch(m); });  // nothing else moves
}

void RequestClient::rebind(std::uint32_t shard, ProtoErr why) {
  for (const auto& [seq, r] : requests_) {
    if (r.handle == kRebindHandle && r.shard == shard && !r.done) return;  // already in flight
  }
  if (why == ProtoErr::kDeclaredDead) {
    ++rejoins_;
    spdlog::warn("worker {}: shard {} declared this worker dead (timeout); rejoining with a hello", worker_, shard);
  } else {
    spdlog::info("worker {}: shard {} does not know this connection (restarted?); saying hello again", worker_,
                 shard);
  }
  send_hello(shard, kRebindHandle);
}

void RequestClient::fail_shard(std::uint32_t shard, const std::string& error, CommError::Kind kind) {
  for (auto& [seq, r] : requests_) {
    if (r.shard != shard || r.done) continue;
    r.error = error;
    r.error_kind = kind;
    r.done = true;
  }
}

}  // namespace gradzip::comm
