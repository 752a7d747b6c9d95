// Buckets encoded with error feedback on a small thread pool, so every core works on the
// compression of a step (quant/feedback.h does one bucket on one thread).
//
// Determinism: a bucket's message and state depend only on that bucket's gradient, state,
// seed context and codec, never on which thread ran it or in which order, so the output
// of encode() is the same for any number of threads (tests/quant/encode_pool_test.cc).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "quant/codec.h"
#include "quant/memory.h"
#include "quant/status.h"

namespace gradzip::quant {

/// One bucket of an EncodePool::encode call. Inputs are read, outputs written by the
/// thread that takes the job; buckets must not share a state, an output or overlap.
struct BucketJob {
  const float* grad = nullptr;    ///< in: n fp32 gradient elements
  std::size_t n = 0;              ///< in: elements
  SeedContext ctx;                ///< in: seed, step, worker, bucket
  MemoryState* state = nullptr;   ///< in/out: the bucket's error-feedback state
  std::uint8_t* out = nullptr;    ///< out: the message
  std::size_t out_capacity = 0;   ///< in: bytes at out (>= codec.max_encoded_bytes(n))
  std::size_t out_bytes = 0;      ///< out: message length
  Status status;                  ///< out: this bucket's result
};

/// A fixed set of threads (threads - 1 helpers plus the calling thread). RAII: the
/// destructor stops and joins the helpers. encode() is not reentrant (one call at a time).
class EncodePool {
 public:
  /// threads >= 1 (0 is taken as 1); 1 runs every job on the caller's thread.
  explicit EncodePool(unsigned threads);
  ~EncodePool();
  EncodePool(const EncodePool&) = delete;
  EncodePool& operator=(const EncodePool&) = delete;

  unsigned threads() const { return static_cast<unsigned>(helpers_.size()) + 1; }

  /// Runs memory.encode_step(codec, ...) for jobs[0, count), blocking until all are done.
  /// Every job's status is set; returns the first failed one in job order, else Ok.
  Status encode(const Memory& memory, const Codec& codec, BucketJob* jobs, std::size_t count);

 private:
  void helper_loop();
  void run_jobs();

  std::vector<std::thread> helpers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  std::uint64_t generation_ = 0;  // bumped per encode() call (guarded by mu_)
  unsigned busy_ = 0;             // helpers still working on this generation (mu_)
  bool stop_ = false;             // (mu_)
  // The current call, set before a generation starts.
  const Memory* memory_ = nullptr;
  const Codec* codec_ = nullptr;
  BucketJob* jobs_ = nullptr;
  std::size_t count_ = 0;
  std::atomic<std::size_t> next_{0};
};

}  // namespace gradzip::quant
