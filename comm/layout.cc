#include "comm/layout.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include <fmt/format.h>

#include "quant/rules.h"
#include "quant/status.h"

namespace gradzip::comm {

const char* placement_strategy_name(PlacementStrategy s) {
  switch (s) {
    case PlacementStrategy::kRoundRobin: return "round_robin";
    case PlacementStrategy::kGreedyBytes: return "greedy";
    case PlacementStrategy::kPartitioned: return "partitioned";
  }
  return "unknown";
}

PlacementStrategy parse_placement_strategy(const std::string& name) {
  for (auto s : {PlacementStrategy::kRoundRobin, PlacementStrategy::kGreedyBytes, PlacementStrategy::kPartitioned}) {
    if (name == placement_strategy_name(s)) return s;
  }
  throw std::invalid_argument("placement strategy '" + name + "' unknown; allowed: round_robin|greedy|partitioned");
}

std::string PlacementOptions::canonical() const {
  std::string s = fmt::format("{}:shards={},bucket_bytes={},partition_bytes={},min_compress_numel={}",
                              placement_strategy_name(strategy), num_shards, bucket_bytes, partition_bytes,
                              min_compress_numel);
  if (first_bucket_bytes > 0) s += fmt::format(",first_bucket_bytes={}", first_bucket_bytes);
  return s;
}

namespace {
// A placement unit: a whole tensor, or a piece of one (partitioned strategy).
struct Unit {
  std::uint64_t offset;
  std::uint64_t numel;
  std::uint32_t shard;
  std::uint32_t spec;
};

/// The compressor spec index of every tensor (quant/rules.h) and the distinct specs.
std::vector<std::uint32_t> tensor_specs(const ModelSignature& signature, std::vector<std::string>* specs) {
  std::vector<std::uint32_t> out(signature.tensors.size(), 0);
  if (!quant::CompressorRules::is_rules(signature.compressor_spec)) {
    *specs = {signature.compressor_spec};
    return out;
  }
  try {
    const auto rules = quant::CompressorRules::parse(signature.compressor_spec);
    *specs = rules.specs();
    for (std::size_t t = 0; t < out.size(); ++t) {
      out[t] = rules.spec_of(signature.tensors[t].name, signature.tensors[t].numel);
    }
  } catch (const quant::SpecError& e) {
    throw std::invalid_argument(std::string("placement: ") + e.what());
  }
  return out;
}
}  // namespace

Layout make_layout(const ModelSignature& signature, const PlacementOptions& options) {
  if (options.num_shards == 0) throw std::invalid_argument("placement: num_shards must be >= 1");
  if (options.bucket_bytes < 4) throw std::invalid_argument("placement: bucket_bytes must be >= 4");
  const std::uint64_t bucket_numel = options.bucket_bytes / 4;
  const std::uint64_t piece_numel =
      std::max<std::uint64_t>(1, (options.partition_bytes ? options.partition_bytes : options.bucket_bytes) / 4);

  std::vector<std::string> specs;
  const std::vector<std::uint32_t> spec_of = tensor_specs(signature, &specs);
  std::vector<Unit> units;
  std::uint64_t offset = 0;
  for (std::size_t ti = 0; ti < signature.tensors.size(); ++ti) {
    const auto& t = signature.tensors[ti];
    if (options.strategy == PlacementStrategy::kPartitioned) {
      for (std::uint64_t done = 0; done < t.numel; done += piece_numel) {
        units.push_back({offset + done, std::min(piece_numel, t.numel - done), 0, spec_of[ti]});
      }
    } else if (t.numel > 0) {
      units.push_back({offset, t.numel, 0, spec_of[ti]});
    }
    offset += t.numel;
  }
  if (offset == 0) throw std::invalid_argument("placement: the model has no parameters");

  const std::uint32_t m = options.num_shards;
  if (options.strategy == PlacementStrategy::kRoundRobin) {
    for (std::size_t i = 0; i < units.size(); ++i) units[i].shard = static_cast<std::uint32_t>(i % m);
  } else {
    // Greedy list scheduling (Graham 1969, LPT rule): largest first onto the least-loaded
    // shard. Ties broken by unit index and shard id so every host gets the same answer.
    std::vector<std::size_t> order(units.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return units[a].numel > units[b].numel; });
    std::vector<std::uint64_t> load(m, 0);
    for (std::size_t i : order) {
      const auto s = static_cast<std::uint32_t>(std::min_element(load.begin(), load.end()) - load.begin());
      units[i].shard = s;
      load[s] += units[i].numel;
    }
  }

