// Shard: construction and restore, request dispatch, init, push admission and dedup,
// checkpoints. Who may speak for a worker (handshake, binding, liveness, barrier) is in
// shard_workers.cc, the sync round in shard_sync.cc, async/SSP application in
// shard_async.cc, pull replies in shard_downlink.cc, counting in shard_stats.cc
// (semantics: comm/shard.h).
#include "comm/shard.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "comm/checkpoint.h"
#include "quant/registry.h"

namespace gradzip::comm {

const char* sync_mode_name(SyncMode m) {
  switch (m) {
    case SyncMode::kSync: return "sync";
    case SyncMode::kAsync: return "async";
    case SyncMode::kSsp: return "ssp";
  }
  return "unknown";
}
SyncMode parse_sync_mode(const std::string& name) {
  for (auto m : {SyncMode::kSync, SyncMode::kAsync, SyncMode::kSsp}) {
    if (name == sync_mode_name(m)) return m;
  }
  throw std::invalid_argument("sync mode '" + name + "' unknown; allowed: sync|async|ssp");
}
const char* aggregation_name(Aggregation a) { return a == Aggregation::kMean ? "mean" : "majority"; }
Aggregation parse_aggregation(const std::string& name) {
  if (name == "mean") return Aggregation::kMean;
  if (name == "majority") return Aggregation::kMajorityVote;
  throw std::invalid_argument("aggregation '" + name + "' unknown; allowed: mean|majority");
}

SharedBytes Shard::share(std::vector<std::uint8_t> bytes) {
  return std::make_shared<const std::vector<std::uint8_t>>(std::move(bytes));
}

Shard::Shard(ShardOptions options, ModelSignature signature, Layout layout)
    : opt_(std::move(options)), sig_(std::move(signature)), layout_(std::move(layout)) {
  const std::uint32_t m = layout_.options.num_shards;
  if (opt_.shard_id >= m) throw std::invalid_argument(fmt::format("shard id {} >= shards {}", opt_.shard_id, m));
  if (opt_.num_workers == 0) throw std::invalid_argument("shard: num_workers must be >= 1");
  try {
    // One uplink codec per compressor spec of the layout (a hand-made layout without specs
    // uses the signature's).
    if (layout_.specs.empty()) layout_.specs = {sig_.compressor_spec};
    for (const auto& spec : layout_.specs) uplinks_.push_back(quant::make_codec(quant::parse_compressor_spec(spec).codec));
    identity_ = quant::make_codec("identity");
    if (sig_.downlink_spec != "dense") downlink_ = quant::make_codec(sig_.downlink_spec);
  } catch (const quant::SpecError& e) {
    throw std::invalid_argument(std::string("shard: ") + e.what());
  }
  if (downlink_ && opt_.mode != SyncMode::kSync) {
    throw std::invalid_argument("shard: a compressed downlink needs sync mode (the replica is shared by all workers)");
  }
  const std::string sig_json = signature_to_json(sig_);
  sig_hash_ = XXH3_64bits(sig_json.data(), sig_json.size());
  local_ids_ = layout_.shard_buckets[opt_.shard_id];
  local_of_.assign(layout_.buckets.size(), -1);
  for (std::size_t i = 0; i < local_ids_.size(); ++i) local_of_[local_ids_[i]] = static_cast<std::int64_t>(i);
  const std::uint64_t n = layout_.shard_numel[opt_.shard_id];
  params_.assign(n, 0.0f);
  momentum_.assign(n, 0.0f);
  replica_.assign(n, 0.0f);
  const std::uint32_t w = opt_.num_workers;
  live_.assign(w, true);
  shut_down_.assign(w, false);
  bound_peer_.assign(w, "");
  last_heard_.assign(w, Clock::now());
  heartbeats_.assign(w, false);
  barrier_released_seq_.assign(w, 0);
  clock_.assign(w, 0);
  async_progress_.assign(w, {});
  bucket_updates_.assign(nlocal(), 0);
  seen_updates_.assign(w, std::vector<std::uint64_t>(nlocal(), 0));
  dense_cache_.assign(nlocal(), nullptr);
  delta_cache_.assign(nlocal(), nullptr);
  dense_cache_tag_.assign(nlocal(), ~std::uint64_t{0});
  stats_.shard_id = opt_.shard_id;
  stats_.workers.assign(w, {});
  setup_reduce();
  if (opt_.restore && !opt_.checkpoint_dir.empty()) restore_from_checkpoint();
  stats_.version = version_;
}

void Shard::restore_from_checkpoint() {
  ShardCheckpoint c;
  std::vector<std::string> skipped;
  const std::uint64_t newest = opt_.restore_version == 0 ? UINT64_MAX : opt_.restore_version;
  const bool found = load_newest_checkpoint(opt_.checkpoint_dir, opt_.shard_id, layout_.options.num_shards, sig_hash_,
                                            params_.size(), &c, &skipped, newest);
  for (const auto& s : skipped) spdlog::warn("shard {}: skipped checkpoint {}", opt_.shard_id, s);
  if (opt_.restore_version != 0 && (!found || c.version != opt_.restore_version)) {
    throw std::runtime_error(fmt::format("shard {}: no valid checkpoint of step {} in {}", opt_.shard_id,
                                         opt_.restore_version, opt_.checkpoint_dir));
  }
  if (!found) {
    spdlog::info("shard {}: no valid checkpoint in {}; waiting for initial parameters", opt_.shard_id,
                 opt_.checkpoint_dir);
    return;
  }
  params_ = std::move(c.params);
  momentum_ = std::move(c.momentum);
  replica_ = std::move(c.replica);
  version_ = c.version;
  last_checkpoint_version_ = version_;
  std::fill(clock_.begin(), clock_.end(), version_);
  initialized_ = true;
  may_jump_ = true;
  spdlog::info("shard {}: restored step {} from {}", opt_.shard_id, version_, opt_.checkpoint_dir);
}

std::uint64_t Shard::max_frame_bytes() const {
  std::uint64_t most = std::max<std::uint64_t>(signature_to_json(sig_).size() + 4096, max_reduce_bytes());
  for (auto id : local_ids_) {
    const std::uint64_t n = layout_.buckets[id].numel;
    most = std::max<std::uint64_t>(most, push_codec(layout_.buckets[id]).max_encoded_bytes(n));
    most = std::max<std::uint64_t>(most, identity_->max_encoded_bytes(n));
  }
  return most;
}

void Shard::reply(const std::string& peer, std::uint32_t worker, Envelope env, std::vector<SharedBytes> bodies,
                  std::vector<OutMessage>* out) {
  std::vector<std::uint8_t> head(kEnvelopeBytes);
  write_envelope(env, head.data());
  OutMessage msg;
  msg.peer = peer;
  msg.frames.reserve(bodies.size() + 1);
  msg.frames.push_back(share(std::move(head)));
  for (auto& b : bodies) msg.frames.push_back(std::move(b));
  count_reply(msg, worker);
  out->push_back(std::move(msg));
}

void Shard::refuse(const std::string& peer, const Envelope& req, ProtoErr err, const std::string& text,
                   std::vector<OutMessage>* out) {
  if (count_refusal(err)) {
    spdlog::warn("shard {}: refused request (worker {}, step {}, seq {}) #{}: {}: {}", opt_.shard_id, req.worker,
                 req.step, req.seq, stats_.refused, proto_err_name(err), text);
  }
  Envelope e = req;
  e.type = MsgType::kError;
  e.flags = 0;
  e.bucket = static_cast<std::uint32_t>(err);
  e.aux = version_;
  reply(peer, req.worker, e, {share(std::vector<std::uint8_t>(text.begin(), text.end()))}, out);
}

Envelope Shard::ack(const Envelope& req) const {
  Envelope r = req;
  r.type = reply_type(req.type);
  r.aux = version_;
  return r;
}

bool Shard::beyond_step_window(const Envelope& e) const {
  return e.step != kLatestStep && e.step >= version_ + opt_.step_window;
}

void Shard::handle(const std::string& peer, const FrameView* frames, std::size_t count, Clock::time_point now,
                   std::vector<OutMessage>* out) {
  count_request(frames, count, &stats_.total.up);
  Envelope e;
  std::string why;
  if (count == 0 || !read_envelope(frames[0].data, frames[0].size, &e, &why)) {
    refuse(peer, e, ProtoErr::kMalformed, count == 0 ? "empty message" : why, out);
    return;
  }
  if (is_reply_type(e.type)) {
    refuse(peer, e, ProtoErr::kMalformed, "a reply type sent as a request", out);
    return;
  }
  // Requests carry no flag but kFlagOneBucket on a pull (comm/protocol.h); reply flags
  // (kFlagPart, kFlagStaleness, ...) are never valid here.
  const std::uint8_t allowed = e.type == MsgType::kPull ? kFlagOneBucket : 0;
  if ((e.flags & ~allowed) != 0) {
    refuse(peer, e, ProtoErr::kMalformed, fmt::format("unknown flags 0x{:02x} on a request", e.flags), out);
    return;
  }
  if (e.worker >= opt_.num_workers) {
    refuse(peer, e, ProtoErr::kUnknownWorker,
           fmt::format("worker rank {} but this run has {} workers", e.worker, opt_.num_workers), out);
    return;
  }
  const FrameView* body = frames + 1;
  const std::size_t nbody = count - 1;
  if (e.type == MsgType::kHello) {
    on_hello(peer, e, body, nbody, now, out);
    if (bound_peer_[e.worker] == peer) count_request(frames, count, &stats_.workers[e.worker].up);
    return;
  }
  if (!admit_sender(peer, e, out)) return;
  count_request(frames, count, &stats_.workers[e.worker].up);
  last_heard_[e.worker] = now;
  switch (e.type) {
    case MsgType::kInit: on_init(peer, e, body, nbody, out); break;
    case MsgType::kPush:
      if (nbody != 1) {
        refuse(peer, e, ProtoErr::kMalformed, fmt::format("push has {} body frames, expected 1", nbody), out);
      } else {
        on_push(peer, e, body[0], now, out);
      }
      break;
    case MsgType::kPull: on_pull(peer, e, out); break;
    case MsgType::kReduce: on_reduce(peer, e, body, nbody, now, out); break;
    case MsgType::kBarrier: on_barrier(peer, e, out); break;
    case MsgType::kHeartbeat: reply(peer, e.worker, ack(e), {}, out); break;
    case MsgType::kShutdown: {
      shut_down_[e.worker] = true;
      Envelope r = ack(e);
      r.aux = e.aux;  // the shutdown reply echoes the request's aux
      reply(peer, e.worker, r, {}, out);
      break;
    }
    default: refuse(peer, e, ProtoErr::kMalformed, "unexpected message type", out);
  }
}

std::string Shard::check_message(const FrameView& msg, std::size_t local, bool must_be_identity,
                                 ProtoErr* err) const {
  quant::MessageView view;
  const quant::Status st = quant::parse_message(msg.data, msg.size, &view);
  if (!st.ok()) {
    *err = ProtoErr::kBadMessage;
    return st.to_string();
  }
  const Bucket& b = local_bucket(local);
  const quant::CodecId want = must_be_identity ? quant::CodecId::kIdentity : push_codec(b).id();
  if (view.codec != want) {
    *err = ProtoErr::kCodecMismatch;
    return fmt::format("bucket {}: message codec '{}' but the handshake says '{}'", b.id, quant::codec_name(view.codec),
                       quant::codec_name(want));
  }
  if (view.numel != b.numel) {
    *err = ProtoErr::kSizeMismatch;
    return fmt::format("bucket {}: message has {} elements, bucket has {}", b.id, view.numel, b.numel);
  }
  return "";
}

void Shard::on_init(const std::string& peer, const Envelope& e, const FrameView* body, std::size_t n,
                    std::vector<OutMessage>* out) {
  if (n != nlocal()) {
    refuse(peer, e, ProtoErr::kMalformed, fmt::format("init has {} frames, shard owns {} buckets", n, nlocal()), out);
    return;
  }
  ProtoErr err = ProtoErr::kMalformed;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string why = check_message(body[i], i, /*must_be_identity=*/true, &err);
    if (!why.empty()) {
      refuse(peer, e, err, why, out);
      return;
    }
  }
  if (!initialized_) {
    for (std::size_t i = 0; i < n; ++i) {
      const Bucket& b = local_bucket(i);
      const quant::Status st = identity_->decode(body[i].data, body[i].size, params_.data() + b.shard_offset, b.numel);
      if (!st.ok()) {  // validated above; keep the shard uninitialized if it still fails
        refuse(peer, e, ProtoErr::kBadMessage, st.to_string(), out);
        return;
      }
    }
    replica_ = params_;
    initialized_ = true;
    spdlog::info("shard {}: initialized by worker {}", opt_.shard_id, e.worker);
  }
  reply(peer, e.worker, ack(e), {}, out);
  after_version_change(out);
}

