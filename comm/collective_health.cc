// Heartbeat files and failure diagnosis of collective ranks (comm/collective_health.h).
// Heartbeat file format, one line: "<beat> <calls entered>\n", written to a temporary file
// and renamed over the old one, so a reader never sees half a line. Failure record
// (failed-<rank>), one line: "<rank blamed, -1 if none> <message>\n".
#include "comm/collective_health.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>

namespace gradzip::comm {
namespace fs = std::filesystem;
namespace {

struct Beat {
  bool present = false;
  std::uint64_t beat = 0, entered = 0;
};

Beat read_beat(const std::string& dir, std::uint32_t rank) {
  Beat b;
  std::ifstream in(fs::path(dir) / ("heartbeat-" + std::to_string(rank)));
  if (in >> b.beat >> b.entered) b.present = true;
  return b;
}

struct Failure {
  bool present = false;
  int blamed = -1;
  std::string text;
};

Failure read_failure(const std::string& dir, std::uint32_t rank) {
  std::ifstream in(fs::path(dir) / ("failed-" + std::to_string(rank)));
  Failure f;
  if (!(in >> f.blamed)) return f;
  in.get();  // the space
  std::getline(in, f.text);
  f.present = true;
  return f;
}

}  // namespace

Heartbeat::Heartbeat(std::string dir, std::uint32_t rank, double period_s, std::function<std::uint64_t()> entered)
    : dir_(std::move(dir)), rank_(rank), period_s_(period_s), entered_(std::move(entered)) {
  write_once();  // present before the rendezvous starts
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::duration<double>(period_s_), [this] { return stop_; })) {
      lock.unlock();
      write_once();
      lock.lock();
    }
  });
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Heartbeat::write_once() {
  const fs::path final_path = fs::path(dir_) / ("heartbeat-" + std::to_string(rank_));
  const fs::path tmp = fs::path(dir_) / (".heartbeat-" + std::to_string(rank_) + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << ++beat_ << ' ' << entered_() << '\n';
    if (!out) return;  // a full disk must not kill training; the others then see a stale beat
  }
  std::error_code ec;
  fs::rename(tmp, final_path, ec);
}

RankDiagnosis diagnose_ranks(const std::string& dir, std::uint32_t size, std::uint32_t self,
                             std::uint64_t self_entered, double observe_s) {
  std::vector<Beat> first(size), second(size);
  for (std::uint32_t r = 0; r < size; ++r) first[r] = read_beat(dir, r);
  std::this_thread::sleep_for(std::chrono::duration<double>(observe_s));
  for (std::uint32_t r = 0; r < size; ++r) second[r] = read_beat(dir, r);
  // A rank that recorded a failure of its own exits after it: its heartbeat stops and it
  // entered fewer calls, but it only reacted to the rank that failed first, which it
  // names in its record. So the ranks without a record are judged first.
  std::vector<Failure> failures(size);
  for (std::uint32_t r = 0; r < size; ++r) failures[r] = r == self ? Failure{} : read_failure(dir, r);
  RankDiagnosis d;
  for (std::uint32_t r = 0; r < size && d.rank < 0; ++r) {
    if (r == self || failures[r].present) continue;
    if (!second[r].present) {
      d = {static_cast<int>(r), fmt::format("rank {} never wrote a heartbeat (it did not start)", r)};
    } else if (second[r].beat == first[r].beat) {
      d = {static_cast<int>(r), fmt::format("rank {} stopped responding (no heartbeat for {:.1f} s: it died or is "
                                            "frozen; its last heartbeat counted {} collective calls entered)",
                                            r, observe_s, second[r].entered)};
    }
  }
  for (std::uint32_t r = 0; r < size && d.rank < 0; ++r) {
    if (r != self && !failures[r].present && second[r].entered < self_entered) {
      d = {static_cast<int>(r), fmt::format("rank {} is alive but has not entered collective call #{} (it entered "
                                            "{}): it is stuck or slow outside the collective",
                                            r, self_entered, second[r].entered)};
    }
  }
  for (std::uint32_t r = 0; r < size && d.rank < 0; ++r) {
    if (!failures[r].present) continue;
    const int blamed = failures[r].blamed;
    if (blamed >= 0 && blamed != static_cast<int>(self) && blamed != static_cast<int>(r)) {
      d = {blamed, fmt::format("rank {} failed first (rank {} reported: {})", blamed, r, failures[r].text)};
    } else {
      d = {static_cast<int>(r), fmt::format("rank {} failed: {}", r, failures[r].text)};
    }
  }
  if (d.rank < 0) d.text = "every rank is alive and entered the call (a slow link or a timeout too short?)";
  return d;
}

bool wait_for_ranks(const std::string& dir, std::uint32_t size, double timeout_s, std::string* missing) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    std::string absent;
    for (std::uint32_t r = 0; r < size; ++r) {
      if (!read_beat(dir, r).present) absent += (absent.empty() ? "" : ", ") + std::to_string(r);
    }
    if (absent.empty()) return true;
    if (std::chrono::steady_clock::now() >= deadline) {
      *missing = absent;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool heartbeat_advances(const std::string& dir, std::uint32_t rank, double observe_s) {
  const Beat first = read_beat(dir, rank);
  if (!first.present) return false;
  std::this_thread::sleep_for(std::chrono::duration<double>(observe_s));
  const Beat second = read_beat(dir, rank);
  return second.present && second.beat != first.beat;
}

void record_rank_failure(const std::string& dir, std::uint32_t rank, int blamed_rank, const std::string& what) {
  std::ofstream out(fs::path(dir) / ("failed-" + std::to_string(rank)), std::ios::trunc);
  std::string line = what;
  for (char& ch : line) {
    if (ch == '\n') ch = ' ';
  }
  out << blamed_rank << ' ' << line << '\n';
}

}  // namespace gradzip::comm
