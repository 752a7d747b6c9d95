// `gradzip launch` options; the launcher body is not written yet.
#include "experiments/cmd_launch.h"

#include <fstream>

#include "experiments/commands.h"

namespace gradzip::cli {

void bind_launch_options(OptionTable* t, LaunchOptions* o) {
  t->group("Launch");
  t->add("cluster", &o->cluster, "local | netem | slurm | mpi | path to a cluster file");
  t->add("train-config", &o->train_config, "INI file handed to every shard and worker with --config");
  t->add("workers", &o->workers, "number of worker processes", Range{1, 4096});
  t->add("shards", &o->shards, "number of parameter-server shard processes", Range{1, 1024});
  t->add("host", &o->host, "address the shards bind to (local mode)");
  t->add("base-port", &o->base_port, "shard s listens on base-port + s", Range{1024, 65535});
  t->add("gradzip-binary", &o->gradzip_binary, "gradzip executable to start; empty = this one");
  t->add("link", &o->link, "netem mode: link profile applied with tc");
  t->add("dry-run", &o->dry_run, "print the commands instead of running them");
  bind_run_options(t, &o->run);
  t->add_check([o] {
    if (o->cluster == "local" || o->cluster == "netem" || o->cluster == "slurm" || o->cluster == "mpi") return;
    std::ifstream f(o->cluster);
    if (!f) {
      throw UsageError("bad value '" + o->cluster +
                       "' for --cluster: not local|netem|slurm|mpi and not a readable cluster file");
    }
  });
  t->add_check([o] {
    if (o->base_port + o->shards - 1 > 65535) throw UsageError("--base-port + --shards exceeds port 65535");
  });
}

int cmd_launch(int argc, char** argv) {
  LaunchOptions opt;
  OptionTable table("launch", "Start the shards and workers of one run as processes and wait for them.");
  bind_launch_options(&table, &opt);
  return run_command(table, argc, argv, [] { return not_implemented("launch"); });
}

}  // namespace gradzip::cli