void Shard::initialize(const float* partition, std::vector<OutMessage>* out) {
  std::copy(partition, partition + params_.size(), params_.begin());
  replica_ = params_;
  initialized_ = true;
  after_version_change(out);
}

bool Shard::admit_push(const std::string& peer, const Envelope& e, std::size_t* local, std::vector<OutMessage>* out) {
  if (!initialized_) {
    refuse(peer, e, ProtoErr::kUninitialized, "push before the shard holds parameters", out);
    return false;
  }
  if (e.bucket >= local_of_.size() || local_of_[e.bucket] < 0) {
    refuse(peer, e, ProtoErr::kNotOwned, fmt::format("bucket {} is not owned by shard {}", e.bucket, opt_.shard_id),
           out);
    return false;
  }
  *local = static_cast<std::size_t>(local_of_[e.bucket]);
  if (beyond_step_window(e)) {
    refuse(peer, e, ProtoErr::kWrongStep,
           fmt::format("step {} is more than {} steps ahead of the shard's step {}", e.step, opt_.step_window,
                       version_),
           out);
    return false;
  }
  if (e.step == kLatestStep) {
    refuse(peer, e, ProtoErr::kWrongStep, "push with the 'latest' step marker", out);
    return false;
  }
  // The message itself (checksum, codec, size) is validated once, by the decoder that
  // reads it (accumulate_sync / apply_async): refuse_message() types its verdict.
  return true;
}

