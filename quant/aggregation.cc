// Aggregation-only compressors (quant/aggregation.h): their registry rows and spec parsing.
#include "quant/aggregation.h"

#include <string>

#include "quant/rotation.h"

namespace gradzip::quant {
namespace {

const AggregationEntry& powersgd_entry() {
  static const AggregationEntry entry{
      "powersgd",
      "rank-r P Q^T per matrix (conv weights as out x in*k*k), error feedback, warm-started Q; "
      "1-D and small tensors dense",
      "Vogels, Karimireddy, Jaggi 2019, PowerSGD: practical low-rank gradient compression (NeurIPS)",
      "4 rank (rows + cols) bytes per compressed matrix per step (P, then Q reduced), 4 numel per dense tensor",
      {{"rank", ParamKind::kInt, "4", 1, static_cast<double>(kPowerSgdMaxRank), {}, "rank r of the approximation"},
       {"min_numel", ParamKind::kInt, "4096", 1, 4294967295.0, {},
        "tensors with fewer elements (and 1-D tensors) are reduced dense"}}};
  return entry;
}

const AggregationEntry& thc_entry() {
  static const AggregationEntry entry{
      "thc",
      "homomorphic int8: one scale agreed by a max-allreduce, stochastic rounding to +-levels, integer "
      "codes summed by the allreduce, decoded once",
      "Li et al. 2024, THC: accelerating distributed deep learning using tensor homomorphic compression (NSDI)",
      "per element: 1 byte when ranks*levels <= 127, 2 when <= 32767, else 4 (the integer sum type); "
      "plus 4 bytes per bucket (the scale)",
      {{"levels", ParamKind::kInt, "127", 1, 127, {}, "codes in [-levels, levels]; fewer levels allow narrower sums"},
       {"rotate", ParamKind::kBool, "false", 0, 0, {}, "randomized Hadamard rotation before quantizing"},
       {"block", ParamKind::kInt, "4096", 2, static_cast<double>(kMaxRotationBlock), {},
        "rotation block in elements (a power of two)"}}};
  return entry;
}

/// Resolves `spec` against the entry it must name.
Params resolve(const std::string& spec, const AggregationEntry& want) {
  auto [name, raw] = split_spec(spec);
  if (name != want.name) throw SpecError("expected a " + want.name + " spec, got '" + spec + "'");
  return resolve_params(name, want.params, raw);
}

}  // namespace

const std::vector<const AggregationEntry*>& aggregation_entries() {
  static const std::vector<const AggregationEntry*> entries = {&powersgd_entry(), &thc_entry()};
  return entries;
}

const AggregationEntry* find_aggregation(const std::string& name) {
  for (const auto* e : aggregation_entries()) {
    if (e->name == name) return e;
  }
  return nullptr;
}

bool is_aggregation_only(const std::string& compressor_spec) {
  const CompressorSpec parts = parse_compressor_spec(compressor_spec);
  return find_aggregation(split_spec(parts.codec).first) != nullptr;
}

PowerSgdConfig parse_powersgd_spec(const std::string& spec) {
  const Params p = resolve(spec, powersgd_entry());
  PowerSgdConfig c;
  c.rank = static_cast<std::uint32_t>(p.get_int("rank"));
  c.min_numel = static_cast<std::uint64_t>(p.get_int("min_numel"));
  return c;
}

homomorphic::Config parse_thc_spec(const std::string& spec) {
  const Params p = resolve(spec, thc_entry());
  homomorphic::Config c;
  c.levels = static_cast<std::int32_t>(p.get_int("levels"));
  c.rotate = p.get_bool("rotate");
  c.block = static_cast<std::uint32_t>(p.get_int("block"));
  if (check_rotation_block(c.block).ok()) return c;
  throw SpecError("thc: block=" + std::to_string(c.block) + " is not allowed; allowed: a power of two in 2.." +
                  std::to_string(kMaxRotationBlock));
}

std::string canonical_aggregation_spec(const std::string& spec) {
  const std::string name = split_spec(spec).first;
  const AggregationEntry* e = find_aggregation(name);
  if (e == nullptr) throw SpecError("'" + name + "' is not an aggregation-only compressor");
  if (e == &thc_entry()) parse_thc_spec(spec);  // the power-of-two check
  const std::string params = resolve(spec, *e).canonical();
  return params.empty() ? name : name + ":" + params;
}

std::string aggregation_only_message(const std::string& name) {
  return name + " is an aggregation-only compressor: it needs the ranks to agree between encode and decode, so it "
                "runs only inside a collective aggregation, not as a per-worker message through the parameter "
                "server" +
         (name == "powersgd" ? std::string(" (except as --aggregation ps --shards 1: two round trips to the shard)")
                             : std::string()) +
         " (see `gradzip compressors`)";
}

}  // namespace gradzip::quant
