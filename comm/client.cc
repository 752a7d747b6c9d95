#include "comm/client.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "comm/accounting.h"
#include "quant/codec.h"
#include "quant/registry.h"

namespace gradzip::comm {

RequestClient::RequestClient(ClientOptions options)
    : opt_(std::move(options)),
      request_faults_(opt_.faults.requests, opt_.faults.seed),
      reply_faults_(opt_.faults.replies, opt_.faults.seed * 0x9E3779B97F4A7C15ull + 1) {}

RequestClient::~RequestClient() { stop_heartbeats(); }

std::vector<std::uint32_t> RequestClient::active_shards() const {
  std::vector<std::uint32_t> s;
  for (std::uint32_t i = 0; i < layout_.shard_numel.size(); ++i) {
    if (layout_.shard_numel[i] > 0) s.push_back(i);
  }
  return s;
}

std::uint64_t RequestClient::start(std::uint32_t shard, Envelope env, std::vector<FrameView> borrowed,
                                   std::vector<SharedBytes> shared, Handle handle, float* params) {
  const std::uint64_t seq = next_seq_++;
  env.seq = seq;
  env.worker = worker_;
  Request& r = requests_[seq];
  r.handle = handle;
  r.shard = shard;
  r.env = env;
  r.params = params;
  r.is_push = env.type == MsgType::kPush;
  r.envelope.resize(kEnvelopeBytes);
  write_envelope(env, r.envelope.data());
  r.frames.push_back({r.envelope.data(), r.envelope.size()});
  r.owners.push_back(nullptr);
  for (const auto& b : borrowed) {
    r.frames.push_back(b);
    r.owners.push_back(nullptr);
  }
  for (auto& b : shared) {
    r.frames.push_back({b->data(), b->size()});
    r.owners.push_back(std::move(b));
  }
  r.started = Clock::now();
  transmit(r);
  return seq;
}

void RequestClient::connect(const ModelSignature& signature, std::uint32_t worker_rank, float* params) {
  sig_ = signature;
  if (sig_.placement.empty()) sig_.placement = opt_.placement.canonical();
  if (sig_.placement != opt_.placement.canonical()) {
    throw CommError(CommError::Kind::kInvalidArgument,
                    "signature placement '" + sig_.placement + "' differs from the client's '" +
                        opt_.placement.canonical() + "'");
  }
  try {
    layout_ = make_layout(sig_, opt_.placement);
  } catch (const std::invalid_argument& e) {
    throw CommError(CommError::Kind::kInvalidArgument, e.what());
  }
  worker_ = worker_rank;
  const std::uint32_t m = opt_.placement.num_shards;
  const bool first_connect = !connected_;
  if (first_connect) {
    open(m, worker_rank);
    last_send_.assign(m, Clock::now());
  }
  connected_ = true;
  replica_version_.assign(layout_.buckets.size(), kLatestStep);
  uninitialized_.assign(m, false);

  resume_step_ = 0;
  hello_json_ = signature_to_json(sig_);
  Handle h = new_handle();
  for (auto s : active_shards()) send_hello(s, h);
  wait(h);
  if (worker_rank == 0) {
    auto identity = quant::make_codec("identity");
    Handle hi = new_handle();
    bool any = false;
    for (auto s : active_shards()) {
      if (!uninitialized_[s]) continue;
      std::vector<SharedBytes> msgs;
      for (auto id : layout_.shard_buckets[s]) {
        const Bucket& b = layout_.buckets[id];
        msgs.push_back(std::make_shared<const std::vector<std::uint8_t>>(
            identity->encode(params + b.offset, b.numel, quant::SeedContext{})));
      }
      Envelope e;
      e.type = MsgType::kInit;
      start(s, e, {}, std::move(msgs), hi);
      any = true;
    }
    if (any) wait(hi);
  }
  wait(pull(kLatestStep, params));
  if (first_connect && opt_.heartbeat_interval_s > 0) heartbeat_thread_ = std::thread([this] { heartbeat_loop(); });
}

Handle RequestClient::push(std::uint64_t step, std::uint32_t bucket, const std::uint8_t* msg, std::size_t bytes) {
  return start_push(step, bucket, {{msg, bytes}}, {});
}

Handle RequestClient::push(std::uint64_t step, std::uint32_t bucket, SharedBytes msg) {
  if (!msg) throw CommError(CommError::Kind::kInvalidArgument, "push of a null message");
  return start_push(step, bucket, {}, {std::move(msg)});
}

Handle RequestClient::start_push(std::uint64_t step, std::uint32_t bucket, std::vector<FrameView> borrowed,
                                 std::vector<SharedBytes> shared) {
  if (!connected_) throw CommError(CommError::Kind::kInvalidArgument, "push before connect");
  if (bucket >= layout_.buckets.size()) {
    throw CommError(CommError::Kind::kInvalidArgument,
                    fmt::format("bucket {} but the layout has {} buckets", bucket, layout_.buckets.size()));
  }
  Envelope e;
  e.type = MsgType::kPush;
  e.step = step;
  e.bucket = bucket;
  Handle h = new_handle();
  start(layout_.buckets[bucket].shard, e, std::move(borrowed), std::move(shared), h);
  return h;
}

Handle RequestClient::pull(std::uint64_t step, float* params) {
  if (!connected_) throw CommError(CommError::Kind::kInvalidArgument, "pull before connect");
  Handle h = new_handle();
  for (auto s : active_shards()) {
    // The shard sends a delta only when the whole replica it answers for is one step behind.
    std::uint64_t held = replica_version_[layout_.shard_buckets[s].front()];
    for (auto id : layout_.shard_buckets[s]) {
      if (replica_version_[id] != held) held = kLatestStep;
    }
    Envelope e;
    e.type = MsgType::kPull;
    e.step = step;
    e.aux = held;
    start(s, e, {}, {}, h, params);
  }
  return h;
}

Handle RequestClient::pull_bucket(std::uint64_t step, std::uint32_t bucket, float* params, bool dense) {
  if (!connected_) throw CommError(CommError::Kind::kInvalidArgument, "pull before connect");
  if (bucket >= layout_.buckets.size()) {
    throw CommError(CommError::Kind::kInvalidArgument,
                    fmt::format("pull of bucket {} but the layout has {} buckets", bucket, layout_.buckets.size()));
  }
  Envelope e;
  e.type = MsgType::kPull;
  e.flags = kFlagOneBucket;
  e.bucket = bucket;
  e.step = step;
  e.aux = dense ? kLatestStep : replica_version_[bucket];
  Handle h = new_handle();
  start(layout_.buckets[bucket].shard, e, {}, {}, h, params);
  return h;
}

Handle RequestClient::reduce(std::uint64_t step, std::uint32_t round, SharedBytes msg,
                             std::vector<std::uint8_t>* reply) {
  if (!connected_) throw CommError(CommError::Kind::kInvalidArgument, "reduce before connect");
  if (!msg || reply == nullptr) throw CommError(CommError::Kind::kInvalidArgument, "reduce without a message or reply");
  Envelope e;
  e.type = MsgType::kReduce;
  e.step = step;
  e.bucket = round;
  Handle h = new_handle();
  requests_[start(0, e, {}, {std::move(msg)}, h)].reduce_reply = reply;
  return h;
}

void RequestClient::send_hello(std::uint32_t shard, Handle handle) {
  Envelope e;
  e.type = MsgType::kHello;
  e.aux = static_cast<std::uint64_t>(opt_.heartbeat_interval_s * 1000.0);  // promised heartbeats (ms); 0 = none
  start(shard, e, {}, {std::make_shared<const std::vector<std::uint8_t>>(hello_json_.begin(), hello_json_.end())},
        handle);
}

void RequestClient::barrier() {
  // Every shard: a shard's barrier releases once all of its live workers arrived, so
  // returning means every worker reached it as every shard sees it.
  Handle h = new_handle();
  for (auto s : active_shards()) {
    Envelope e;
    e.type = MsgType::kBarrier;
    start(s, e, {}, {}, h);
  }
  wait(h);
}

void RequestClient::heartbeat() {
  Handle h = new_handle();
  for (auto s : active_shards()) {
    Envelope e;
    e.type = MsgType::kHeartbeat;
    start(s, e, {}, {}, h);
  }
  wait(h);
}

void RequestClient::shutdown() {
  if (!connected_) return;
  Handle h = new_handle();
  for (auto s : active_shards()) {
    Envelope e;
    e.type = MsgType::kShutdown;
    start(s, e, {}, {}, h);
  }
  wait(h);
}

bool RequestClient::on_pull_reply(Request& r, const Envelope& e, Received& rx) {
  // A kFlagOneBucket pull is answered with its one bucket in one reply; a whole-model pull
  // with a delta reply, or (dense) with one kFlagPart reply per bucket.
  const bool one = (r.env.flags & kFlagOneBucket) != 0;
  const std::vector<std::uint32_t> one_id = {r.env.bucket};
  const std::vector<std::uint32_t>& ids = one ? one_id : layout_.shard_buckets[r.shard];  // no copy per part
  if ((e.flags & kFlagPart) != 0) {  // one bucket of a dense reply to a whole-model pull
    if (one || rx.frames.size() != 2 || e.bucket >= ids.size()) {
      r.error = fmt::format("pull reply part from shard {}: {} frames, bucket index {} of {}{}", r.shard,
                            rx.frames.size() - 1, e.bucket, ids.size(), one ? " (to a one-bucket pull)" : "");
      return true;
    }
    if (r.parts.empty()) r.parts.assign(ids.size(), false);
    if (r.parts[e.bucket]) return false;  // a retry's copy
    const Bucket& b = layout_.buckets[ids[e.bucket]];
    const quant::Status st = quant::decode_any(rx.frames[1].data, rx.frames[1].size, r.params + b.offset, b.numel);
    if (!st.ok()) {
      r.error = fmt::format("pull reply from shard {} bucket {}: {}", r.shard, b.id, st.to_string());
      return true;
    }
    r.parts[e.bucket] = true;
    replica_version_[b.id] = e.aux;
    return ++r.parts_received == ids.size();
  }
  if (rx.frames.size() != ids.size() + 1) {
    r.error = fmt::format("pull reply from shard {} has {} frames, expected {}", r.shard, rx.frames.size() - 1,
                          ids.size());
    return true;
  }
  const bool delta = (e.flags & kFlagDelta) != 0;
  for (auto id : ids) {
    if (delta && replica_version_[id] + 1 != e.aux) {
      r.error = "delta reply for a replica version this worker does not hold";
      return true;
    }
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const Bucket& b = layout_.buckets[ids[i]];
    const FrameView& f = rx.frames[i + 1];
    const quant::Status st = delta ? quant::decode_add_any(f.data, f.size, r.params + b.offset, b.numel, 1.0f)
                                   : quant::decode_any(f.data, f.size, r.params + b.offset, b.numel);
    if (!st.ok()) {
      r.error = fmt::format("pull reply from shard {} bucket {}: {}", r.shard, b.id, st.to_string());
      return true;
    }
  }
  for (auto id : ids) replica_version_[id] = e.aux;
  return true;
}

void RequestClient::dispatch(Received& rx) {
  if (!rx.refused.empty()) {
    fail_shard(rx.shard, rx.refused, CommError::Kind::kRefused);
    return;
  }
  std::vector<std::size_t> sizes;
  for (const auto& f : rx.frames) sizes.push_back(f.size);
  {
    std::lock_guard<std::mutex> lock(io_mu_);  // counters() reads them from other threads
    count_message(&counters_.down, sizes.data(), sizes.size());
  }
  Envelope e;
  std::string why;
  if (rx.frames.empty() || !read_envelope(rx.frames[0].data, rx.frames[0].size, &e, &why)) {
    spdlog::warn("worker {}: malformed reply from shard {}: {}", worker_, rx.shard, why);
    return;
  }
  auto it = requests_.find(e.seq);
  if (it == requests_.end() || it->second.done || it->second.shard != rx.shard) return;  // late duplicate
  Request& r = it->second;
  if (e.type == MsgType::kError) {
    const auto err = static_cast<ProtoErr>(e.bucket);
    if (err == ProtoErr::kBusy || err == ProtoErr::kUninitialized) return;  // retried after request_timeout_s
    const bool rejoin = err == ProtoErr::kDeclaredDead && opt_.rejoin_when_declared_dead;
    if ((err == ProtoErr::kNotBound || rejoin) && r.env.type != MsgType::kHello) {
      // A restarted shard that has not seen this worker's hello, or one that declared it
      // dead: say hello again (an explicit rejoin), then r is resent.
      rebind(rx.shard, err);
      return;
    }
    std::string text;
    if (rx.frames.size() > 1) text.assign(reinterpret_cast<const char*>(rx.frames[1].data), rx.frames[1].size);
    r.error = fmt::format("shard {} refused {}: {}: {}", rx.shard, r.is_push ? "push" : "request", proto_err_name(err),
                          text);
    const bool refused = err == ProtoErr::kSignatureMismatch || err == ProtoErr::kRankTaken ||
                         err == ProtoErr::kDeclaredDead || err == ProtoErr::kNotBound;
    r.error_kind = refused ? CommError::Kind::kRefused : CommError::Kind::kProtocol;
    r.done = true;
    if (r.handle == kRebindHandle) fail_shard(r.shard, r.error, r.error_kind);
    return;
  }
  if (e.type != reply_type(r.env.type)) {
    spdlog::warn("worker {}: reply type {} does not match request {}", worker_, static_cast<int>(e.type),
                 static_cast<int>(r.env.type));
    return;
  }
  if (r.handle == kRebindHandle) {  // bound again: resend what waits for this shard now
    r.done = true;
    for (auto& [seq, other] : requests_) {
      if (other.shard == r.shard && !other.done && other.handle != kRebindHandle) transmit(other);
    }
    return;
  }
  if (r.env.type == MsgType::kHello) {
    uninitialized_[r.shard] = (e.flags & kFlagUninitialized) != 0;
    resume_step_ = std::max(resume_step_, e.aux);
  }
  if (r.env.type == MsgType::kPull && !on_pull_reply(r, e, rx)) return;  // more parts to come
  if (r.env.type == MsgType::kReduce) {
    if (rx.frames.size() == 2) {
      r.reduce_reply->assign(rx.frames[1].data, rx.frames[1].data + rx.frames[1].size);
    } else {
      r.error = fmt::format("shard {}: reduce reply with {} frames, expected 2", rx.shard, rx.frames.size());
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - r.started).count();
  {
    std::lock_guard<std::mutex> lock(io_mu_);  // counters() reads them from other threads
    if (r.is_push && (e.flags & kFlagStaleness) != 0) {
      counters_.staleness.pushes += 1;
      counters_.staleness.sum += e.bucket;
      counters_.staleness.max = std::max<std::uint64_t>(counters_.staleness.max, e.bucket);
    }
    (r.env.type == MsgType::kPull ? counters_.down : counters_.up).seconds += secs;
  }
  r.done = true;
}

void RequestClient::forget(Handle handle) {
  for (auto it = requests_.begin(); it != requests_.end();) {
    it = it->second.handle == handle ? requests_.erase(it) : std::next(it);
  }
}

void RequestClient::wait(Handle handle) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(opt_.op_timeout_s);
  const auto retry = std::chrono::duration<double>(opt_.request_timeout_s);
  for (;;) {
    if (aborted_.load()) {
      forget(handle);
      throw CommError(CommError::Kind::kClosed, fmt::format("worker {}: transport aborted", worker_));
    }
    release_faults(/*idle=*/false);
    bool all_done = true;
    const auto now = Clock::now();
    for (auto it = requests_.begin(); it != requests_.end();) {
      Request& r = it->second;
      if (r.handle == kRebindHandle && r.done) {
        it = requests_.erase(it);
        continue;
      }
      if ((r.handle == handle || r.handle == kRebindHandle) && !r.done) {
        all_done = all_done && r.handle != handle;
        if (now - r.last_sent > retry) transmit(r);
      }
      ++it;
    }
    if (all_done) break;
    if (now > deadline) {
      std::string what;
      for (auto& [seq, r] : requests_) {
        if (r.handle == handle && !r.done) what += fmt::format(" shard {} seq {} step {};", r.shard, seq, r.env.step);
      }
      forget(handle);
      throw CommError(CommError::Kind::kTimeout,
                      fmt::format("worker {}: no reply within {:.1f} s:{}", worker_, opt_.op_timeout_s, what));
    }
    Received rx;
    bool got = false;
    {
      std::lock_guard<std::mutex> lock(io_mu_);
      got = receive(0.05, &rx);
    }
    if (got) {
      on_received(rx);
    } else {
      release_faults(/*idle=*/true);
    }
  }
  std::string error;
  CommError::Kind kind = CommError::Kind::kProtocol;
  for (auto it = requests_.begin(); it != requests_.end();) {
    if (it->second.handle == handle) {
      if (!it->second.error.empty() && error.empty()) {
        error = it->second.error;
        kind = it->second.error_kind;
      }
      it = requests_.erase(it);
    } else {
      ++it;
    }
  }
  if (!error.empty()) throw CommError(kind, error);
}

}  // namespace gradzip::comm