void Shard::refuse_message(const std::string& peer, const Envelope& e, std::size_t local, const quant::Status& st,
                           std::vector<OutMessage>* out) {
  ProtoErr err = ProtoErr::kBadMessage;
  if (st.code() == quant::Errc::kCodecMismatch) err = ProtoErr::kCodecMismatch;
  if (st.code() == quant::Errc::kSizeMismatch) err = ProtoErr::kSizeMismatch;
  refuse(peer, e, err, fmt::format("bucket {}: {}", local_bucket(local).id, st.to_string()), out);
}

void Shard::on_push(const std::string& peer, const Envelope& e, const FrameView& msg, Clock::time_point now,
                    std::vector<OutMessage>* out) {
  std::size_t local = 0;
  if (!admit_push(peer, e, &local, out)) return;
  const bool sync = opt_.mode == SyncMode::kSync;
  const auto key = std::make_tuple(e.worker, e.step, e.seq);
  PushOutcome outcome = PushOutcome::kDuplicate;
  if (seen_pushes_.count(key) == 0) {
    outcome = sync ? accumulate_sync(peer, e, local, msg, now, out) : apply_async(peer, e, local, msg, out);
  }
  Envelope r = ack(e);
  switch (outcome) {
    case PushOutcome::kRefused: return;  // refuse() replied
    case PushOutcome::kApplied:
      ++stats_.pushes_applied;
      seen_pushes_.insert(key);
      if (!sync) {
        r.flags = kFlagStaleness;
        r.bucket = static_cast<std::uint32_t>(std::min<std::uint64_t>(last_staleness_, 0xFFFFFFFFu));
      }
      break;
    case PushOutcome::kDuplicate:
      ++stats_.duplicates;
      r.flags = kFlagDuplicate;
      break;
    case PushOutcome::kStale:
      ++stats_.stale_dropped;
      r.flags = kFlagStale;
      break;
  }
  reply(peer, e.worker, r, {}, out);
  if (sync) {
    try_complete(out);
  } else {
    after_version_change(out);
  }
  forget_old_pushes();
}

