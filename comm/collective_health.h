// Liveness of the ranks of a collective, through files in the store directory they
// share (comm/collective.h): each rank's heartbeat thread rewrites
// <dir>/heartbeat-<rank> every period with a beat counter and the number of collective
// calls it entered. When a collective fails (timeout, closed connection), the rank
// reads every heartbeat twice a few periods apart and names the culprit: among the ranks
// that recorded no failure of their own, one whose beat stopped (it died or is frozen),
// else one that entered fewer calls (it never entered the failed one); else the rank the
// first failure record blames (a rank that failed, recorded whom it blamed, and exited
// is not the culprit of the silence that follows).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace gradzip::comm {

/// RAII heartbeat thread of one rank. `entered` is called from the thread (must be
/// thread-safe, e.g. an atomic load).
class Heartbeat {
 public:
  Heartbeat(std::string dir, std::uint32_t rank, double period_s, std::function<std::uint64_t()> entered);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

 private:
  void write_once();
  std::string dir_;
  std::uint32_t rank_;
  double period_s_;
  std::function<std::uint64_t()> entered_;
  std::uint64_t beat_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

/// What a failed rank concludes about the others.
struct RankDiagnosis {
  int rank = -1;     ///< the rank blamed, -1 when none stands out
  std::string text;  ///< e.g. "rank 2 stopped responding (no heartbeat for 1.5 s: it died or is frozen)"
};

/// Reads the heartbeats of ranks [0, size) except `self` now and again after
/// `observe_s`; `self_entered` is the number of calls this rank entered (the failed one included).
RankDiagnosis diagnose_ranks(const std::string& dir, std::uint32_t size, std::uint32_t self,
                             std::uint64_t self_entered, double observe_s);

/// True once every rank [0, size) wrote a heartbeat; else false after timeout_s with
/// *missing naming the absent ranks ("2, 3").
bool wait_for_ranks(const std::string& dir, std::uint32_t size, double timeout_s, std::string* missing);

/// True when `rank`'s heartbeat in `dir` changed within `observe_s` (read now and again
/// after observe_s): its writer is alive.
bool heartbeat_advances(const std::string& dir, std::uint32_t rank, double observe_s);

/// Records this rank's failure (<dir>/failed-<rank>) and the rank it blamed (-1: none)
/// for the others' diagnosis: a rank that failed and exited is not blamed by the others
/// for its silence when its record names the rank that failed first.
void record_rank_failure(const std::string& dir, std::uint32_t rank, int blamed_rank, const std::string& what);

}  // namespace gradzip::comm
