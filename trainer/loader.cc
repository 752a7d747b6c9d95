#include "trainer/loader.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "trainer/errors.h"

namespace gradzip::trainer {
namespace {
/// SplitMix64 (Steele et al. 2014) to derive well-mixed seeds from (seed, epoch, sample).
std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace

Loader::Loader(const Dataset& data, const ChannelStats& norm, const RgbPca* pca, const LoaderOptions& options)
    : data_(data), norm_(norm), pca_(pca), opt_(options) {
  if (opt_.batch_size == 0) throw ConfigError("loader: batch size must be positive");
  if (opt_.workers == 0 || opt_.worker >= opt_.workers) throw ConfigError("loader: worker rank out of range");
  if (static_cast<int>(norm_.mean.size()) != data.channels || static_cast<int>(norm_.stddev.size()) != data.channels) {
    throw ConfigError("loader: normalisation statistics do not match the channel count");
  }
  opt_.threads = std::max(1, opt_.threads);
  opt_.prefetch = std::max(1, opt_.prefetch);
  ready_.resize(static_cast<std::size_t>(opt_.prefetch));
  for (int t = 0; t < opt_.threads; ++t) threads_.emplace_back([this, t] { producer(t); });
}

Loader::~Loader() { stop_threads(); }

void Loader::stop_threads() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

std::vector<std::size_t> Loader::shard_indices(int epoch) const {
  std::vector<std::size_t> perm(data_.size());
  std::iota(perm.begin(), perm.end(), std::size_t{0});
  if (opt_.shuffle) {
    std::mt19937_64 rng(mix(opt_.seed ^ mix(static_cast<std::uint64_t>(epoch) + 0x51ED)));
    std::shuffle(perm.begin(), perm.end(), rng);
  }
  const std::size_t n = perm.size();
  const std::size_t lo = n * opt_.worker / opt_.workers, hi = n * (opt_.worker + 1) / opt_.workers;
  return std::vector<std::size_t>(perm.begin() + static_cast<std::ptrdiff_t>(lo),
                                  perm.begin() + static_cast<std::ptrdiff_t>(hi));
}

std::size_t Loader::batches_per_epoch() const {
  const std::size_t n = data_.size() * (opt_.worker + 1) / opt_.workers - data_.size() * opt_.worker / opt_.workers;
  return opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
}

void Loader::start_epoch(int epoch) {
  std::vector<std::size_t> order = shard_indices(epoch);
  {
    std::lock_guard<std::mutex> lock(mu_);
    epoch_ = epoch;
    ++generation_;
    order_ = std::move(order);
    nbatches_ = opt_.drop_last ? order_.size() / opt_.batch_size : (order_.size() + opt_.batch_size - 1) / opt_.batch_size;
    next_claim_ = 0;
    next_give_ = 0;
    for (auto& slot : ready_) slot.reset();
  }
  cv_.notify_all();
}

void Loader::producer(int /*thread_id*/) {
  std::vector<float> scratch;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Claim the next batch once it fits in the prefetch window.
    cv_.wait(lock, [&] {
      return stop_ || (next_claim_ < nbatches_ && next_claim_ < next_give_ + ready_.size());
    });
    if (stop_) return;
    const std::size_t batch = next_claim_++;
    const std::uint64_t gen = generation_;
    // order_ and epoch_ only change in start_epoch under the lock; a stale build is
    // detected by the generation check below and discarded. Building reads order_
    // outside the lock, so copy what we need first.
    auto out = std::make_unique<Batch>();
    {
      const std::vector<std::size_t> order_snapshot(
          order_.begin() + static_cast<std::ptrdiff_t>(batch * opt_.batch_size),
          order_.begin() + static_cast<std::ptrdiff_t>(std::min(order_.size(), (batch + 1) * opt_.batch_size)));
      const int epoch = epoch_;
      lock.unlock();
      const std::size_t img = data_.image_bytes();
      out->size = order_snapshot.size();
      out->index = batch;
      out->images.resize(out->size * img);
      out->labels.resize(out->size);
      for (std::size_t i = 0; i < out->size; ++i) {
        const std::size_t s = order_snapshot[i];
        std::mt19937_64 rng(mix(opt_.seed ^ mix((static_cast<std::uint64_t>(epoch) << 40) ^ s)));
        augment_image(data_.image(s), out->images.data() + i * img, data_.channels, data_.height, data_.width,
                      opt_.augment, norm_, pca_, rng, &scratch);
        out->labels[i] = data_.labels[s];
      }
      lock.lock();
    }
    if (gen != generation_) continue;  // epoch restarted meanwhile
    ready_[batch % ready_.size()] = std::move(out);
    cv_.notify_all();
  }
}

bool Loader::next(Batch* out) {
  std::unique_lock<std::mutex> lock(mu_);
  if (next_give_ >= nbatches_) return false;
  auto& slot = ready_[next_give_ % ready_.size()];
  cv_.wait(lock, [&] { return slot != nullptr && slot->index == next_give_; });
  *out = std::move(*slot);
  slot.reset();
  ++next_give_;
  cv_.notify_all();
  return true;
}

}  // namespace gradzip::trainer