void Shard::forget_old_pushes() {
  // Constant memory under a long run: the keys of the last kDedupSteps..1.5 kDedupSteps
  // steps (a soak measured the shard's resident memory growing for thousands of steps
  // when the set was only pruned above 65536 keys). A retry older than that is dropped
  // as stale in sync mode; async accepts that horizon.
  constexpr std::uint64_t kDedupSteps = 64;
  if (version_ < pruned_at_version_ + kDedupSteps / 2 || version_ <= kDedupSteps) return;
  pruned_at_version_ = version_;
  for (auto it = seen_pushes_.begin(); it != seen_pushes_.end();) {
    it = std::get<1>(*it) + kDedupSteps < version_ ? seen_pushes_.erase(it) : std::next(it);
  }
}

void Shard::maybe_checkpoint() {
  stats_.version = version_;
  if (opt_.checkpoint_dir.empty() || opt_.checkpoint_every == 0) return;
  if (version_ / opt_.checkpoint_every == last_checkpoint_version_ / opt_.checkpoint_every) return;
  ShardCheckpoint c;
  c.shard_id = opt_.shard_id;
  c.num_shards = layout_.options.num_shards;
  c.version = version_;
  c.signature_hash = sig_hash_;
  c.params = params_;
  c.momentum = momentum_;
  c.replica = replica_;
  try {
    write_checkpoint(opt_.checkpoint_dir, c, opt_.keep_checkpoints);
    ++stats_.checkpoints_written;
    last_checkpoint_version_ = version_;
  } catch (const std::exception& ex) {
    spdlog::error("shard {}: checkpoint at step {} failed: {}", opt_.shard_id, version_, ex.what());
  }
}

}  // namespace gradzip::comm
