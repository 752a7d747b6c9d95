// Aggregation-only compressors: algorithms that cannot run as one message per worker
// through the Codec interface, because they need the ranks to agree on something between
// encode and decode (a scale agreed by a max-allreduce, or PowerSGD's P between its two
// reductions). A collective aggregation drives them (comm/); the registry lists them so
// that `gradzip compressors` shows their parameters and byte formulas, and make_codec()
// refuses their names with a message that says where they run.
//
//   powersgd:rank=4,min_numel=4096      quant/powersgd.h
//   thc:levels=127,rotate=false,block=4096   quant/homomorphic.h (+ quant/rotation.h)
#pragma once

#include <string>
#include <vector>

#include "quant/homomorphic.h"
#include "quant/powersgd.h"
#include "quant/spec.h"

namespace gradzip::quant {

struct AggregationEntry {
  std::string name;               ///< spec name, e.g. "powersgd"
  std::string summary;            ///< one line: what it sends
  std::string paper;              ///< one line: author, year, venue
  std::string bytes;              ///< the byte formula per rank and step
  std::vector<ParamInfo> params;  ///< declared parameters
};

/// Every aggregation-only compressor, in display order.
const std::vector<const AggregationEntry*>& aggregation_entries();
/// Lookup by spec name; nullptr when not registered.
const AggregationEntry* find_aggregation(const std::string& name);

/// True when the codec part of a compressor spec ("ef+powersgd:rank=2" -> "powersgd")
/// names an aggregation-only compressor. Throws SpecError on malformed text.
bool is_aggregation_only(const std::string& compressor_spec);

/// "powersgd[:rank=R,min_numel=N]" -> its config. Throws SpecError naming the bad key,
/// or when the spec names another compressor.
PowerSgdConfig parse_powersgd_spec(const std::string& spec);
/// "thc[:levels=L,rotate=B,block=K]" -> its config. Throws SpecError (also for a block
/// that is not a power of two).
homomorphic::Config parse_thc_spec(const std::string& spec);
/// The spec with every parameter, in declaration order ("powersgd:rank=4,min_numel=4096");
/// parses back to the same config. Throws SpecError.
std::string canonical_aggregation_spec(const std::string& spec);

/// The error make_codec raises for an aggregation-only name (one line, names the spec).
std::string aggregation_only_message(const std::string& name);

}  // namespace gradzip::quant
