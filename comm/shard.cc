#include "comm/shard.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "comm/accounting.h"
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

std::string ShardStats::to_json() const {
  nlohmann::json j;
  j["shard"] = shard_id;
  j["version"] = version;
  j["total"] = nlohmann::json::parse(counters_json(total));
  auto& ws = j["workers"] = nlohmann::json::array();
  for (const auto& w : workers) ws.push_back(nlohmann::json::parse(counters_json(w)));
  j["pushes_applied"] = pushes_applied;
  j["duplicates"] = duplicates;
  j["stale_dropped"] = stale_dropped;
  j["refused"] = refused;
  j["refused_by_reason"] = refused_by_reason;
  j["timeout_completions"] = timeout_completions;
  j["workers_declared_dead"] = workers_declared_dead;
  j["staleness"] = {{"count", staleness_count}, {"sum", staleness_sum}, {"max", staleness_max}};
  j["checkpoints_written"] = checkpoints_written;
  j["apply_seconds"] = apply_seconds;
  return j.dump();
}

namespace {
SharedBytes make_bytes(std::vector<std::uint8_t> v) {
  return std::make_shared<const std::vector<std::uint8_t>>(std::move(v));
}
}  // namespace

Shard::Shard(ShardOptions options, ModelSignature signature, Layout layout)
    : opt_(std::move(options)), sig_(std::move(signature)), layout_(std::move(layout)) {
  const std::uint32_t m = layout_.options.num_shards;
  if (opt_.shard_id >= m) throw std::invalid_argument(fmt::format("shard id {} >= shards {}", opt_.shard_id, m));
  if (opt_.num_workers == 0) throw std::invalid_argument("shard: num_workers must be >= 1");
  try {
    uplink_ = quant::make_codec(quant::parse_compressor_spec(sig_.compressor_spec).codec);
    identity_ = quant::make_codec("identity");
    if (sig_.downlink_spec != "dense") downlink_ = quant::make_codec(sig_.downlink_spec);
  } catch (const quant::SpecError& e) {
    throw std::invalid_argument(std::string("shard: ") + e.what());
  }
  if (downlink_ && opt_.mode != SyncMode::kSync) {
    throw std::invalid_argument("shard: a compressed downlink needs sync mode (the replica is shared by all workers)");
  }
  sig_hash_ = XXH3_64bits(signature_to_json(sig_).data(), signature_to_json(sig_).size());
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
  clock_.assign(w, 0);
  async_progress_.assign(w, {});
  bucket_updates_.assign(nlocal(), 0);
  seen_updates_.assign(w, std::vector<std::uint64_t>(nlocal(), 0));
  dense_cache_.assign(nlocal(), nullptr);
  delta_cache_.assign(nlocal(), nullptr);
  dense_cache_tag_.assign(nlocal(), ~std::uint64_t{0});
  stats_.shard_id = opt_.shard_id;
  stats_.workers.assign(w, {});

  if (opt_.restore && !opt_.checkpoint_dir.empty()) {
    ShardCheckpoint c;
    std::vector<std::string> skipped;
    const std::uint64_t newest = opt_.restore_version == 0 ? UINT64_MAX : opt_.restore_version;
    const bool found =
        load_newest_checkpoint(opt_.checkpoint_dir, opt_.shard_id, m, sig_hash_, n, &c, &skipped, newest);
    for (const auto& s : skipped) spdlog::warn("shard {}: skipped checkpoint {}", opt_.shard_id, s);
    if (opt_.restore_version != 0 && (!found || c.version != opt_.restore_version)) {
      throw std::runtime_error(fmt::format("shard {}: no valid checkpoint of step {} in {}", opt_.shard_id,
                                           opt_.restore_version, opt_.checkpoint_dir));
    }
    if (found) {
      params_ = std::move(c.params);
      momentum_ = std::move(c.momentum);
      replica_ = std::move(c.replica);
      version_ = c.version;
      last_checkpoint_version_ = version_;
      std::fill(clock_.begin(), clock_.end(), version_);
      initialized_ = true;
      spdlog::info("shard {}: restored step {} from {}", opt_.shard_id, version_, opt_.checkpoint_dir);
    } else {
      spdlog::info("shard {}: no valid checkpoint in {}; waiting for initial parameters", opt_.shard_id,
                   opt_.checkpoint_dir);
    }
  }
  stats_.version = version_;
}

