// `gradzip placement`: shows how a model's parameter tensors are placed on shards (bytes
// per shard, imbalance) for a placement strategy.
#pragma once

#include <string>

#include "experiments/options.h"

namespace gradzip::cli {

struct PlacementOptions {
  std::string model = "resnet20";
  int shards = 2;
  std::string strategy = "balanced";  ///< balanced | round-robin | hash
  double bucket_mb = 25.0;            ///< bucket size in MiB
  std::string format = "table";       ///< table | json
};

void bind_placement_options(OptionTable* table, PlacementOptions* opt);

}  // namespace gradzip::cli
