// Rank 0's fresh rendezvous store and the others' joining of it (comm/collective_store.h).
#include "comm/collective_store.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "comm/collective.h"

namespace gradzip::comm {
namespace fs = std::filesystem;
namespace {

constexpr const char* kCurrent = "current";

std::string read_current(const fs::path& base) {
  std::ifstream in(base / kCurrent);
  std::string name;
  in >> name;
  // Only a name this code writes ("start-" and hex digits): never a path elsewhere.
  if (name.rfind("start-", 0) != 0 || name.find_first_not_of("0123456789abcdef", 6) != std::string::npos) return "";
  return name;
}

}  // namespace

FreshStore open_fresh_store(const std::string& base, double period_s) {
  std::error_code ec;
  fs::create_directories(base, ec);
  for (const auto& e : fs::directory_iterator(base, ec)) {
    if (e.path().filename().string().rfind("start-", 0) == 0) fs::remove_all(e.path(), ec);
  }
  std::random_device random;
  const std::string name = fmt::format("start-{:08x}{:08x}", random(), random());
  FreshStore store;
  store.dir = (fs::path(base) / name).string();
  const fs::path beacon = fs::path(store.dir) / "beacon";
  fs::create_directories(beacon, ec);
  if (ec) throw CollectiveError(CommError::Kind::kIo, -1, "cannot create " + beacon.string() + ": " + ec.message());
  store.beacon = std::make_unique<Heartbeat>(beacon.string(), 0, period_s, [] { return std::uint64_t{0}; });
  const fs::path tmp = fs::path(base) / (".current-" + name);
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << name << '\n';
    if (!out) throw CollectiveError(CommError::Kind::kIo, -1, "cannot write " + tmp.string());
  }
  fs::rename(tmp, fs::path(base) / kCurrent, ec);
  if (ec) throw CollectiveError(CommError::Kind::kIo, -1, "cannot write " + (fs::path(base) / kCurrent).string());
  return store;
}

std::string join_fresh_store(const std::string& base, double period_s, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  std::string seen;  // the newest directory named, for the message
  do {
    const std::string name = read_current(base);
    if (!name.empty()) {
      seen = name;
      const fs::path dir = fs::path(base) / name;
      if (heartbeat_advances((dir / "beacon").string(), 0, 3 * period_s)) return dir.string();
    } else {
      std::this_thread::sleep_for(std::chrono::duration<double>(period_s / 2));
    }
  } while (std::chrono::steady_clock::now() < deadline);
  throw CollectiveError(
      CommError::Kind::kTimeout, 0,
      fmt::format("no live rank 0 in the rendezvous directory {} after {:.0f} s ({}): is rank 0 running, and is the "
                  "directory on a file system every rank shares?",
                  base, timeout_s, seen.empty() ? "it named no store" : "its store " + seen + " has a still beacon"));
}

}  // namespace gradzip::comm