bool Shard::all_workers_shut_down() const {
  return std::all_of(shut_down_.begin(), shut_down_.end(), [](bool b) { return b; });
}

std::uint64_t Shard::max_frame_bytes() const {
  std::uint64_t most = signature_to_json(sig_).size() + 4096;
  for (auto id : local_ids_) {
    const std::uint64_t n = layout_.buckets[id].numel;
    most = std::max<std::uint64_t>(most, uplink_->max_encoded_bytes(n));
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
  msg.frames.push_back(make_bytes(std::move(head)));
  for (auto& b : bodies) msg.frames.push_back(std::move(b));
  std::vector<std::size_t> sizes;
  for (const auto& f : msg.frames) sizes.push_back(f->size());
  count_message(&stats_.total.down, sizes.data(), sizes.size());
  if (worker < stats_.workers.size()) count_message(&stats_.workers[worker].down, sizes.data(), sizes.size());
  out->push_back(std::move(msg));
}

void Shard::refuse(const std::string& peer, const Envelope& req, ProtoErr err, const std::string& text,
                   std::vector<OutMessage>* out) {
  ++stats_.refused;
  ++stats_.refused_by_reason[proto_err_name(err)];
  // Rate-limited log: a barrage must not turn into a disk-filling log.
  if (stats_.refused <= 20 || (stats_.refused & (stats_.refused - 1)) == 0) {
    spdlog::warn("shard {}: refused request (worker {}, step {}, seq {}) #{}: {}: {}", opt_.shard_id, req.worker,
                 req.step, req.seq, stats_.refused, proto_err_name(err), text);
  }
  Envelope e = req;
  e.type = MsgType::kError;
  e.flags = 0;
  e.bucket = static_cast<std::uint32_t>(err);
  e.aux = version_;
  reply(peer, req.worker, e, {make_bytes(std::vector<std::uint8_t>(text.begin(), text.end()))}, out);
}

void Shard::handle(const std::string& peer, const FrameView* frames, std::size_t count, Clock::time_point now,
                   std::vector<OutMessage>* out) {
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < count; ++i) sizes.push_back(frames[i].size);
  count_message(&stats_.total.up, sizes.data(), sizes.size());
  Envelope e;
  std::string why;
  if (count == 0 || !read_envelope(frames[0].data, frames[0].size, &e, &why)) {
    refuse(peer, e, ProtoErr::kMalformed, count == 0 ? "empty message" : why, out);
    return;
  }
  if (e.type == MsgType::kError || (static_cast<std::uint8_t>(e.type) & kReplyBit) != 0) {
    refuse(peer, e, ProtoErr::kMalformed, "a reply type sent as a request", out);
    return;
  }
  if (e.worker >= opt_.num_workers) {
    refuse(peer, e, ProtoErr::kUnknownWorker,
           fmt::format("worker rank {} but this run has {} workers", e.worker, opt_.num_workers), out);
    return;
  }
  count_message(&stats_.workers[e.worker].up, sizes.data(), sizes.size());
  const FrameView* body = frames + 1;
  const std::size_t nbody = count - 1;
  switch (e.type) {
    case MsgType::kHello: on_hello(peer, e, body, nbody, out); break;
    case MsgType::kInit: on_init(peer, e, body, nbody, out); break;
    case MsgType::kPush:
      if (nbody != 1) {
        refuse(peer, e, ProtoErr::kMalformed, fmt::format("push has {} body frames, expected 1", nbody), out);
      } else {
        on_push(peer, e, body[0], now, out);
      }
      break;
    case MsgType::kPull: on_pull(peer, e, out); break;
    case MsgType::kBarrier: on_barrier(peer, e, out); break;
    case MsgType::kHeartbeat: {
      Envelope r = e;
      r.type = static_cast<MsgType>(static_cast<std::uint8_t>(e.type) | kReplyBit);
      r.aux = version_;
      reply(peer, e.worker, r, {}, out);
      break;
    }
    case MsgType::kShutdown: {
      shut_down_[e.worker] = true;
      Envelope r = e;
      r.type = static_cast<MsgType>(static_cast<std::uint8_t>(e.type) | kReplyBit);
      reply(peer, e.worker, r, {}, out);
      break;
    }
    default: refuse(peer, e, ProtoErr::kMalformed, "unexpected message type", out);
  }
}