  Layout layout;
  layout.options = options;
  layout.total_numel = offset;
  layout.shard_buckets.assign(m, {});
  layout.shard_numel.assign(m, 0);
  const std::uint64_t first_numel = options.first_bucket_bytes / 4;
  auto add_bucket = [&layout, &options](std::uint32_t shard, std::uint32_t spec, std::uint64_t begin,
                                        std::uint64_t numel) {
    Bucket bucket;
    bucket.id = static_cast<std::uint32_t>(layout.buckets.size());
    bucket.shard = shard;
    bucket.offset = begin;
    bucket.numel = numel;
    bucket.compressed = numel >= options.min_compress_numel;
    bucket.spec = spec;
    bucket.shard_offset = layout.shard_numel[shard];
    layout.shard_numel[shard] += numel;
    layout.shard_buckets[shard].push_back(bucket.id);
    layout.buckets.push_back(bucket);
  };
  layout.specs = std::move(specs);
  // Merge flat-adjacent units of one shard and one compressor spec into runs, cut runs
  // into buckets.
  std::size_t i = 0;
  while (i < units.size()) {
    std::size_t j = i + 1;
    while (j < units.size() && units[j].shard == units[i].shard && units[j].spec == units[i].spec) ++j;
    const std::uint64_t run_begin = units[i].offset;
    const std::uint64_t run_end = units[j - 1].offset + units[j - 1].numel;
    // The tail of the flat buffer gets its own small bucket (see first_bucket_bytes).
    const bool split_tail = run_end == offset && first_numel > 0 && run_end - run_begin > first_numel;
    const std::uint64_t cut_end = split_tail ? run_end - first_numel : run_end;
    for (std::uint64_t b = run_begin; b < cut_end; b += bucket_numel) {
      add_bucket(units[i].shard, units[i].spec, b, std::min(bucket_numel, cut_end - b));
    }
    if (split_tail) add_bucket(units[i].shard, units[i].spec, cut_end, first_numel);
    i = j;
  }
  return layout;
}

double Layout::imbalance() const {
  if (shard_numel.empty() || total_numel == 0) return 1.0;
  const double mean = static_cast<double>(total_numel) / static_cast<double>(shard_numel.size());
  return static_cast<double>(*std::max_element(shard_numel.begin(), shard_numel.end())) / mean;
}

std::string Layout::describe(const ModelSignature& signature) const {
  std::string s = fmt::format("placement {}\n{} tensors, {} elements ({} bytes fp32), {} buckets\n",
                              options.canonical(), signature.tensors.size(), total_numel, 4 * total_numel,
                              buckets.size());
  // Tensor names covered by each bucket, for people reading the plan.
  std::vector<std::uint64_t> tensor_begin;
  std::uint64_t off = 0;
  for (const auto& t : signature.tensors) {
    tensor_begin.push_back(off);
    off += t.numel;
  }
  for (const auto& b : buckets) {
    std::string names;
    for (std::size_t t = 0; t < signature.tensors.size(); ++t) {
      const std::uint64_t tb = tensor_begin[t], te = tb + signature.tensors[t].numel;
      if (te > b.offset && tb < b.offset + b.numel) names += (names.empty() ? "" : ",") + signature.tensors[t].name;
    }
    s += fmt::format("  bucket {:4d} shard {:3d} offset {:12d} numel {:10d} {:10s} {}{}\n", b.id, b.shard, b.offset,
                     b.numel, b.compressed ? "compressed" : "fp32", names,
                     specs.size() > 1 && b.compressed ? " [" + specs[b.spec] + "]" : "");
  }
  for (std::size_t sh = 0; sh < shard_numel.size(); ++sh) {
    s += fmt::format("shard {:3d}: {:4d} buckets, {:12d} bytes\n", sh, shard_buckets[sh].size(), 4 * shard_numel[sh]);
  }
  s += fmt::format("imbalance (max/mean bytes per shard): {:.4f}\n", imbalance());
  return s;
}

}  // namespace gradzip::comm
