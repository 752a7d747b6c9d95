// Fault injection for tests: a worker's requests and the replies it receives pass
// through a FaultyChannel that drops, duplicates, reorders (holds several messages back,
// to any shard, and releases them newest first after a later one) or delays them
// (releases after delay_s), each with its own probability, and counts what it did.
// Off by default; a channel whose spec is all zero passes messages straight through.
//
// Thread-compatible: one thread (the transport's) drives a channel.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <utility>
#include <vector>

namespace gradzip::comm {

/// Probabilities (each in [0, 1], drawn independently per message) of one direction.
struct FaultSpec {
  double drop_probability = 0.0;       ///< never delivered (the client's retry recovers)
  double duplicate_probability = 0.0;  ///< delivered twice
  double reorder_probability = 0.0;    ///< held back, delivered after a later message
  double delay_probability = 0.0;      ///< delivered delay_s later
  double delay_s = 0.05;
  std::uint32_t reorder_depth = 3;     ///< most messages held back at once
  bool any() const {
    return drop_probability > 0 || duplicate_probability > 0 || reorder_probability > 0 || delay_probability > 0;
  }
};

/// Faults on a worker's requests (to the shards) and on the replies it receives.
struct FaultInjection {
  FaultSpec requests;
  FaultSpec replies;
  std::uint64_t seed = 1;
};

/// What a channel did, by kind.
struct FaultCounts {
  std::uint64_t passed = 0;  ///< messages given to the channel
  std::uint64_t dropped = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t reordered = 0;
  std::uint64_t delayed = 0;
};

template <typename Message>
class FaultyChannel {
 public:
  using Clock = std::chrono::steady_clock;
  using Deliver = std::function<void(Message&)>;

  FaultyChannel(FaultSpec spec, std::uint64_t seed) : spec_(spec), rng_(seed) {}

  bool active() const { return spec_.any(); }
  const FaultCounts& counts() const { return counts_; }

  /// Delivers `m` (now, twice, later, or never), then releases the messages held back
  /// for reordering, newest first.
  void pass(Message m, Clock::time_point now, const Deliver& deliver) {
    ++counts_.passed;
    if (draw(spec_.drop_probability)) {
      ++counts_.dropped;
      return;
    }
    if (held_.size() < spec_.reorder_depth && draw(spec_.reorder_probability)) {
      ++counts_.reordered;
      held_.push_back(std::move(m));
      return;
    }
    if (draw(spec_.delay_probability)) {
      ++counts_.delayed;
      const auto delay = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(spec_.delay_s));
      delayed_.emplace_back(now + delay, std::move(m));
      return;
    }
    const bool twice = draw(spec_.duplicate_probability);
    if (twice) {
      ++counts_.duplicated;
      Message copy = m;
      deliver(copy);
    }
    deliver(m);
    release_held(deliver);
  }
  /// Delivers the delayed messages whose time has come.
  void release_due(Clock::time_point now, const Deliver& deliver) {
    for (std::size_t i = 0; i < delayed_.size();) {
      if (delayed_[i].first > now) {
        ++i;
        continue;
      }
      Message m = std::move(delayed_[i].second);
      delayed_.erase(delayed_.begin() + static_cast<std::ptrdiff_t>(i));
      deliver(m);
    }
  }
  /// Delivers the messages held back for reordering, newest first.
  void release_held(const Deliver& deliver) {
    while (!held_.empty()) {
      Message m = std::move(held_.back());
      held_.pop_back();
      deliver(m);
    }
  }

 private:
  bool draw(double p) { return p > 0 && std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < p; }

  FaultSpec spec_;
  std::mt19937_64 rng_;
  FaultCounts counts_;
  std::vector<Message> held_;
  std::vector<std::pair<Clock::time_point, Message>> delayed_;
};

}  // namespace gradzip::comm
