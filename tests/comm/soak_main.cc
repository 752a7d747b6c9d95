// comm_soak: a long run of real processes (label slow): 4 lsq_worker processes and 2
// gradzip-ps shards, sync mode, for --duration seconds. Checks, and prints:
//  - resident memory (VmRSS) of every process grows <= --max-growth (5%) after the
//    warm-up (--warmup seconds; default a fifth of the run, at least 20 s);
//  - no step lost: every worker ends at the step the driver set and both shards applied
//    exactly that many steps; all workers hold the same parameters;
//  - counters consistent: every shard applied steps x workers x its buckets pushes,
//    refused, dropped as stale and declared dead nothing, and the per-worker request
//    counts add up to the total.
//   comm_soak --duration=1200 [--warmup=240] [--sizes=...] [--dir=/tmp/...] [--keep]
// Exit code 0 when every check holds, 1 otherwise (each failure printed).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "comm/launch.h"
#include "comm/layout.h"
#include "tests/comm/flags.h"
#include "tests/comm/lsq.h"

namespace {

using namespace gradzip::comm;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr std::uint32_t kWorkers = 4;
constexpr std::uint32_t kShards = 2;
const std::string kBin = std::string(GRADZIP_BINARY_DIR) + "/tests/comm/";

// Resident set size of `pid` in KiB (0 when it is gone).
std::uint64_t rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (f >> key) {
    if (key == "VmRSS:") {
      std::uint64_t kib = 0;
      f >> kib;
      return kib;
    }
    std::getline(f, key);
  }
  return 0;
}

nlohmann::json last_json_line(const std::string& path) {
  std::ifstream f(path);
  std::string line, last;
  while (std::getline(f, line)) {
    if (!line.empty()) last = line;
  }
  return last.empty() ? nlohmann::json() : nlohmann::json::parse(last, nullptr, false);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Checks {
  int failures = 0;
  void expect(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "[ ok ]" : "[FAIL]", what.c_str());
    if (!ok) ++failures;
  }
};

}  // namespace

