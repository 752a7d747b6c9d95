// Shard, PowerSGD rounds (kReduce; semantics at the top of comm/shard.h): gathers one
// round from every worker, answers each with the sum, and after round 2 rebuilds the mean
// gradient and applies it as a sync step.
//
// Why the shard rebuilds (rather than only summing and letting the workers step their own
// optimizers): the shard keeps the one copy of the parameters, so pulls, compressed
// checkpoints and a restart work as in every other sync run, and the replicas cannot
// drift from the shard. The rebuild uses the workers' own functions on the same reduced
// bytes (PowerSgdTensors::rebuild), so the shard's gradient is bitwise the one every
// worker's finish() computes for its error feedback.
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "comm/shard.h"
#include "quant/spec.h"

namespace gradzip::comm {

void Shard::setup_reduce() {
  if (opt_.powersgd_spec.empty()) return;
  const std::string why =
      opt_.mode != SyncMode::kSync                   ? std::string("needs sync mode, not ") + sync_mode_name(opt_.mode)
      : layout_.options.num_shards != 1              ? fmt::format("needs one shard, not {}", layout_.options.num_shards)
      : opt_.aggregation != Aggregation::kMean       ? std::string("sums gradients: majority vote does not apply")
      : downlink_                                    ? std::string("needs a dense downlink")
                                                     : std::string();
  if (!why.empty()) throw std::invalid_argument("shard: PowerSGD over the parameter server " + why);
  try {
    reduce_.power = std::make_unique<PowerSgdTensors>(sig_, opt_.powersgd_spec, 0, /*with_state=*/false);
  } catch (const quant::SpecError& e) {
    throw std::invalid_argument(std::string("shard: ") + e.what());
  } catch (const CommError& e) {
    throw std::invalid_argument(std::string("shard: ") + e.what());
  }
  reduce_.received.assign(opt_.num_workers, {});
  reduce_.has.assign(opt_.num_workers, false);
}

std::uint64_t Shard::max_reduce_bytes() const {
  if (!reduce_.power) return 0;
  const PowerSgdTensors& t = *reduce_.power;
  return identity_->max_encoded_bytes(std::max(t.p_floats(), t.q_floats() + t.dense_floats()));
}

void Shard::on_reduce(const std::string& peer, const Envelope& e, const FrameView* body, std::size_t n,
                      Clock::time_point now, std::vector<OutMessage>* out) {
  if (!reduce_.power) {
    refuse(peer, e, ProtoErr::kNotReducing,
           "this shard runs no PowerSGD (started without --compressor powersgd:... under --aggregation ps)", out);
    return;
  }
  if (n != 1) {
    refuse(peer, e, ProtoErr::kMalformed, fmt::format("reduce has {} body frames, expected 1", n), out);
    return;
  }
  if (e.bucket != 1 && e.bucket != 2) {
    refuse(peer, e, ProtoErr::kMalformed, fmt::format("reduce round {}, expected 1 or 2", e.bucket), out);
    return;
  }
  if (!initialized_) {
    refuse(peer, e, ProtoErr::kUninitialized, "no parameters yet", out);  // the client retries
    return;
  }
  const std::size_t r = e.bucket - 1;
  if (reduce_.done_reply[r] && reduce_.done_step[r] == e.step &&
      (e.step + 1 == version_ || (e.step == version_ && r == 0 && reduce_.round == 2))) {
    reply(peer, e.worker, ack(e), {reduce_.done_reply[r]}, out);  // a retry of a completed round
    return;
  }
  if (e.step != version_ || e.bucket != reduce_.round) {
    refuse(peer, e, ProtoErr::kNotReducing,
           fmt::format("round {} of step {}; this shard gathers round {} of step {}", e.bucket, e.step, reduce_.round,
                       version_),
           out);
    return;
  }
  if (reduce_.has[e.worker]) return;  // a retry while the round is gathered: answered with the others
  const PowerSgdTensors& t = *reduce_.power;
  const std::size_t numel = r == 0 ? t.p_floats() : t.q_floats() + t.dense_floats();
  std::vector<float>& into = reduce_.received[e.worker];
  into.resize(numel);
  const quant::Status st = identity_->decode(body[0].data, body[0].size, into.data(), numel);
  if (!st.ok()) {
    ProtoErr err = ProtoErr::kBadMessage;
    if (st.code() == quant::Errc::kCodecMismatch) err = ProtoErr::kCodecMismatch;
    if (st.code() == quant::Errc::kSizeMismatch) err = ProtoErr::kSizeMismatch;
    refuse(peer, e, err, fmt::format("reduce round {} ({} floats expected): {}", e.bucket, numel, st.to_string()), out);
    return;
  }
  reduce_.has[e.worker] = true;
  reduce_.waiting.push_back(PendingPull{peer, e, {}});
  if (std::all_of(reduce_.has.begin(), reduce_.has.end(), [](bool b) { return b; })) complete_reduce(now, out);
}

void Shard::complete_reduce(Clock::time_point now, std::vector<OutMessage>* out) {
  const auto t0 = Clock::now();
  PowerSgdTensors& power = *reduce_.power;
  const std::uint32_t round = reduce_.round;
  // The sum in worker-rank order: the same bytes whatever order the requests came in.
  std::vector<float>& sum = reduce_.sum;
  sum = reduce_.received[0];
  for (std::uint32_t w = 1; w < opt_.num_workers; ++w) {
    const std::vector<float>& x = reduce_.received[w];
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += x[i];
  }
  const std::size_t reply_floats = round == 1 ? power.p_floats() : power.q_floats();
  std::vector<std::uint8_t> msg = identity_->encode(sum.data(), reply_floats, quant::SeedContext{});
  const SharedBytes body = share(std::move(msg));
  const std::uint64_t step = version_;
  if (round == 1) {
    reduce_.p_sum = sum;
    reduce_.round = 2;
  } else {
    // The mean gradient, exactly as the workers' PowerSgdTensors and the collectives'
    // allreduce path compute it: q and the dense values summed, times 1 / W.
    const float inv = 1.0f / static_cast<float>(opt_.num_workers);
    for (std::size_t i = 0; i < power.q_floats(); ++i) sum[i] *= inv;
    Pending p = new_pending(now);
    const quant::Status st = power.rebuild(reduce_.p_sum.data(), sum.data(), p.acc.data());
    power.scatter_dense(sum.data() + power.q_floats(), opt_.num_workers > 1 ? inv : 1.0f, p.acc.data());
    if (st.ok()) {
      std::fill(p.contributors.begin(), p.contributors.end(), 1u);  // acc holds the mean already
      apply_sync(step, p, out);
    } else {  // the workers' set_reduced_p/q fail on the same sums and stop with that error
      spdlog::error("shard {}: PowerSGD step {} not applied: {}", opt_.shard_id, step, st.to_string());
    }
    if (acc_pool_.size() < 2) acc_pool_.push_back(std::move(p.acc));
    reduce_.round = 1;
  }
  reduce_.done_step[round - 1] = step;
  reduce_.done_reply[round - 1] = body;
  for (const PendingPull& w : reduce_.waiting) {
    Envelope a = ack(w.env);
    reply(w.peer, w.env.worker, a, {body}, out);
  }
  reduce_.waiting.clear();
  std::fill(reduce_.has.begin(), reduce_.has.end(), false);
  add_apply_time(t0);
  if (round == 2) after_version_change(out);
}

}  // namespace gradzip::comm