void Shard::on_hello(const std::string& peer, const Envelope& e, const FrameView* body, std::size_t n,
                     std::vector<OutMessage>* out) {
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
  if (!live_[e.worker]) spdlog::info("shard {}: worker {} rejoined at step {}", opt_.shard_id, e.worker, version_);
  live_[e.worker] = true;
  shut_down_[e.worker] = false;
  Envelope r = e;
  r.type = static_cast<MsgType>(static_cast<std::uint8_t>(MsgType::kHello) | kReplyBit);
  r.flags = initialized_ ? 0 : kFlagUninitialized;
  // Where this worker resumes: sync workers move in lockstep; an async/ssp worker
  // continues its own clock.
  r.aux = opt_.mode == SyncMode::kSync ? version_ : clock_[e.worker];
  reply(peer, e.worker, r, {}, out);
}

std::string Shard::check_message(const FrameView& msg, std::size_t local, bool must_be_identity,
                                 ProtoErr* err) const {
  quant::MessageView view;
  const quant::Status st = quant::parse_message(msg.data, msg.size, &view);
  if (!st.ok()) {
    *err = ProtoErr::kBadMessage;
    return st.to_string();
  }
  const Bucket& b = layout_.buckets[local_ids_[local]];
  const quant::CodecId want = must_be_identity || !b.compressed ? quant::CodecId::kIdentity : uplink_->id();
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
      const Bucket& b = layout_.buckets[local_ids_[i]];
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
  Envelope r = e;
  r.type = static_cast<MsgType>(static_cast<std::uint8_t>(MsgType::kInit) | kReplyBit);
  r.aux = version_;
  reply(peer, e.worker, r, {}, out);
  after_version_change(out);
}

void Shard::initialize(const float* partition, std::vector<OutMessage>* out) {
  std::copy(partition, partition + params_.size(), params_.begin());
  replica_ = params_;
  initialized_ = true;
  after_version_change(out);
}

