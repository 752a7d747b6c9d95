#include "trainer/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "trainer/downlink_resync.h"

namespace gradzip::trainer {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

BucketPipeline::BucketPipeline(const comm::Layout& layout, BucketEncoder& encoder, comm::WorkerTransport& transport,
                               TaskPool& pool, PipelineOptions options, std::uint64_t applied_steps)
    : layout_(layout), encoder_(encoder), transport_(transport), pool_(pool), opt_(options),
      applied_(layout.buckets.size(), applied_steps) {
  counters_ = transport_.counters();
  if (opt_.compressed_downlink && opt_.resync_every > 0) dense_.resize(layout.total_numel);
  comm_ = std::thread([this] { comm_loop(); });
}

BucketPipeline::~BucketPipeline() {
  bool busy = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return encodes_in_flight_ == 0; });  // pool tasks hold `this`
    busy = pending_ || phase_ != Phase::kIdle;
    stop_ = true;
  }
  cv_.notify_all();
  if (busy) transport_.abort();  // a step in flight: unblock the communication thread
  comm_.join();
}

void BucketPipeline::throw_if_failed() const {
  if (error_) std::rethrow_exception(error_);
}

void BucketPipeline::fail(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = std::move(error);
  }
  cv_.notify_all();
}

void BucketPipeline::begin_step(std::uint64_t step, float* grads, float* params) {
  std::unique_lock<std::mutex> lock(mu_);
  // The previous step's pushes must be out: this step's encodes reuse their buffers.
  cv_.wait(lock, [this] { return error_ || (!pending_ && phase_ != Phase::kPushing); });
  throw_if_failed();
  step_ = step;
  grads_ = grads;
  params_ = params;
  backward_done_ = false;
  pending_ = true;
  lock.unlock();
  cv_.notify_all();
}

void BucketPipeline::bucket_ready(std::uint32_t b) {
  std::uint64_t step = 0;
  float* grads = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_ || stop_) return;
    ++encodes_in_flight_;
    step = step_;
    grads = grads_;
  }
  pool_.submit([this, b, step, grads] {
    const auto t0 = Clock::now();
    std::exception_ptr error;
    try {
      encoder_.encode(b, step, grads);
      // The next backward accumulates into zeroed gradients (instead of a pass over the
      // whole buffer before each step).
      const comm::Bucket& bucket = layout_.buckets[b];
      std::memset(grads + bucket.offset, 0, bucket.numel * sizeof(float));
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      seconds_.encode += seconds_since(t0);
      if (error && !error_) error_ = error;
      if (!error) encoded_.push_back(b);
      --encodes_in_flight_;
    }
    cv_.notify_all();
  });
}

void BucketPipeline::end_backward() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    backward_done_ = true;
  }
  cv_.notify_all();
}

void BucketPipeline::wait_params(std::uint32_t first, std::uint32_t last, std::uint64_t steps) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] {
    if (error_) return true;
    for (std::uint32_t b = first; b <= last; ++b) {
      if (applied_[b] < steps) return false;
    }
    return true;
  });
  throw_if_failed();
}

void BucketPipeline::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return error_ || (!pending_ && phase_ == Phase::kIdle); });
  throw_if_failed();
}

comm::TrafficCounters BucketPipeline::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

PipelineSeconds BucketPipeline::seconds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return seconds_;
}

double BucketPipeline::resync_max_abs_diff() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resync_diff_;
}

std::uint64_t BucketPipeline::resyncs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resyncs_;
}

void BucketPipeline::comm_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || error_ || pending_; });
    if (stop_ || error_) return;
    const std::uint64_t step = step_;
    pending_ = false;
    phase_ = Phase::kPushing;
    try {
      run_step(step, lock);
    } catch (...) {
      if (!lock.owns_lock()) lock.lock();  // run_step drops the lock around transport calls
      if (!error_) error_ = std::current_exception();
    }
    phase_ = Phase::kIdle;
    const bool failed = error_ != nullptr;
    lock.unlock();
    cv_.notify_all();
    if (failed) return;
    lock.lock();
  }
}

void BucketPipeline::run_step(std::uint64_t step, std::unique_lock<std::mutex>& lock) {
  // Pushes, in the order the buckets finish encoding (backward order, last layers first;
  // encode threads may finish them out of order). A transport that needs one order on
  // every rank (collectives) gets descending bucket ids: a bucket encoded early waits for
  // the ones before it, or two ranks would start different collectives and fail.
  const std::size_t n = layout_.buckets.size();
  const bool ordered = transport_.ordered_pushes();
  std::vector<comm::Handle> handles;
  handles.reserve(n);
  Clock::time_point first_push{};
  while (handles.size() < n) {
    const auto want = static_cast<std::uint32_t>(n - 1 - handles.size());
    const auto next = [&] { return ordered ? std::find(encoded_.begin(), encoded_.end(), want) : encoded_.begin(); };
    cv_.wait(lock, [&] { return stop_ || error_ || next() != encoded_.end(); });
    if (stop_ || error_) return;
    const auto it = next();
    const std::uint32_t b = *it;
    encoded_.erase(it);
    lock.unlock();
    if (handles.empty()) first_push = Clock::now();
    handles.push_back(transport_.push(step, b, encoder_.message(b), encoder_.message_bytes(b)));
    lock.lock();
  }
  lock.unlock();
  for (comm::Handle h : handles) transport_.wait(h);
  lock.lock();
  seconds_.push += seconds_since(first_push);
  // Pulls start once backward is over (parameters are not rewritten under it).
  cv_.wait(lock, [this] { return stop_ || error_ || backward_done_; });
  if (stop_ || error_) return;
  phase_ = Phase::kPulling;
  lock.unlock();
  cv_.notify_all();
  pull_all(step);
  const comm::TrafficCounters c = transport_.counters();
  lock.lock();
  counters_ = c;
}

void BucketPipeline::pull_all(std::uint64_t step) {
  const std::size_t n = layout_.buckets.size();
  const bool resync = opt_.compressed_downlink && opt_.resync_every > 0 && (step + 1) % opt_.resync_every == 0;
  // First layers first: the next forward reads bucket 0 first.
  std::vector<comm::Handle> pulls(n), dense(resync ? n : 0);
  for (std::uint32_t b = 0; b < n; ++b) pulls[b] = transport_.pull_bucket(step, b, params_, false);
  for (std::uint32_t b = 0; resync && b < n; ++b) dense[b] = transport_.pull_bucket(step, b, dense_.data(), true);
  double diff = 0;
  for (std::uint32_t b = 0; b < n; ++b) {
    transport_.wait(pulls[b]);
    if (resync) {
      transport_.wait(dense[b]);
      const comm::Bucket& bucket = layout_.buckets[b];
      diff = std::max(diff, replace_replica(dense_.data() + bucket.offset, params_ + bucket.offset, bucket.numel));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      applied_[b] = step + 1;
    }
    cv_.notify_all();
  }
  if (resync) {
    std::lock_guard<std::mutex> lock(mu_);
    resync_diff_ = std::max(resync_diff_, diff);
    ++resyncs_;
  }
}

}  // namespace gradzip::trainer
