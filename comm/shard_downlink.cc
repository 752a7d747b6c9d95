// Shard, downlink: pulls and their replies. Dense: identity (fp32) messages of the
// parameters, cached per bucket until they change. Compressed (sync only): the shard
// keeps the replica x^ that workers hold, sends C(x - x^) and adds the same decoded
// update to x^, so x - x^ is the error-feedback residual (semantics: comm/shard.h).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "comm/shard.h"

namespace gradzip::comm {

void Shard::on_pull(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out) {
  if (beyond_step_window(e)) {
    refuse(peer, e, ProtoErr::kWrongStep,
           fmt::format("pull of step {} is more than {} steps ahead of step {}", e.step, opt_.step_window, version_),
           out);
    return;
  }
  if ((e.flags & kFlagOneBucket) != 0 && (e.bucket >= local_of_.size() || local_of_[e.bucket] < 0)) {
    refuse(peer, e, ProtoErr::kNotOwned,
           fmt::format("pull of bucket {}, which shard {} does not own", e.bucket, opt_.shard_id), out);
    return;
  }
  if (pull_ready(e)) {
    answer_pull(peer, e, out);
    return;
  }
  if (excuse_lost_pushes(peer, e, out)) return;
  // A retried pull replaces the pending one of the same request id.
  for (auto& p : pending_pulls_) {
    if (p.env.worker == e.worker && p.env.seq == e.seq) {
      p.peer = peer;
      p.parts_sent.clear();  // its earlier parts may be what was lost: send all again
      return;
    }
  }
  pending_pulls_.push_back({peer, e, {}});
}

bool Shard::pull_ready(const Envelope& e) const {
  if (!initialized_) return false;
  if (e.step == kLatestStep) return true;
  switch (opt_.mode) {
    case SyncMode::kSync: return e.step < version_;
    case SyncMode::kAsync: return true;
    case SyncMode::kSsp: return ssp_ready(e.step);
  }
  return true;
}

void Shard::answer_pull(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out,
                        std::vector<bool>* sent) {
  // A worker whose replica is one step behind gets the compressed update; any other
  // (a new or rejoining worker, a 'latest' pull) the dense replica.
  const bool delta = downlink_ && version_ > 0 && e.aux == version_ - 1 && e.step != kLatestStep &&
                     nlocal() > 0 && delta_cache_[0] != nullptr;
  // Dense: a one-bucket pull gets its bucket in one reply; a whole-model pull one kFlagPart
  // message per bucket not sent yet (the pipelined parts sent by apply_bucket are marked
  // in `sent`).
  const bool one = (e.flags & kFlagOneBucket) != 0;
  if (!delta && one) {
    answer_one_bucket(peer, e, version_, out);
    return;
  }
  if (!delta) {
    for (std::size_t i = 0; i < nlocal(); ++i) {
      if (sent == nullptr || sent->empty() || !(*sent)[i]) send_part(peer, e, i, version_, out);
    }
    return;
  }
  // The compressed update of every bucket, or of the one bucket a kFlagOneBucket pull
  // names (checked by on_pull; without kFlagPart): one reply.
  const std::size_t first = one ? static_cast<std::size_t>(local_of_[e.bucket]) : 0;
  const std::size_t end = one ? first + 1 : nlocal();
  Envelope r = ack(e);
  r.bucket = static_cast<std::uint32_t>(end - first);
  r.flags = kFlagDelta;
  std::vector<SharedBytes> bodies;
  bodies.reserve(end - first);
  for (std::size_t i = first; i < end; ++i) {
    bodies.push_back(delta_cache_[i]);
    seen_updates_[e.worker][i] = bucket_updates_[i];
  }
  reply(peer, e.worker, r, std::move(bodies), out);
}

void Shard::answer_one_bucket(const std::string& peer, const Envelope& e, std::uint64_t steps,
                              std::vector<OutMessage>* out) {
  const std::size_t i = static_cast<std::size_t>(local_of_[e.bucket]);
  Envelope r = ack(e);
  r.bucket = 1;  // one body frame
  r.flags = 0;
  r.aux = steps;
  seen_updates_[e.worker][i] = bucket_updates_[i];
  reply(peer, e.worker, r, {dense_message(i)}, out);
}

void Shard::send_part(const std::string& peer, const Envelope& e, std::size_t i, std::uint64_t steps,
                      std::vector<OutMessage>* out) {
  Envelope r = ack(e);
  r.bucket = static_cast<std::uint32_t>(i);
  r.flags = kFlagPart;
  r.aux = steps;
  seen_updates_[e.worker][i] = bucket_updates_[i];
  reply(peer, e.worker, r, {dense_message(i)}, out);
}

void Shard::after_version_change(std::vector<OutMessage>* out) {
  stats_.version = version_;
  std::vector<PendingPull> still;
  for (auto& p : pending_pulls_) {
    if (pull_ready(p.env)) {
      answer_pull(p.peer, p.env, out, &p.parts_sent);
    } else {
      still.push_back(std::move(p));
    }
  }
  pending_pulls_ = std::move(still);
}

SharedBytes Shard::dense_message(std::size_t local) {
  const std::uint64_t tag = bucket_updates_[local];  // bumped by every change of the bucket's params/replica
  if (dense_cache_[local] && dense_cache_tag_[local] == tag) return dense_cache_[local];
  const Bucket& b = local_bucket(local);
  const float* src = (downlink_ ? replica_.data() : params_.data()) + b.shard_offset;
  // On a pooled buffer: the previous message of this bucket returns to the pool once the
  // replies that carry it are sent, and the next step reuses its pages.
  auto buf = message_pool_.acquire(identity_->max_encoded_bytes(b.numel));
  std::size_t bytes = 0;
  const quant::Status st = identity_->encode(src, b.numel, quant::SeedContext{}, buf->data(), buf->size(), &bytes);
  if (!st.ok()) throw quant::QuantError(st);  // non-finite parameters: what encode() did before
  buf->resize(bytes);
  dense_cache_[local] = std::move(buf);
  dense_cache_tag_[local] = tag;
  return dense_cache_[local];
}

void Shard::encode_downlink(std::uint64_t step, std::size_t i) {
  // x^ += C(x - x^): the residual x - x^ carries what was not yet sent (error feedback).
  const Bucket& b = local_bucket(i);
  scratch_.resize(b.numel);
  for (std::size_t k = 0; k < b.numel; ++k) scratch_[k] = params_[b.shard_offset + k] - replica_[b.shard_offset + k];
  const quant::SeedContext ctx{opt_.downlink_seed, step, 0xFFFFFFFFu, b.id};
  auto msg = downlink_->encode(scratch_.data(), b.numel, ctx);
  const quant::Status st =
      downlink_->decode_add(msg.data(), msg.size(), replica_.data() + b.shard_offset, b.numel, 1.0f);
  if (!st.ok()) spdlog::error("shard {}: downlink self-decode failed: {}", opt_.shard_id, st.to_string());
  delta_cache_[i] = share(std::move(msg));
}

}  // namespace gradzip::comm
