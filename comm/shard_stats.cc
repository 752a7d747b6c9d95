// Shard, statistics: ShardStats as JSON, and the counting the shard does as it serves
// (bytes of every request and reply, refusals, staleness, time spent applying).
#include <algorithm>

#include <nlohmann/json.hpp>

#include "comm/accounting.h"
#include "comm/shard.h"

namespace gradzip::comm {

std::string ShardStats::to_json() const {
  nlohmann::json j;
  j["shard"] = shard_id;
  j["version"] = version;
  j["total"] = nlohmann::json::parse(counters_json(total));
  auto& ws = j["workers"] = nlohmann::json::array();
  for (const auto& w : workers) ws.push_back(nlohmann::json::parse(counters_json(w)));
  j["pushes_applied"] = pushes_applied;
  j["duplicates"] = duplicates;
  j["stale_dropped"] = stale_dropped;
  j["refused"] = refused;
  j["refused_by_reason"] = refused_by_reason;
  j["timeout_completions"] = timeout_completions;
  j["workers_declared_dead"] = workers_declared_dead;
  j["rejoins"] = rejoins;
  auto histogram = nlohmann::json::object();  // keys: staleness as text (JSON object keys are strings)
  for (const auto& [staleness, pushes] : staleness_histogram) histogram[std::to_string(staleness)] = pushes;
  j["staleness"] = {
      {"count", staleness_count}, {"sum", staleness_sum}, {"max", staleness_max}, {"histogram", histogram}};
  j["checkpoints_written"] = checkpoints_written;
  j["apply_seconds"] = apply_seconds;
  return j.dump();
}

void Shard::count_request(const FrameView* frames, std::size_t count, DirectionCounters* c) {
  std::vector<std::size_t> sizes(count);
  for (std::size_t i = 0; i < count; ++i) sizes[i] = frames[i].size;
  count_message(c, sizes.data(), sizes.size());
}

void Shard::count_reply(const OutMessage& msg, std::uint32_t worker) {
  std::vector<std::size_t> sizes;
  sizes.reserve(msg.frames.size());
  for (const auto& f : msg.frames) sizes.push_back(f->size());
  count_message(&stats_.total.down, sizes.data(), sizes.size());
  // Per worker: only replies to the connection bound to that rank (not to strangers).
  if (worker < stats_.workers.size() && bound_peer_[worker] == msg.peer) {
    count_message(&stats_.workers[worker].down, sizes.data(), sizes.size());
  }
}

bool Shard::count_refusal(ProtoErr err) {
  ++stats_.refused;
  ++stats_.refused_by_reason[proto_err_name(err)];
  return stats_.refused <= 20 || (stats_.refused & (stats_.refused - 1)) == 0;  // first 20, then powers of two
}

void Shard::record_staleness(std::uint64_t staleness) {
  ++stats_.staleness_count;
  stats_.staleness_sum += staleness;
  stats_.staleness_max = std::max(stats_.staleness_max, staleness);
  ++stats_.staleness_histogram[staleness];
}

void Shard::add_apply_time(Clock::time_point since) {
  stats_.apply_seconds += std::chrono::duration<double>(Clock::now() - since).count();
}

}  // namespace gradzip::comm
