#include "comm/cluster.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace gradzip::comm {

std::vector<std::string> ClusterSpec::shard_endpoints() const {
  if (shards.empty()) {
    throw std::runtime_error(origin + ": \"ps\" is empty, but a parameter-server run needs its shards' host:port");
  }
  std::vector<std::string> out;
  for (const auto& s : shards) out.push_back("tcp://" + s);
  return out;
}

namespace {
void check_host_port(const std::string& entry, const std::string& origin) {
  const auto colon = entry.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw std::runtime_error(origin + ": '" + entry + "' is not host:port");
  }
  const std::string port = entry.substr(colon + 1);
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) {
    throw std::runtime_error(origin + ": port of '" + entry + "' is not in 0..65535");
  }
}
}  // namespace

ClusterSpec parse_cluster_json(const std::string& text, const std::string& origin) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error(origin + ": not a JSON object");
  ClusterSpec c;
  c.origin = origin;
  for (const auto& [key, dst] : {std::pair<const char*, std::vector<std::string>*>{"ps", &c.shards},
                                 std::pair<const char*, std::vector<std::string>*>{"worker", &c.workers}}) {
    if (!j.contains(key) || !j[key].is_array()) {
      throw std::runtime_error(origin + ": needs an array \"" + key + "\" of host:port strings");
    }
    for (const auto& e : j[key]) {
      if (!e.is_string()) throw std::runtime_error(origin + ": \"" + key + "\" entries must be strings");
      check_host_port(e.get<std::string>(), origin);
      dst->push_back(e.get<std::string>());
    }
  }
  return c;
}

std::string host_of(const std::string& host_port) {
  std::string host = host_port.substr(0, host_port.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host;
}

ClusterSpec load_cluster_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read cluster file " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_cluster_json(ss.str(), "cluster file " + path);
}

LauncherRank rank_from_environment() {
  static const char* const kPairs[][3] = {
      {"SLURM_PROCID", "SLURM_NTASKS", "slurm"},
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "openmpi"},
      {"PMI_RANK", "PMI_SIZE", "pmi"},
  };
  for (const auto& p : kPairs) {
    const char* r = std::getenv(p[0]);
    const char* s = std::getenv(p[1]);
    if (!r || !s) continue;
    char* end_r = nullptr;
    char* end_s = nullptr;
    const unsigned long rank = std::strtoul(r, &end_r, 10);
    const unsigned long size = std::strtoul(s, &end_s, 10);
    if (*r == '\0' || *s == '\0' || *end_r != '\0' || *end_s != '\0' || size == 0 || rank >= size) continue;
    LauncherRank out;
    out.found = true;
    out.rank = static_cast<std::uint32_t>(rank);
    out.size = static_cast<std::uint32_t>(size);
    out.source = p[2];
    return out;
  }
  return {};
}

Role role_of_rank(std::uint32_t rank, std::uint32_t num_shards) {
  Role r;
  r.is_shard = rank < num_shards;
  r.index = r.is_shard ? rank : rank - num_shards;
  return r;
}

}  // namespace gradzip::comm