void Shard::on_push(const std::string& peer, const Envelope& e, const FrameView& msg, Clock::time_point now,
                    std::vector<OutMessage>* out) {
  if (!initialized_) {
    refuse(peer, e, ProtoErr::kUninitialized, "push before the shard holds parameters", out);
    return;
  }
  if (e.bucket >= local_of_.size() || local_of_[e.bucket] < 0) {
    refuse(peer, e, ProtoErr::kNotOwned, fmt::format("bucket {} is not owned by shard {}", e.bucket, opt_.shard_id),
           out);
    return;
  }
  const auto local = static_cast<std::size_t>(local_of_[e.bucket]);
  if (e.step != kLatestStep && e.step >= version_ + opt_.step_window) {
    refuse(peer, e, ProtoErr::kWrongStep,
           fmt::format("step {} is more than {} steps ahead of the shard's step {}", e.step, opt_.step_window, version_),
           out);
    return;
  }
  if (e.step == kLatestStep) {
    refuse(peer, e, ProtoErr::kWrongStep, "push with the 'latest' step marker", out);
    return;
  }
  ProtoErr err = ProtoErr::kMalformed;
  const std::string why = check_message(msg, local, false, &err);
  if (!why.empty()) {
    refuse(peer, e, err, why, out);
    return;
  }
  Envelope r = e;
  r.type = static_cast<MsgType>(static_cast<std::uint8_t>(MsgType::kPush) | kReplyBit);
  const auto key = std::make_tuple(e.worker, e.step, e.seq);
  const Bucket& b = layout_.buckets[e.bucket];
  const quant::Codec& codec = b.compressed ? *uplink_ : *identity_;
  const bool sync = opt_.mode == SyncMode::kSync;

  if (seen_pushes_.count(key) != 0) {
    ++stats_.duplicates;
    r.flags = kFlagDuplicate;
  } else if (sync && e.step < version_) {
    ++stats_.stale_dropped;
    r.flags = kFlagStale;
  } else if (sync) {
    auto it = pending_.find(e.step);
    if (it == pending_.end()) {
      if (pending_.size() >= opt_.max_pending_steps) {
        refuse(peer, e, ProtoErr::kBusy, fmt::format("{} steps already pending", pending_.size()), out);
        return;
      }
      it = pending_.emplace(e.step, new_pending(now)).first;
    }
    Pending& p = it->second;
    if (p.received[e.worker][local]) {
      ++stats_.duplicates;
      r.flags = kFlagDuplicate;
    } else {
      // The accumulator is not zeroed: the first contribution of a bucket overwrites it
      // (saves a pass over the partition per step).
      quant::Status st;
      float* acc = p.acc.data() + b.shard_offset;
      const bool first = p.contributors[local] == 0;
      if (opt_.aggregation == Aggregation::kMajorityVote) {
        scratch_.resize(b.numel);
        st = codec.decode(msg.data, msg.size, scratch_.data(), b.numel);
        if (st.ok()) {
          for (std::size_t i = 0; i < b.numel; ++i) {
            const float vote = static_cast<float>((scratch_[i] > 0.0f) - (scratch_[i] < 0.0f));
            acc[i] = first ? vote : acc[i] + vote;
          }
        }
      } else if (first) {
        st = codec.decode(msg.data, msg.size, acc, b.numel);
      } else {
        st = codec.decode_add(msg.data, msg.size, acc, b.numel, 1.0f);
      }
      if (!st.ok()) {
        refuse(peer, e, ProtoErr::kBadMessage, st.to_string(), out);
        return;
      }
      p.received[e.worker][local] = true;
      ++p.contributors[local];
      ++p.done[e.worker];
      ++stats_.pushes_applied;
      seen_pushes_.insert(key);
      if (!live_[e.worker]) {
        spdlog::info("shard {}: worker {} is back (push for step {})", opt_.shard_id, e.worker, e.step);
        live_[e.worker] = true;
      }
    }
  } else {
    // async / ssp: apply now.
    auto& progress = async_progress_[e.worker][e.step];
    scratch_.resize(b.numel);
    quant::Status st = codec.decode(msg.data, msg.size, scratch_.data(), b.numel);
    if (!st.ok()) {
      refuse(peer, e, ProtoErr::kBadMessage, st.to_string(), out);
      return;
    }
    const auto t0 = Clock::now();
    if (opt_.aggregation == Aggregation::kMajorityVote) {
      for (auto& v : scratch_) v = static_cast<float>((v > 0.0f) - (v < 0.0f));
    }
    const std::uint64_t staleness = bucket_updates_[local] - seen_updates_[e.worker][local];
    ++stats_.staleness_count;
    stats_.staleness_sum += staleness;
    stats_.staleness_max = std::max(stats_.staleness_max, staleness);
    sgd_step(opt_.optimizer, e.step, params_.data() + b.shard_offset, scratch_.data(),
             momentum_.data() + b.shard_offset, b.numel);
    ++bucket_updates_[local];
    stats_.apply_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    ++stats_.pushes_applied;
    seen_pushes_.insert(key);
    live_[e.worker] = true;
    if (++progress == nlocal()) {
      async_progress_[e.worker].erase(e.step);
      clock_[e.worker] = std::max(clock_[e.worker], e.step + 1);
      const std::uint64_t before = version_;
      version_ = std::max(version_, e.step + 1);
      if (version_ != before) maybe_checkpoint();
    }
  }
  r.aux = version_;
  reply(peer, e.worker, r, {}, out);
  if (sync) {
    try_complete(out);
  } else {
    after_version_change(out);
  }
  // Forget dedup keys far behind (bounded memory under a long run). A retry older than
  // kDedupSteps steps is dropped as stale in sync mode; async accepts that horizon.
  constexpr std::uint64_t kDedupSteps = 64;
  if (seen_pushes_.size() > 65536 && version_ > kDedupSteps) {
    for (auto it = seen_pushes_.begin(); it != seen_pushes_.end();) {
      it = std::get<1>(*it) + kDedupSteps < version_ ? seen_pushes_.erase(it) : std::next(it);
    }
  }
}

Shard::Pending Shard::new_pending(Clock::time_point now) {
  Pending p;
  if (!acc_pool_.empty()) {
    p.acc = std::move(acc_pool_.back());  // reused: no allocation, no page faults per step
    acc_pool_.pop_back();
  } else {
    p.acc.assign(params_.size(), 0.0f);
  }
  p.contributors.assign(nlocal(), 0);
  p.received.assign(opt_.num_workers, std::vector<bool>(nlocal(), false));
  p.done.assign(opt_.num_workers, 0);
  p.first_push = now;
  return p;
}

