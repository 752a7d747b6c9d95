#include "trainer/bucket_schedule.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace gradzip::trainer {

BucketSchedule::BucketSchedule(const std::vector<comm::TensorInfo>& tensors, const comm::Layout& layout) {
  for (const auto& b : layout.buckets) bucket_offset_.push_back(b.offset);
  tensors_per_bucket_.assign(layout.buckets.size(), 0);
  std::uint64_t off = 0;
  for (const auto& t : tensors) {
    tensor_range_.emplace_back(off, off + t.numel);
    std::vector<std::uint32_t> ids;
    if (t.numel > 0) {
      if (off + t.numel > layout.total_numel) break;
      const auto [first, last] = buckets_in(off, off + t.numel);
      for (std::uint32_t b = last + 1; b-- > first;) {  // descending: the order backward completes them
        ids.push_back(b);
        ++tensors_per_bucket_[b];
      }
    }
    tensor_buckets_.push_back(std::move(ids));
    off += t.numel;
  }
  if (off != layout.total_numel || tensor_buckets_.size() != tensors.size()) {
    throw std::invalid_argument("bucket schedule: the tensors hold " + std::to_string(off) +
                                " elements, the layout " + std::to_string(layout.total_numel));
  }
  begin_step();
}

void BucketSchedule::begin_step() {
  std::lock_guard<std::mutex> lock(mu_);
  missing_ = tensors_per_bucket_;
  fired_.assign(bucket_offset_.size(), false);
  reported_.assign(tensor_buckets_.size(), false);
}

void BucketSchedule::tensor_ready(std::size_t t, std::vector<std::uint32_t>* fired) {
  std::lock_guard<std::mutex> lock(mu_);
  if (t >= tensor_buckets_.size()) throw std::logic_error("bucket schedule: tensor " + std::to_string(t) + " unknown");
  if (reported_[t]) {
    throw std::logic_error("bucket schedule: tensor " + std::to_string(t) + " reported twice in a step");
  }
  reported_[t] = true;
  for (std::uint32_t b : tensor_buckets_[t]) {
    if (--missing_[b] == 0 && !fired_[b]) {
      fired_[b] = true;
      fired->push_back(b);
    }
  }
}

std::vector<std::uint32_t> BucketSchedule::fire_remaining() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::uint32_t> out;
  for (std::size_t b = fired_.size(); b-- > 0;) {
    if (!fired_[b]) {
      fired_[b] = true;
      out.push_back(static_cast<std::uint32_t>(b));
    }
  }
  return out;
}

std::pair<std::uint32_t, std::uint32_t> BucketSchedule::buckets_in(std::uint64_t begin, std::uint64_t end) const {
  // The bucket holding element e is the last one whose offset is <= e.
  auto holder = [this](std::uint64_t e) {
    const auto it = std::upper_bound(bucket_offset_.begin(), bucket_offset_.end(), e);
    return static_cast<std::uint32_t>(it - bucket_offset_.begin() - 1);
  };
  return {holder(begin), holder(end - 1)};
}

}  // namespace gradzip::trainer
