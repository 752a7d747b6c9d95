// PowerSgdPsTransport (comm/powersgd_ps_transport.h): the worker's two round trips of a
// PowerSGD step over the parameter server.
#include "comm/powersgd_ps_transport.h"

#include <fmt/format.h>

#include "quant/registry.h"

namespace gradzip::comm {
namespace {

constexpr Handle kOwnHandle = Handle{1} << 63;  // handles of this transport; the rest are inner's

[[noreturn]] void fail(CommError::Kind kind, const std::string& why) {
  throw CommError(kind, "PowerSGD over the parameter server: " + why);
}

}  // namespace

PowerSgdPsTransport::PowerSgdPsTransport(WorkerTransport& inner, RequestClient& client, std::string codec_spec,
                                         std::uint64_t seed, std::uint32_t workers)
    : inner_(inner), client_(client), spec_(std::move(codec_spec)), seed_(seed), workers_(workers) {
  if (workers_ == 0) fail(CommError::Kind::kInvalidArgument, "0 workers");
  identity_ = quant::make_codec("identity");
}

void PowerSgdPsTransport::connect(const ModelSignature& signature, std::uint32_t worker_rank, float* params) {
  power_ = std::make_unique<PowerSgdTensors>(signature, spec_, seed_, /*with_state=*/true);
  inner_.connect(signature, worker_rank, params);
  step_grad_.assign(signature.total_numel(), 0.0f);
  seen_.assign(client_.layout().buckets.size(), false);
  seen_count_ = 0;
}

Handle PowerSgdPsTransport::finished(std::exception_ptr failure) {
  const Handle h = kOwnHandle | ++next_handle_;
  done_[h] = std::move(failure);
  return h;
}

Handle PowerSgdPsTransport::push(std::uint64_t step, std::uint32_t bucket, const std::uint8_t* msg,
                                 std::size_t bytes) {
  try {
    if (!power_) fail(CommError::Kind::kInvalidArgument, "push before connect");
    const Layout& layout = client_.layout();
    if (bucket >= layout.buckets.size()) {
      fail(CommError::Kind::kInvalidArgument, fmt::format("bucket {} of {}", bucket, layout.buckets.size()));
    }
    if (seen_count_ == 0) gathering_step_ = step;
    if (step != gathering_step_ || seen_[bucket]) {
      fail(CommError::Kind::kInvalidArgument, fmt::format("push of bucket {} at step {} while step {} is gathered",
                                                          bucket, step, gathering_step_));
    }
    const Bucket& b = layout.buckets[bucket];
    const quant::Status st = identity_->decode(msg, bytes, step_grad_.data() + b.offset, b.numel);
    if (!st.ok()) {
      fail(CommError::Kind::kInvalidArgument,
           fmt::format("bucket {}: {} (the worker must push identity messages)", bucket, st.to_string()));
    }
    seen_[bucket] = true;
    if (++seen_count_ == seen_.size()) {
      seen_.assign(seen_.size(), false);
      seen_count_ = 0;
      run_step(step);
    }
  } catch (...) {
    return finished(std::current_exception());
  }
  return finished(nullptr);
}

void PowerSgdPsTransport::round_trip(std::uint64_t step, std::uint32_t round, const float* values, std::size_t n,
                                     std::size_t want, std::vector<float>* sum) {
  auto msg = std::make_shared<std::vector<std::uint8_t>>(identity_->encode(values, n, quant::SeedContext{}));
  client_.wait(client_.reduce(step, round, std::move(msg), &reply_));
  sum->resize(want);
  const quant::Status st = identity_->decode(reply_.data(), reply_.size(), sum->data(), want);
  if (!st.ok()) fail(CommError::Kind::kProtocol, fmt::format("reply to round {} of step {}: {}", round, step, st.to_string()));
}

void PowerSgdPsTransport::run_step(std::uint64_t step) {
  PowerSgdTensors& power = *power_;
  send_.assign(power.p_floats(), 0.0f);
  power.compute_p(step_grad_.data(), send_.data(), step);
  round_trip(step, 1, send_.data(), send_.size(), power.p_floats(), &sum_);
  power.set_reduced_p(sum_.data(), step);
  send_.assign(power.q_floats() + power.dense_floats(), 0.0f);
  power.compute_q(send_.data(), step);
  power.gather_dense(step_grad_.data(), send_.data() + power.q_floats());
  round_trip(step, 2, send_.data(), send_.size(), power.q_floats(), &sum_);
  for (float& v : sum_) v *= 1.0f / static_cast<float>(workers_);  // the mean, as the shard's
  power.finish(sum_.data(), step_grad_.data(), step);  // the shard applied this P Q^T; here: e and Q
}

void PowerSgdPsTransport::wait(Handle handle) {
  if ((handle & kOwnHandle) == 0) {
    inner_.wait(handle);
    return;
  }
  const auto it = done_.find(handle);
  if (it == done_.end()) fail(CommError::Kind::kInvalidArgument, fmt::format("unknown handle {}", handle));
  const std::exception_ptr failure = it->second;
  done_.erase(it);
  if (failure) std::rethrow_exception(failure);
}

std::vector<std::uint8_t> PowerSgdPsTransport::save_state() {
  if (!power_) fail(CommError::Kind::kInvalidArgument, "save_state before connect");
  if (seen_count_ != 0) fail(CommError::Kind::kInvalidArgument, "save_state in the middle of a step");
  std::vector<std::uint8_t> image;
  power_->save(&image);
  return image;
}

void PowerSgdPsTransport::restore_state(const std::vector<std::uint8_t>& image) {
  if (!power_) fail(CommError::Kind::kInvalidArgument, "restore_state before connect");
  if (image.empty()) fail(CommError::Kind::kInvalidArgument, "the checkpoint holds no PowerSGD state");
  power_->restore(image.data(), image.size());
}

}  // namespace gradzip::comm
