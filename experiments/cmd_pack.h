// `gradzip pack`: converts a dataset (e.g. Fashion-MNIST IDX files) into gradzip's packed
// binary format that the data loader reads without decoding.
#pragma once

#include <string>

#include "experiments/options.h"

namespace gradzip::cli {

struct PackOptions {
  std::string dataset = "fashion-mnist";
  std::string data_dir = "/usr/share/datasets/fashion-mnist";  ///< input files
  std::string output = "";       ///< output directory (required)
  std::string split = "all";     ///< all | train | test
  int shards = 1;                ///< number of output files per split
};

void bind_pack_options(OptionTable* table, PackOptions* opt);

}  // namespace gradzip::cli
