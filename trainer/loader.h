// Multithreaded prefetching data loader (no torch): decode + augment + batch on a pool
// of threads, `prefetch` batches ahead of the consumer.
//
// Sharding: each epoch the indices [0, N) are permuted with a generator seeded by
// (seed, epoch); worker w of W takes the contiguous slice [w*N/W, (w+1)*N/W) of the
// permutation, so the workers' shards are disjoint, cover the data set, and change
// every epoch (Goyal et al. 2017, sec. 2.3: shuffle once per epoch, then partition).
// Augmentation randomness is keyed by (seed, epoch, sample index), so a batch is the
// same whichever thread built it: runs with equal seeds are repeatable.
//
// Thread-safety: one consumer thread calls start_epoch()/next(); producer threads are
// internal and joined by the destructor (RAII).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "trainer/augment.h"
#include "trainer/dataset.h"

namespace gradzip::trainer {

/// One mini-batch: images as float N x C x H x W (normalised), labels as int64.
struct Batch {
  std::vector<float> images;
  std::vector<std::int64_t> labels;
  std::size_t size = 0;   ///< images in this batch (<= batch_size; the last may be short)
  std::size_t index = 0;  ///< batch number within the epoch
};

struct LoaderOptions {
  std::size_t batch_size = 64;
  int threads = 2;            ///< producer threads (>= 1)
  int prefetch = 4;           ///< batches built ahead of the consumer (>= 1)
  bool shuffle = true;        ///< false: natural order (evaluation)
  bool drop_last = false;     ///< drop a short final batch
  std::uint64_t seed = 1;
  std::uint32_t worker = 0;   ///< this worker's rank
  std::uint32_t workers = 1;  ///< number of workers sharing the data set
  AugmentOptions augment;     ///< all off for evaluation
};

class Loader {
 public:
  /// `data` must outlive the loader. `norm` normalises channels; `pca` (may be null) is
  /// used for PCA jitter on RGB data.
  Loader(const Dataset& data, const ChannelStats& norm, const RgbPca* pca, const LoaderOptions& options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// Begins epoch `epoch` (cancels what is left of the previous one).
  void start_epoch(int epoch);
  /// Moves the next batch of the epoch into *out; false when the epoch is exhausted.
  bool next(Batch* out);
  /// Batches per epoch for this worker's shard.
  std::size_t batches_per_epoch() const;
  /// The sample indices of this worker's shard in epoch `epoch` (in batch order).
  std::vector<std::size_t> shard_indices(int epoch) const;

 private:
  void producer(int thread_id);
  void stop_threads();

  const Dataset& data_;
  ChannelStats norm_;
  const RgbPca* pca_;
  LoaderOptions opt_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
  int epoch_ = -1;
  std::uint64_t generation_ = 0;   ///< bumped by start_epoch; producers drop stale work
  std::vector<std::size_t> order_; ///< this epoch's shard
  std::size_t nbatches_ = 0;
  std::size_t next_claim_ = 0;     ///< next batch a producer may build
  std::size_t next_give_ = 0;      ///< next batch the consumer receives
  std::vector<std::unique_ptr<Batch>> ready_;  ///< slot batch % prefetch
};

}  // namespace gradzip::trainer
