// CollectiveEngine: the state and failure path the engines share (comm/collective_engine.h).
#include "comm/collective_engine.h"

#include <filesystem>

#include <fmt/format.h>

namespace gradzip::comm {

CollectiveEngine::CollectiveEngine(const CollectiveOptions& o) : o_(o) {
  std::error_code ec;
  std::filesystem::create_directories(o.store_dir, ec);
  if (ec) fail_setup(CommError::Kind::kIo, -1, "cannot create the store directory " + o.store_dir + ": " + ec.message());
  heartbeat_ = std::make_unique<Heartbeat>(o.store_dir, o.rank, o.heartbeat_s, [this] { return entered_.load(); });
  std::string missing;
  if (!wait_for_ranks(o.store_dir, o.size, o.timeout_s, &missing)) {
    fail_setup(CommError::Kind::kTimeout, std::stoi(missing.substr(0, missing.find(','))),
               fmt::format("collective rendezvous in {}: rank(s) {} did not arrive within {:.0f} s", o.store_dir,
                           missing, o.timeout_s));
  }
  register_engine_for_terminate(this);  // last: a constructor that threw has no destructor to unregister
}

CollectiveEngine::~CollectiveEngine() { unregister_engine_for_terminate(this); }

std::string CollectiveEngine::escaped_error(const std::string& what) {
  const RankDiagnosis d = diagnose_ranks(o_.store_dir, o_.size, o_.rank, entered_.load(), 3 * o_.heartbeat_s);
  const std::string line = what.substr(0, what.find('\n')).substr(0, 300);
  const std::string text =
      fmt::format("rank {}: collective engine thread failed after call #{}: {}; {}", o_.rank, completed_.load(), line,
                  d.rank < 0 ? "every other rank is alive" : d.text);
  record_rank_failure(o_.store_dir, o_.rank, d.rank, text);
  return text;
}

CollectiveCounters CollectiveEngine::counters() const {
  std::lock_guard<std::mutex> lock(counters_mu_);
  return counters_;
}

void CollectiveEngine::fail_setup(CommError::Kind kind, int blamed_rank, const std::string& what) {
  record_rank_failure(o_.store_dir, o_.rank, blamed_rank, what);
  throw CollectiveError(kind, blamed_rank, what);
}

bool CollectiveEngine::begin_call(const char* name) {
  if (broken_) {
    throw CollectiveError(CommError::Kind::kClosed, -1,
                          fmt::format("collective {} after an earlier failure of rank {}", name, o_.rank));
  }
  entered_.fetch_add(1);
  if (o_.size > 1) return true;
  completed_.fetch_add(1);
  return false;
}

void CollectiveEngine::end_call(CollectiveOpCounters CollectiveCounters::*kind, const CollectiveBytes& bytes,
                                std::chrono::steady_clock::time_point started) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  {
    std::lock_guard<std::mutex> lock(counters_mu_);
    count_collective(&(counters_.*kind), bytes, seconds);
  }
  completed_.fetch_add(1);
}

void CollectiveEngine::fail_call(const char* name, bool timed_out, const std::string& engine_text) {
  broken_ = true;
  const RankDiagnosis d = diagnose_ranks(o_.store_dir, o_.size, o_.rank, entered_.load(), 3 * o_.heartbeat_s);
  const std::string line = engine_text.substr(0, engine_text.find('\n')).substr(0, 300);
  const std::string text =
      fmt::format("rank {}: collective {} (call #{}) failed{}: {}; engine said: {}", o_.rank, name,
                  completed_.load() + 1, timed_out ? fmt::format(" after the {:.0f} s timeout", o_.timeout_s) : "",
                  d.text, line);
  record_rank_failure(o_.store_dir, o_.rank, d.rank, text);
  throw CollectiveError(timed_out ? CommError::Kind::kTimeout : CommError::Kind::kClosed, d.rank, text);
}

}  // namespace gradzip::comm
