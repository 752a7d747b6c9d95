// `gradzip worker`: one training worker process that pushes compressed gradients to the
// parameter-server shards and pulls parameters back.
#pragma once

#include <cstdint>
#include <string>

#include "experiments/options.h"

namespace gradzip::cli {

struct WorkerOptions {
  std::string connect = "tcp://127.0.0.1:5555";  ///< comma-separated shard endpoints, shard 0 first
  std::string cluster_file = "";                 ///< cluster file (overrides --connect)
  int worker_rank = 0;                           ///< this worker's index in [0, workers)
  ModelDataOptions data;
  CompressionOptions compression;
  TopologyOptions topology;
  RunOptions run;
  int epochs = 10;
  std::int64_t max_steps = 0;  ///< 0 = no limit
};

void bind_worker_options(OptionTable* table, WorkerOptions* opt);

}  // namespace gradzip::cli