void Shard::try_complete(std::vector<OutMessage>* out) {
  bool changed = false;
  while (!pending_.empty()) {
    auto it = pending_.begin();
    Pending& p = it->second;
    bool complete = true;
    for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
      if (live_[w] && p.done[w] < nlocal()) complete = false;
    }
    // A later step complete while this one is not: the missing pushes are not coming.
    if (!complete && std::next(it) != pending_.end()) {
      const Pending& q = std::next(it)->second;
      bool later = true;
      for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
        if (live_[w] && q.done[w] < nlocal()) later = false;
      }
      complete = later;
    }
    if (!complete) break;
    if (it->first > version_) {
      spdlog::warn("shard {}: jumping from step {} to step {} (restored shard behind the workers)", opt_.shard_id,
                   version_, it->first);
    }
    if (it->first >= version_) apply_sync(it->first, p);
    if (acc_pool_.size() < 2) acc_pool_.push_back(std::move(p.acc));
    pending_.erase(it);
    changed = true;
  }
  if (changed) after_version_change(out);
}

void Shard::apply_sync(std::uint64_t step, Pending& p) {
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < nlocal(); ++i) {
    const Bucket& b = layout_.buckets[local_ids_[i]];
    float* g = p.acc.data() + b.shard_offset;
    if (p.contributors[i] == 0) continue;  // nobody's gradient arrived: no update
    if (opt_.aggregation == Aggregation::kMajorityVote) {
      for (std::size_t k = 0; k < b.numel; ++k) g[k] = static_cast<float>((g[k] > 0.0f) - (g[k] < 0.0f));
    } else if (p.contributors[i] > 1) {
      const float inv = 1.0f / static_cast<float>(p.contributors[i]);
      for (std::size_t k = 0; k < b.numel; ++k) g[k] *= inv;
    }
    sgd_step(opt_.optimizer, step, params_.data() + b.shard_offset, g, momentum_.data() + b.shard_offset, b.numel);
  }
  version_ = step + 1;
  if (downlink_) {
    // x^ += C(x - x^): the residual x - x^ carries what was not yet sent (error feedback).
    for (std::size_t i = 0; i < nlocal(); ++i) {
      const Bucket& b = layout_.buckets[local_ids_[i]];
      scratch_.resize(b.numel);
      for (std::size_t k = 0; k < b.numel; ++k) {
        scratch_[k] = params_[b.shard_offset + k] - replica_[b.shard_offset + k];
      }
      const quant::SeedContext ctx{opt_.downlink_seed, step, 0xFFFFFFFFu, b.id};
      auto msg = downlink_->encode(scratch_.data(), b.numel, ctx);
      const quant::Status st =
          downlink_->decode_add(msg.data(), msg.size(), replica_.data() + b.shard_offset, b.numel, 1.0f);
      if (!st.ok()) spdlog::error("shard {}: downlink self-decode failed: {}", opt_.shard_id, st.to_string());
      delta_cache_[i] = make_bytes(std::move(msg));
    }
  }
  stats_.apply_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  maybe_checkpoint();
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

void Shard::tick(Clock::time_point now, std::vector<OutMessage>* out) {
  if (opt_.mode != SyncMode::kSync || opt_.worker_timeout_s <= 0.0 || pending_.empty()) return;
  Pending& p = pending_.begin()->second;
  if (std::chrono::duration<double>(now - p.first_push).count() < opt_.worker_timeout_s) return;
  for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
    if (live_[w] && p.done[w] < nlocal()) {
      live_[w] = false;
      ++stats_.workers_declared_dead;
      spdlog::warn("shard {}: worker {} missed step {} for {:.1f} s; continuing without it", opt_.shard_id, w,
                   pending_.begin()->first, opt_.worker_timeout_s);
    }
  }
  ++stats_.timeout_completions;
  try_complete(out);
}

bool Shard::pull_ready(const Envelope& e) const {
  if (!initialized_) return false;
  if (e.step == kLatestStep) return true;
  switch (opt_.mode) {
    case SyncMode::kSync: return e.step < version_;
    case SyncMode::kAsync: return true;
    case SyncMode::kSsp: {
      std::uint64_t slowest = ~std::uint64_t{0};
      for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
        if (live_[w]) slowest = std::min(slowest, clock_[w]);
      }
      return slowest == ~std::uint64_t{0} || slowest + opt_.ssp_slack >= e.step + 1;
    }
  }
  return true;
}

