#include "quant/encode_pool.h"

namespace gradzip::quant {

EncodePool::EncodePool(unsigned threads) {
  for (unsigned t = 1; t < threads; ++t) helpers_.emplace_back([this] { helper_loop(); });
}

EncodePool::~EncodePool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : helpers_) t.join();
}

void EncodePool::run_jobs() {
  // Jobs are taken in index order by whichever thread is free (largest-first ordering is
  // the caller's choice); each job is independent, so the order does not change results.
  for (std::size_t i = next_.fetch_add(1); i < count_; i = next_.fetch_add(1)) {
    BucketJob& j = jobs_[i];
    j.status = memory_->encode_step(*codec_, j.grad, j.n, j.ctx, j.state, j.out, j.out_capacity, &j.out_bytes);
  }
}

void EncodePool::helper_loop() {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    run_jobs();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--busy_ == 0) done_cv_.notify_one();
    }
  }
}

Status EncodePool::encode(const Memory& memory, const Codec& codec, BucketJob* jobs, std::size_t count) {
  if (jobs == nullptr && count != 0) return Status(Errc::kInvalidArgument, "null job list");
  for (std::size_t i = 0; i < count; ++i) {
    if (jobs[i].state == nullptr) return Status(Errc::kInvalidArgument, "bucket job without a memory state");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    memory_ = &memory;
    codec_ = &codec;
    jobs_ = jobs;
    count_ = count;
    next_.store(0);
    busy_ = static_cast<unsigned>(helpers_.size());
    ++generation_;
  }
  start_cv_.notify_all();
  run_jobs();
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return busy_ == 0; });
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (!jobs[i].status.ok()) return jobs[i].status;
  }
  return Status::Ok();
}

}  // namespace gradzip::quant
