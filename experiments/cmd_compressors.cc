// `gradzip compressors`: lists every registered codec and error-feedback memory with
// parameters, defaults, allowed values and paper (quant::describe_registry()).
#include <iostream>

#include "experiments/commands.h"
#include "quant/registry.h"

namespace gradzip::cli {

int cmd_compressors(int argc, char** argv) {
  OptionTable table("compressors", "List the registered codecs and error-feedback memories with their parameters.");
  return run_command(table, argc, argv, [] {
    std::cout << quant::describe_registry();
    return static_cast<int>(kExitOk);
  });
}

}  // namespace gradzip::cli
