// What the collective engines (comm/gloo_collective.cc, comm/nccl_collective.cc) share:
// options, the heartbeat and rendezvous check (comm/collective_health.h), per-kind
// counters, and the failure path that diagnoses the ranks and throws CollectiveError
// naming the one blamed. Internal to comm/.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "comm/collective.h"
#include "comm/collective_health.h"

namespace gradzip::comm {

class CollectiveEngine : public Collective {
 public:
  std::uint32_t rank() const override { return o_.rank; }
  std::uint32_t size() const override { return o_.size; }
  std::uint64_t completed() const override { return completed_.load(); }
  CollectiveCounters counters() const override;

 protected:
  /// Creates the store directory, starts the heartbeat and waits (timeout_s) until every
  /// rank's heartbeat is there; throws CollectiveError naming the ranks that did not come.
  explicit CollectiveEngine(const CollectiveOptions& o);

  /// Records the failure for the other ranks' diagnosis and throws it.
  [[noreturn]] void fail_setup(CommError::Kind kind, int blamed_rank, const std::string& what);

  /// Starts call `name`: throws after an earlier failure; false when there is nothing
  /// to exchange (one rank: the call counts as done).
  bool begin_call(const char* name);
  /// Counts a finished call.
  void end_call(CollectiveOpCounters CollectiveCounters::*kind, const CollectiveBytes& bytes,
                std::chrono::steady_clock::time_point started);
  /// A failed call: diagnoses the ranks (3 heartbeat periods), records and throws.
  [[noreturn]] void fail_call(const char* name, bool timed_out, const std::string& engine_text);

  CollectiveOptions o_;

 private:
  std::atomic<std::uint64_t> completed_{0}, entered_{0};
  std::unique_ptr<Heartbeat> heartbeat_;
  bool broken_ = false;
  mutable std::mutex counters_mu_;
  CollectiveCounters counters_;
};

}  // namespace gradzip::comm
