// Shard, async and SSP modes: each push is applied on arrival (Dean et al. 2012,
// Downpour SGD); staleness = updates of the bucket since the pushing worker last pulled
// it. SSP (Ho et al. 2013) differs only in when a pull is answered (ssp_ready).
#include <algorithm>

#include "comm/shard.h"
#include "quant/codecs/sign.h"

namespace gradzip::comm {

Shard::PushOutcome Shard::apply_async(const std::string& peer, const Envelope& e, std::size_t local,
                                      const FrameView& msg, std::vector<OutMessage>* out) {
  const Bucket& b = local_bucket(local);
  scratch_.resize(b.numel);
  const quant::Status st = push_codec(b).decode(msg.data, msg.size, scratch_.data(), b.numel);
  if (!st.ok()) {
    refuse_message(peer, e, local, st, out);
    return PushOutcome::kRefused;
  }
  const auto t0 = Clock::now();
  if (opt_.aggregation == Aggregation::kMajorityVote) quant::majority_vote(scratch_.data(), b.numel);
  last_staleness_ = bucket_updates_[local] - seen_updates_[e.worker][local];
  record_staleness(last_staleness_);
  sgd_step(opt_.optimizer, e.step, params_.data() + b.shard_offset, scratch_.data(), momentum_.data() + b.shard_offset,
           b.numel);
  ++bucket_updates_[local];
  add_apply_time(t0);
  // The worker's clock advances once it pushed every bucket of this shard for the step.
  auto& progress = async_progress_[e.worker];
  if (++progress[e.step] == nlocal()) {
    progress.erase(e.step);
    clock_[e.worker] = std::max(clock_[e.worker], e.step + 1);
    const std::uint64_t before = version_;
    version_ = std::max(version_, e.step + 1);
    if (version_ != before) maybe_checkpoint();
  }
  return PushOutcome::kApplied;
}

bool Shard::ssp_ready(std::uint64_t step) const {
  std::uint64_t slowest = ~std::uint64_t{0};
  for (std::uint32_t w = 0; w < opt_.num_workers; ++w) {
    if (live_[w]) slowest = std::min(slowest, clock_[w]);
  }
  return slowest == ~std::uint64_t{0} || slowest + opt_.ssp_slack >= step + 1;
}

}  // namespace gradzip::comm
