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
  ~CollectiveEngine() override;

  /// The one-line error of an exception `what` that escaped a thread of this engine's
  /// library (Gloo's I/O loop): diagnoses the ranks and records the failure, as a failed
  /// call does. Called by the terminate handler (comm/collective_terminate.cc).
  std::string escaped_error(const std::string& what);

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

/// While registered, a std::terminate with an exception in flight ends the process with
/// status 1 and engine->escaped_error's line on stderr instead of an abort
/// (comm/collective_terminate.cc). The engine constructor and destructor call these.
void register_engine_for_terminate(CollectiveEngine* engine);
void unregister_engine_for_terminate(CollectiveEngine* engine);

}  // namespace gradzip::comm
