// Shard, sync (BSP) round: pushes of step t are accumulated per bucket; the step is
// applied once every live worker pushed all of this shard's buckets for t (or the
// worker timeout declared the missing ones dead), then pulls of t are answered
// (semantics: comm/shard.h).
#include <algorithm>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "comm/shard.h"
#include "quant/codecs/sign.h"

namespace gradzip::comm {

Shard::PushOutcome Shard::accumulate_sync(const std::string& peer, const Envelope& e, std::size_t local,
                                          const FrameView& msg, Clock::time_point now,
                                          std::vector<OutMessage>* out) {
  if (e.step < version_) return PushOutcome::kStale;
  auto it = pending_.find(e.step);
  const bool created = it == pending_.end();
  if (created) {
    if (pending_.size() >= opt_.max_pending_steps) {
      refuse(peer, e, ProtoErr::kBusy, fmt::format("{} steps already pending", pending_.size()), out);
      return PushOutcome::kRefused;
    }
    it = pending_.emplace(e.step, new_pending(now)).first;
  }
  Pending& p = it->second;
  if (p.received[e.worker][local]) return PushOutcome::kDuplicate;
  if (p.applied[local]) return PushOutcome::kStale;  // applied without it (a worker that rejoined mid-step)
  const Bucket& b = local_bucket(local);
  const quant::Status st = accumulate_message(msg, push_codec(b), p.acc.data() + b.shard_offset, b.numel,
                                              /*first=*/p.contributors[local] == 0);
  if (!st.ok()) {  // nothing was written; a step this push opened goes again
    if (created) {
      if (acc_pool_.size() < 2) acc_pool_.push_back(std::move(p.acc));
      pending_.erase(it);
    }
    refuse_message(peer, e, local, st, out);
    return PushOutcome::kRefused;
  }
  p.received[e.worker][local] = true;
  ++p.contributors[local];
  ++p.done[e.worker];
  return PushOutcome::kApplied;
}

quant::Status Shard::accumulate_message(const FrameView& msg, const quant::Codec& codec, float* acc,
                                        std::size_t numel, bool first) {
  // The accumulator is not zeroed: the first contribution of a bucket overwrites it
  // (saves a pass over the partition per step).
  if (opt_.aggregation == Aggregation::kMean) {
    if (first) return codec.decode(msg.data, msg.size, acc, numel);
    return codec.decode_add(msg.data, msg.size, acc, numel, 1.0f);
  }
  // Majority vote: each worker votes sign(g); the votes are summed here and apply_sync
  // takes the sign of the sum.
  scratch_.resize(numel);
  const quant::Status st = codec.decode(msg.data, msg.size, scratch_.data(), numel);
  if (!st.ok()) return st;
  quant::majority_vote(scratch_.data(), numel);  // one worker's vote
  if (first) {
    std::copy(scratch_.begin(), scratch_.end(), acc);
  } else {
    for (std::size_t i = 0; i < numel; ++i) acc[i] += scratch_[i];
  }
  return st;
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
  p.applied.assign(nlocal(), false);
  p.first_push = now;
  return p;
}

bool Shard::step_complete(const Pending& p) const {
  for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
    if (live_[w] && p.done[w] < nlocal()) return false;
  }
  return true;
}

bool Shard::bucket_complete(const Pending& p, std::size_t i) const {
  for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
    if (live_[w] && !p.received[w][i]) return false;
  }
  return true;
}

void Shard::try_complete(std::vector<OutMessage>* out) {
  if (!pending_.empty() && pending_.begin()->first == version_) {
    Pending& p = pending_.begin()->second;
    for (std::size_t i = 0; i < nlocal(); ++i) {
      if (!p.applied[i] && bucket_complete(p, i)) apply_bucket(version_, p, i, out);
    }
  }
  bool changed = false;
  while (!pending_.empty()) {
    auto it = pending_.begin();
    Pending& p = it->second;
    // A later step complete while this one is not: the missing pushes are not coming.
    const bool complete = step_complete(p) || (std::next(it) != pending_.end() && step_complete(std::next(it)->second));
    if (!complete) break;
    // Only a shard restored from a checkpoint may move ahead of its own step, and only
    // to a step every live worker pushed or pulled (step_complete above).
    if (it->first > version_ && !may_jump_) break;
    if (it->first > version_) {
      spdlog::warn("shard {}: jumping from step {} to step {} (restored shard behind the workers)", opt_.shard_id,
                   version_, it->first);
    }
    if (it->first >= version_) apply_sync(it->first, p, out);
    if (acc_pool_.size() < 2) acc_pool_.push_back(std::move(p.acc));
    pending_.erase(it);
    changed = true;
  }
  if (changed) after_version_change(out);
}

