// `gradzip ps`: one parameter-server shard process (ZeroMQ), serving the workers of a run.
#pragma once

#include <string>

#include "experiments/options.h"

namespace gradzip::cli {

struct PsOptions {
  std::string bind = "tcp://*:5555";  ///< ZeroMQ endpoint this shard listens on
  std::string cluster_file = "";      ///< cluster file listing every shard and worker (overrides --bind)
  int shard_rank = 0;                 ///< this shard's index in [0, shards)
  TopologyOptions topology;
  OptimizerOptions optimizer;
  CompressionOptions compression;
  RunOptions run;
  int epochs = 10;                    ///< for the learning-rate schedule
};

void bind_ps_options(OptionTable* table, PsOptions* opt);

}  // namespace gradzip::cli