int main(int argc, char** argv) {
  try {
    testing::Flags f(argc, argv);
    const double duration_s = f.num("duration", 1200);
    const double warmup_s = f.num("warmup", std::max(20.0, duration_s / 5));
    const double max_growth = f.num("max-growth", 0.05);
    const std::string sizes = f.str("sizes", "100000,37,50000,1000,30000");
    const fs::path dir = f.str("dir", (fs::temp_directory_path() / ("gz_soak_" + std::to_string(::getpid()))).string());
    fs::create_directories(dir);
    const std::string bucket_bytes = "--bucket-bytes=65536";
    std::printf("soak: %u workers x %u shards, %.0f s (warm-up %.0f s), run directory %s\n", kWorkers, kShards,
                duration_s, warmup_s, dir.c_str());

    std::vector<ChildProcess> procs;
    std::vector<std::string> endpoints;
    for (std::uint32_t s = 0; s < kShards; ++s) {
      const std::string ep = (dir / ("shard" + std::to_string(s) + ".ep")).string();
      procs.emplace_back("shard" + std::to_string(s),
                         std::vector<std::string>{kBin + "gradzip-ps", "--shard=" + std::to_string(s),
                                                  "--shards=" + std::to_string(kShards),
                                                  "--workers=" + std::to_string(kWorkers), "--sizes=" + sizes,
                                                  bucket_bytes, "--lr=0.05", "--momentum=0.9", "--endpoint-file=" + ep,
                                                  "--stats-file=" +
                                                      (dir / ("shard" + std::to_string(s) + ".stats")).string(),
                                                  "--stats-interval=1", "--idle-exit=120"},
                         (dir / ("shard" + std::to_string(s) + ".log")).string());
      const auto deadline = Clock::now() + std::chrono::seconds(30);
      std::string endpoint;
      while (endpoint.empty() && Clock::now() < deadline && procs.back().running()) {
        std::ifstream(ep) >> endpoint;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (endpoint.empty()) throw std::runtime_error("shard " + std::to_string(s) + " did not start");
      endpoints.push_back(endpoint);
    }
    const std::string stop_file = (dir / "stop").string();
    for (std::uint32_t w = 0; w < kWorkers; ++w) {
      procs.emplace_back("worker" + std::to_string(w),
                         std::vector<std::string>{kBin + "lsq_worker", "--rank=" + std::to_string(w),
                                                  "--endpoints=" + endpoints[0] + "," + endpoints[1],
                                                  "--sizes=" + sizes,
                                                  bucket_bytes, "--steps=1000000000", "--stop-file=" + stop_file,
                                                  "--out=" + (dir / ("w" + std::to_string(w) + ".bin")).string(),
                                                  "--stats-out=" +
                                                      (dir / ("w" + std::to_string(w) + ".json")).string()},
                         (dir / ("worker" + std::to_string(w) + ".log")).string());
    }

    // Sample every process's resident memory; the warm-up sample is the baseline.
    const auto t0 = Clock::now();
    std::map<std::string, std::uint64_t> baseline, peak;
    bool warmed = false;
    while (std::chrono::duration<double>(Clock::now() - t0).count() < duration_s) {
      std::this_thread::sleep_for(std::chrono::seconds(2));
      const double t = std::chrono::duration<double>(Clock::now() - t0).count();
      for (auto& p : procs) {
        if (!p.running()) throw std::runtime_error(p.name() + " exited during the soak (exit " +
                                                   std::to_string(p.exit_code()) + ")");
        const std::uint64_t kib = rss_kib(p.pid());
        if (t >= warmup_s && !warmed) baseline[p.name()] = kib;
        if (warmed) peak[p.name()] = std::max(peak[p.name()], kib);
      }
      warmed = warmed || t >= warmup_s;
    }
    // Stop every worker at the same step, a little ahead of the shards.
    std::uint64_t version = 0;
    for (std::uint32_t s = 0; s < kShards; ++s) {
      const auto st = last_json_line((dir / ("shard" + std::to_string(s) + ".stats")).string());
      if (!st.is_discarded() && !st.is_null()) version = std::max<std::uint64_t>(version, st["version"]);
    }
    const std::uint64_t stop_at = version + 200;
    {
      std::ofstream(stop_file + ".tmp") << stop_at << "\n";
      fs::rename(stop_file + ".tmp", stop_file);
    }
    Checks check;
    for (auto& p : procs) {
      const bool exited = p.wait_for(std::chrono::seconds(180));
      check.expect(exited && p.exit_code() == 0,
                   p.name() + " exited cleanly (exit " + std::to_string(p.exit_code()) + ")");
    }
    for (const auto& [name, base] : baseline) {
      const double growth = base > 0 ? static_cast<double>(peak[name]) / static_cast<double>(base) - 1.0 : 0.0;
      check.expect(growth <= max_growth, fmt::format("{}: RSS {} KiB after warm-up, peak {} KiB later ({:+.2f}%)", name,
                                                     base, peak[name], 100.0 * growth));
    }
    // No step lost; every worker holds the same parameters.
    const std::string params0 = read_file((dir / "w0.bin").string());
    for (std::uint32_t w = 0; w < kWorkers; ++w) {
      const auto st = nlohmann::json::parse(read_file((dir / ("w" + std::to_string(w) + ".json")).string()));
      check.expect(st["first_step"] == 0 && st["last_step"] == stop_at,
                   fmt::format("worker {} ran steps {}..{} (expected 0..{})", w, st["first_step"].dump(),
                               st["last_step"].dump(), stop_at));
      check.expect(!params0.empty() && read_file((dir / ("w" + std::to_string(w) + ".bin")).string()) == params0,
                   fmt::format("worker {} holds the same parameters as worker 0", w));
    }
    // Counters.
    std::vector<std::uint64_t> numels;
    for (const auto& n : testing::Flags::split(sizes)) numels.push_back(std::stoull(n));
    const ModelSignature sig = testing::lsq_signature(numels);
    PlacementOptions place;  // as gradzip-ps and lsq_worker build it
    place.num_shards = kShards;
    place.strategy = parse_placement_strategy("greedy");
    place.bucket_bytes = 65536;
    const Layout layout = make_layout(sig, place);
    for (std::uint32_t s = 0; s < kShards; ++s) {
      const auto st = last_json_line((dir / ("shard" + std::to_string(s) + ".stats")).string());
      const std::uint64_t nbuckets = layout.shard_buckets[s].size();
      check.expect(st["version"] == stop_at, fmt::format("shard {} applied {} steps (expected {})", s,
                                                         st["version"].dump(), stop_at));
      check.expect(st["pushes_applied"] == stop_at * kWorkers * nbuckets,
                   fmt::format("shard {}: {} pushes applied = steps x workers x {} buckets", s,
                               st["pushes_applied"].dump(), nbuckets));
      for (const char* zero : {"refused", "stale_dropped", "workers_declared_dead", "timeout_completions"}) {
        check.expect(st[zero] == 0, fmt::format("shard {}: {} = {}", s, zero, st[zero].dump()));
      }
      std::uint64_t per_worker = 0;
      for (const auto& w : st["workers"]) per_worker += w["up"]["messages"].get<std::uint64_t>();
      check.expect(per_worker == st["total"]["up"]["messages"].get<std::uint64_t>(),
                   fmt::format("shard {}: per-worker requests add up to the total ({} = {})", s, per_worker,
                               st["total"]["up"]["messages"].dump()));
    }
    std::printf("soak: %d failed checks; %llu steps\n", check.failures, static_cast<unsigned long long>(stop_at));
    if (check.failures == 0 && !f.has("keep")) fs::remove_all(dir);
    return check.failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "comm_soak: %s\n", e.what());
    return 1;
  }
}