void Shard::apply_bucket(std::uint64_t step, Pending& p, std::size_t i, std::vector<OutMessage>* out) {
  if (p.applied[i]) return;
  const auto t0 = Clock::now();
  p.applied[i] = true;
  const Bucket& b = local_bucket(i);
  if (p.contributors[i] > 0) {  // nobody's gradient arrived: no update
    float* g = p.acc.data() + b.shard_offset;
    if (opt_.aggregation == Aggregation::kMajorityVote) quant::majority_vote(g, b.numel);  // the sign of the summed votes
    const std::uint32_t contributors = opt_.aggregation == Aggregation::kMajorityVote ? 1 : p.contributors[i];
    mean_sgd_step(opt_.optimizer, step, params_.data() + b.shard_offset, g, momentum_.data() + b.shard_offset, b.numel,
                  contributors);
  }
  if (downlink_) encode_downlink(step, i);
  ++bucket_updates_[i];
  // Every worker pulls this bucket next: encode its reply now, while later buckets
  // arrive. (Non-finite parameters cannot be encoded: the pull reports it, as before.)
  if (!downlink_) {
    try {
      dense_message(i);
    } catch (const quant::QuantError&) {
      add_apply_time(t0);
      return;
    }
  }
  add_apply_time(t0);
  if (downlink_) return;
  // Pulls of this step already waiting get this bucket now (pulls pipelined with pushes):
  // a whole-model pull one kFlagPart message, a kFlagOneBucket pull of this bucket its
  // whole reply (the next forward waits only for the bucket its layer needs).
  std::size_t kept = 0;
  for (std::size_t k = 0; k < pending_pulls_.size(); ++k) {
    PendingPull& pull = pending_pulls_[k];
    const bool one = (pull.env.flags & kFlagOneBucket) != 0;
    if (pull.env.step == step && one && static_cast<std::size_t>(local_of_[pull.env.bucket]) == i) {
      answer_one_bucket(pull.peer, pull.env, step + 1, out);
      continue;  // answered: dropped from the pending list
    }
    if (pull.env.step == step && !one) {
      if (pull.parts_sent.empty()) pull.parts_sent.assign(nlocal(), false);
      if (!pull.parts_sent[i]) {
        pull.parts_sent[i] = true;
        send_part(pull.peer, pull.env, i, step + 1, out);
      }
    }
    if (kept != k) pending_pulls_[kept] = std::move(pull);
    ++kept;
  }
  pending_pulls_.resize(kept);
}

void Shard::apply_sync(std::uint64_t step, Pending& p, std::vector<OutMessage>* out) {
  for (std::size_t i = 0; i < nlocal(); ++i) apply_bucket(step, p, i, out);
  version_ = step + 1;
  may_jump_ = false;
  stats_.version = version_;
  maybe_checkpoint();
}

void Shard::tick(Clock::time_point now, std::vector<OutMessage>* out) {
  if (opt_.worker_timeout_s <= 0.0) return;
  bool changed = false;
  // Liveness by heartbeats: a worker that promised them and sent nothing for the timeout.
  for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
    const double silent_s = std::chrono::duration<double>(now - last_heard_[w]).count();
    if (live_[w] && heartbeats_[w] && !shut_down_[w] && silent_s > opt_.worker_timeout_s) {
      declare_dead(w, fmt::format("no request or heartbeat for {:.1f} s", silent_s), out);
      changed = true;
    }
  }
  // The step timeout (sync): workers missing from a step pending that long.
  if (opt_.mode == SyncMode::kSync && !pending_.empty()) {
    const auto& [step, p] = *pending_.begin();
    if (std::chrono::duration<double>(now - p.first_push).count() >= opt_.worker_timeout_s) {
      bool missing = false;
      for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
        if (live_[w] && p.done[w] < nlocal()) {
          declare_dead(w, fmt::format("missed step {} for {:.1f} s; continuing without it", step,
                                      opt_.worker_timeout_s),
                       out);
          missing = true;
        }
      }
      if (missing) ++stats_.timeout_completions;
      changed = changed || missing;
    }
  }
  if (!changed) return;
  if (opt_.mode == SyncMode::kSync) try_complete(out);
  after_version_change(out);  // SSP pulls may no longer wait for a dead worker
}

bool Shard::excuse_lost_pushes(const std::string& peer, const Envelope& e, std::vector<OutMessage>* out) {
  if (opt_.mode != SyncMode::kSync || !may_jump_ || !initialized_ || e.step == kLatestStep || e.step < version_) {
    return false;
  }
  // Workers pull step t only after their pushes of t were acknowledged. If this shard
  // lacks them, it was restarted from a checkpoint and lost them: excuse the worker
  // from step t (the step completes with the pushes that did arrive) instead of
  // waiting for pushes that will not come again.
  auto it = pending_.find(e.step);
  if (it == pending_.end() && pending_.size() < opt_.max_pending_steps) {
    it = pending_.emplace(e.step, new_pending(Clock::now())).first;
  }
  if (it == pending_.end() || it->second.done[e.worker] >= nlocal()) return false;
  spdlog::info("shard {}: worker {} pulls step {} without its pushes (lost by a restart at step {}); excused",
               opt_.shard_id, e.worker, e.step, version_);
  it->second.done[e.worker] = static_cast<std::uint32_t>(nlocal());
  std::fill(it->second.received[e.worker].begin(), it->second.received[e.worker].end(), true);
  try_complete(out);
  if (!pull_ready(e)) return false;
  answer_pull(peer, e, out);
  return true;
}

}  // namespace gradzip::comm
