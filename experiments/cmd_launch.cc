// `gradzip launch`: the multi-process orchestration of `gradzip train` (comm/launch.h starts
// and supervises the children) under its own command name.
#include "experiments/cmd_launch.h"

#include "experiments/commands.h"

namespace gradzip::cli {

int cmd_launch(int argc, char** argv) {
  TrainOptions opt;
  opt.cluster = "local";
  OptionTable table("launch",
                    "Start the shards and workers of one run as processes (--cluster local: loopback TCP; netem: "
                    "network namespaces with tc-shaped links, root) and wait for them.");
  bind_train_options(&table, &opt);
  return run_command(table, argc, argv, [&] {
    if (!opt.role.empty()) throw UsageError("gradzip launch: --role is set by launch for its children; leave it unset");
    if (opt.cluster == "sim") throw UsageError("gradzip launch: --cluster sim runs in one process; use gradzip train");
    if (!opt.resume.empty()) throw UsageError("gradzip launch: use gradzip train --resume RUN_DIR to continue a run");
    return run_train(opt, table);
  });
}

}  // namespace gradzip::cli
