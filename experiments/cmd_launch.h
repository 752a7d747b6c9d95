// `gradzip launch`: starts the shards and workers of one run as processes (on this host,
// in network namespaces, or through slurm/mpi) and collects their run directories.
#pragma once

#include <string>

#include "experiments/options.h"

namespace gradzip::cli {

struct LaunchOptions {
  std::string cluster = "local";      ///< local | netem | slurm | mpi | path to a cluster file
  std::string train_config = "";      ///< INI file handed to every ps/worker via --config
  int workers = 2;
  int shards = 1;
  std::string host = "127.0.0.1";     ///< address shards bind to in local mode
  int base_port = 5555;               ///< shard s listens on base_port + s
  std::string gradzip_binary = "";    ///< empty: this executable
  std::string link = "10gbe";         ///< netem: link profile applied with tc
  bool dry_run = false;               ///< print the commands instead of running them
  RunOptions run;
};

void bind_launch_options(OptionTable* table, LaunchOptions* opt);

}  // namespace gradzip::cli
