#include "tests/comm/lossy_links.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace gradzip::comm::testing {
namespace {

constexpr const char* kPrefix = "gzl";

struct CommandResult {
  int status = -1;
  std::string output;
};

// Runs `cmd` through the shell with stdin `input`; captures stdout+stderr.
CommandResult run(const std::string& cmd, const std::string& input = "") {
  const std::string tmp = fmt::format("/tmp/gzl-{}-{}.in", ::getpid(), static_cast<const void*>(&cmd));
  std::string full = cmd + " 2>&1";
  if (!input.empty()) {
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fputs(input.c_str(), f);
      std::fclose(f);
    }
    full = cmd + " < " + tmp + " 2>&1";
  }
  CommandResult r;
  if (FILE* p = ::popen(full.c_str(), "r")) {
    std::array<char, 512> buf{};
    while (std::fgets(buf.data(), static_cast<int>(buf.size()), p)) r.output += buf.data();
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  if (!input.empty()) std::remove(tmp.c_str());
  return r;
}

void must(const std::string& cmd, const std::string& input = "") {
  const CommandResult r = run(cmd, input);
  if (r.status != 0) throw std::runtime_error(fmt::format("`{}` failed ({}): {}", cmd, r.status, r.output));
}

std::string nft(const std::string& ns, const std::string& args) {
  return fmt::format("ip netns exec {} nft {}", ns, args);
}

// Chains: loss_in/loss_out hold the random-loss rule, cut_in/cut_out the cut rule.
const char* kRuleset = R"(table inet gz {
  chain loss_in { type filter hook input priority 0; policy accept; }
  chain loss_out { type filter hook output priority 0; policy accept; }
  chain cut_in { type filter hook input priority 1; policy accept; }
  chain cut_out { type filter hook output priority 1; policy accept; }
}
)";

std::atomic<unsigned> g_counter{0};

}  // namespace

std::string LossyStar::unavailable_reason() {
  if (::geteuid() != 0) return "needs root (network namespaces, nftables)";
  if (run("ip -V").status != 0) return "`ip` (iproute2) not found";
  if (run("nft --version").status != 0) return "`nft` (nftables) not found";
  return "";
}

std::size_t LossyStar::remove_stale() {
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(kPrefix, 0) != 0) continue;
    const pid_t owner = static_cast<pid_t>(std::atol(name.c_str() + 3));
    if (owner <= 0 || ::kill(owner, 0) == 0 || errno != ESRCH) continue;
    if (run("ip netns del " + name).status == 0) ++removed;
  }
  return removed;
}

LossyStar::LossyStar(std::uint32_t spokes) {
  const std::string id = fmt::format("{}{}x{}", kPrefix, ::getpid(), g_counter++);
  hub_ = id + "h";
  for (std::uint32_t i = 0; i < spokes; ++i) spokes_.push_back(fmt::format("{}s{}", id, i));
  flushed_drops_.assign(spokes, 0);
  try {
    build();
  } catch (...) {
    teardown();
    throw;
  }
}

LossyStar::~LossyStar() { teardown(); }

void LossyStar::build() {
  if (spokes_.size() > 250) throw std::runtime_error("LossyStar: at most 250 spokes");
  must("ip netns add " + hub_);
  created_.push_back(hub_);
  must(fmt::format("ip -n {} link set lo up", hub_));
  for (std::uint32_t i = 0; i < spokes_.size(); ++i) {
    const std::string& s = spokes_[i];
    must("ip netns add " + s);
    created_.push_back(s);
    must(fmt::format("ip -n {} link set lo up", s));
    must(fmt::format("ip -n {} link add hv{} type veth peer name eth0 netns {}", hub_, i, s));
    must(fmt::format("ip -n {} addr add 10.89.{}.1/24 dev hv{}", hub_, i, i));
    // One TCP segment per packet (no GSO super-packets): a drop loses one MTU's worth.
    must(fmt::format("ip -n {} link set hv{} gso_max_segs 1", hub_, i));
    must(fmt::format("ip -n {} link set eth0 gso_max_segs 1", s));
    must(fmt::format("ip -n {} link set hv{} up", hub_, i));
    must(fmt::format("ip -n {} addr add 10.89.{}.2/24 dev eth0", s, i));
    must(fmt::format("ip -n {} link set eth0 up", s));
    must(nft(s, "-f -"), kRuleset);
  }
}

void LossyStar::teardown() noexcept {
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    const CommandResult r = run("ip netns del " + *it);
    if (r.status != 0) {
      std::fprintf(stderr, "LossyStar: cannot delete namespace %s: %s\n", it->c_str(), r.output.c_str());
    }
  }
  created_.clear();
}

std::string LossyStar::hub_address(std::uint32_t i) const { return fmt::format("10.89.{}.1", i); }

std::vector<std::string> LossyStar::in_namespace(const std::string& ns) { return {"ip", "netns", "exec", ns}; }

void LossyStar::flush(std::uint32_t i, const char* chain) {
  flushed_drops_.at(i) += counted(i, chain);  // the rule's counter goes with it
  must(nft(spoke(i), fmt::format("flush chain inet gz {}", chain)));
}

void LossyStar::set_loss(std::uint32_t i, unsigned percent) {
  if (percent > 100) throw std::invalid_argument("loss percent above 100");
  for (const char* chain : {"loss_in", "loss_out"}) {
    flush(i, chain);
    if (percent > 0) {
      must(nft(spoke(i), fmt::format("add rule inet gz {} numgen random mod 100 lt {} counter drop", chain, percent)));
    }
  }
}

void LossyStar::cut(std::uint32_t i) {
  for (const char* chain : {"cut_in", "cut_out"}) {
    must(nft(spoke(i), fmt::format("add rule inet gz {} counter drop", chain)));
  }
}

void LossyStar::heal(std::uint32_t i) {
  for (const char* chain : {"cut_in", "cut_out"}) flush(i, chain);
}

std::uint64_t LossyStar::counted(std::uint32_t i, const std::string& chain) const {
  const CommandResult r = run(nft(spoke(i), "-j list table inet gz"));
  if (r.status != 0) throw std::runtime_error("nft list failed: " + r.output);
  const auto j = nlohmann::json::parse(r.output, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error("nft -j output is not JSON: " + r.output);
  std::uint64_t n = 0;
  for (const auto& item : j.at("nftables")) {
    if (!item.contains("rule") || (!chain.empty() && item["rule"].at("chain") != chain)) continue;
    for (const auto& e : item["rule"].at("expr")) {
      if (e.contains("counter")) n += e["counter"].at("packets").get<std::uint64_t>();
    }
  }
  return n;
}

std::uint64_t LossyStar::dropped(std::uint32_t i) const { return flushed_drops_.at(i) + counted(i, ""); }

}  // namespace gradzip::comm::testing
