// Automatic per-tensor compressor choice (`gradzip train --compressor auto:link=eth1g`):
// for each parameter tensor, the candidate spec with the least modeled time per step, from
// codec costs measured at start-up on this machine and the link model (experiments/link_model.h),
// under an accuracy guard. The result is a rule list (quant/rules.h) with one exact-name
// rule per tensor, so workers and shards resolve it like --compressor-rules. In the spirit
// of Espresso (Wang et al., EuroSys'23: choose compression per tensor from a cost model);
// the model here is deliberately small.
//
// Model of one tensor of n elements sent by each of N workers to M shards over `link`
// (bandwidth B bytes/s, latency L s, per-byte factor k):
//   T(c, n) = W_c(n) + max(N/M, 1) * bytes_c(n) * k / B + (N/M) * S_c(n) + L
//   W_c(n) = worker cost: memory compensate + encode + decode + memory update (the EF
//            memory of the spec included), a + b n: a timed at 16 elements, b the slope
//            from there to 262144 elements (least time of 5 interleaved rounds each);
//   S_c(n) = the shard's decode_add of one message, a + b n;
//   bytes_c(n) = the codec's documented message size (CodecEntry::size, quant/registry.h).
// Precision of a candidate: bits per element of its message for a large (262144-element)
// tensor, 8 bytes_c / n (headers negligible; scales and indices included). Guard: a
// candidate is allowed only when its precision >= min_bits (identity always is). Choice:
// the least T; among the allowed candidates within (1 + margin) of it, the most precise,
// so a tensor whose time is all latency stays uncompressed.
// Torch-free; the measurement takes well under a second for the default candidates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/transport.h"
#include "experiments/link_model.h"

namespace gradzip::experiments {

/// "auto:link=eth1g[,min_bits=2][,margin=0.05][,candidates=identity|fp16|ef+qsgd:bits=4]".
struct AutoSpec {
  std::string link = "eth1g";   ///< comm/link_model.h link spec
  double min_bits = 2.0;        ///< accuracy guard: least bits per element on the wire
  double margin = 0.05;         ///< relative time within which the most accurate candidate wins
  std::vector<std::string> candidates = {"identity", "fp16", "int8", "ef+qsgd:bits=4", "ef+qsgd:bits=2",
                                         "ef+scaled-sign", "ef+topk:ratio=0.01"};
};
bool is_auto_spec(const std::string& compressor);
/// Throws std::invalid_argument naming the bad key or value.
AutoSpec parse_auto_spec(const std::string& compressor);

/// Measured cost of one candidate: seconds = fixed + per_element * n.
struct CodecCost {
  std::string spec;  ///< canonical compressor spec
  double worker_fixed_s = 0, worker_per_element_s = 0;
  double shard_fixed_s = 0, shard_per_element_s = 0;
};
/// Times the worker step and the shard's decode_add of each candidate on this machine at
/// 16 elements (fixed cost) and 262144 (slope): 5 rounds, each timing every candidate once
/// in turn, so a loaded stretch hits all alike; each time is the least over the rounds
/// (load only adds time). No part of a cost is negative. Takes ~50 ms for the 7 default
/// candidates on a 2-core machine. Throws quant::SpecError for a bad candidate.
std::vector<CodecCost> measure_codec_costs(const std::vector<std::string>& candidates);

struct TensorChoice {
  std::string name;
  std::uint64_t numel = 0;
  std::string spec;               ///< chosen canonical compressor spec
  double modeled_s = 0;           ///< T(chosen, n)
  double identity_s = 0;          ///< T(identity, n)
  double bits_per_element = 0;    ///< precision of the chosen spec (see the file comment)
};

struct AutoPlan {
  std::vector<TensorChoice> choices;   ///< one per tensor, signature order
  std::vector<CodecCost> costs;        ///< what the choice used
  double modeled_step_s = 0;           ///< sum of the chosen T over tensors
  double identity_step_s = 0;          ///< the same with identity everywhere
  double startup_s = 0;                ///< measurement + choice wall time
  std::string rules;                   ///< rule text: one "name=spec" line per tensor
};

/// Chooses per tensor. `costs`: measured ones to use (tests pass synthetic costs); when
/// empty they are measured here. Throws std::invalid_argument for an unknown link, a
/// tensor name that is not a plain name (glob characters, ';', '=') or costs missing a
/// candidate.
AutoPlan choose_compressors(const std::vector<comm::TensorInfo>& tensors, const AutoSpec& spec, std::uint32_t workers,
                            std::uint32_t shards, std::vector<CodecCost> costs = {});

/// summary.json block: link, guard, startup seconds, costs, choices, modeled step times.
nlohmann::json auto_plan_json(const AutoPlan& plan, const AutoSpec& spec);

}  // namespace gradzip::experiments