SharedBytes Shard::dense_message(std::size_t local) {
  const std::uint64_t tag = opt_.mode == SyncMode::kSync ? version_ : bucket_updates_[local];
  if (dense_cache_[local] && dense_cache_tag_[local] == tag) return dense_cache_[local];
  const Bucket& b = layout_.buckets[local_ids_[local]];
  const float* src = (downlink_ ? replica_.data() : params_.data()) + b.shard_offset;
  auto msg = identity_->encode(src, b.numel, quant::SeedContext{});
  dense_cache_[local] = make_bytes(std::move(msg));
  dense_cache_tag_[local] = tag;
  return dense_cache_[local];
}

void Shard::answer_pull(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out) {
  Envelope r = e;
  r.type = static_cast<MsgType>(static_cast<std::uint8_t>(MsgType::kPull) | kReplyBit);
  r.bucket = static_cast<std::uint32_t>(nlocal());
  r.aux = version_;
  r.flags = 0;
  std::vector<SharedBytes> bodies;
  bodies.reserve(nlocal());
  const bool delta = downlink_ && version_ > 0 && e.aux == version_ - 1 && e.step != kLatestStep &&
                     nlocal() > 0 && delta_cache_[0] != nullptr;
  if (delta) r.flags = kFlagDelta;
  for (std::size_t i = 0; i < nlocal(); ++i) {
    bodies.push_back(delta ? delta_cache_[i] : dense_message(i));
    seen_updates_[e.worker][i] = bucket_updates_[i];
  }
  reply(peer, e.worker, r, std::move(bodies), out);
}

void Shard::on_pull(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out) {
  if (e.step != kLatestStep && e.step >= version_ + opt_.step_window) {
    refuse(peer, e, ProtoErr::kWrongStep,
           fmt::format("pull of step {} is more than {} steps ahead of step {}", e.step, opt_.step_window, version_),
           out);
    return;
  }
  if (pull_ready(e)) {
    answer_pull(peer, e, out);
    return;
  }
  if (opt_.mode == SyncMode::kSync && initialized_ && e.step != kLatestStep && e.step >= version_) {
    // Workers pull step t only after their pushes of t were acknowledged. If this shard
    // lacks them, it was restarted from a checkpoint and lost them: excuse the worker
    // from step t (the step completes with the pushes that did arrive) instead of
    // waiting for pushes that will not come again.
    auto it = pending_.find(e.step);
    if (it == pending_.end() && pending_.size() < opt_.max_pending_steps) {
      it = pending_.emplace(e.step, new_pending(Clock::now())).first;
    }
    if (it != pending_.end() && it->second.done[e.worker] < nlocal()) {
      spdlog::info("shard {}: worker {} pulls step {} without its pushes (lost by a restart at step {}); excused",
                   opt_.shard_id, e.worker, e.step, version_);
      it->second.done[e.worker] = static_cast<std::uint32_t>(nlocal());
      std::fill(it->second.received[e.worker].begin(), it->second.received[e.worker].end(), true);
      try_complete(out);
      if (pull_ready(e)) {
        answer_pull(peer, e, out);
        return;
      }
    }
  }
  // A retried pull replaces the pending one of the same request id.
  for (auto& p : pending_pulls_) {
    if (p.env.worker == e.worker && p.env.seq == e.seq) {
      p.peer = peer;
      return;
    }
  }
  pending_pulls_.push_back({peer, e});
}

void Shard::after_version_change(std::vector<OutMessage>* out) {
  stats_.version = version_;
  std::vector<PendingPull> still;
  for (auto& p : pending_pulls_) {
    if (pull_ready(p.env)) {
      answer_pull(p.peer, p.env, out);
    } else {
      still.push_back(std::move(p));
    }
  }
  pending_pulls_ = std::move(still);
}

void Shard::on_barrier(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out) {
  bool present = false;
  for (auto& b : barrier_waiting_) {
    if (b.env.worker == e.worker) {
      b = {peer, e};
      present = true;
    }
  }
  if (!present) barrier_waiting_.push_back({peer, e});
  std::uint32_t live = 0;
  for (std::uint32_t w = 0; w < opt_.num_workers; ++w) live += live_[w] ? 1 : 0;
  if (barrier_waiting_.size() < live) return;
  for (const auto& b : barrier_waiting_) {
    Envelope r = b.env;
    r.type = static_cast<MsgType>(static_cast<std::uint8_t>(MsgType::kBarrier) | kReplyBit);
    r.aux = version_;
    reply(b.peer, b.env.worker, r, {}, out);
  }
  barrier_waiting_.clear();
}

}  // namespace gradzip::comm
