// `gradzip ps`: the shard role of `gradzip train` under its own command name.
#include "experiments/cmd_ps.h"

#include "experiments/commands.h"

namespace gradzip::cli {

int cmd_ps(int argc, char** argv) {
  TrainOptions opt;
  OptionTable table("ps",
                    "Run one parameter-server shard (ZeroMQ) for the workers of a run. Takes the train options so "
                    "that it builds the same model signature and bucket layout as the workers; --rank is the shard "
                    "id, --bind the endpoint (the role is always shard). Config files: [common] and [ps] apply; a run "
                    "directory's config.ini is a [train] section: use `gradzip train --config RUN/config.ini --role "
                    "shard` for it.");
  bind_train_options(&table, &opt);
  return run_command(table, argc, argv, [&] {
    if (!opt.role.empty() && opt.role != "shard") throw UsageError("gradzip ps: --role must be shard (or unset)");
    opt.role = "shard";
    return run_train(opt, table);
  });
}

}  // namespace gradzip::cli
