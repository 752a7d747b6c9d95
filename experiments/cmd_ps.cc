// `gradzip ps` options; the shard server body is not written yet.
#include "experiments/cmd_ps.h"

#include "experiments/commands.h"

namespace gradzip::cli {

void bind_ps_options(OptionTable* t, PsOptions* o) {
  t->group("Parameter-server shard");
  t->add("bind", &o->bind, "ZeroMQ endpoint to listen on, e.g. tcp://*:5555");
  t->add("cluster-file", &o->cluster_file, "cluster file with every shard and worker address (overrides --bind)");
  t->add("shard-rank", &o->shard_rank, "index of this shard in [0, shards)", Range{0, 1023});
  t->add("epochs", &o->epochs, "run length in epochs (learning-rate schedule)", Range{1, 100000});
  bind_topology_options(t, &o->topology);
  bind_optimizer_options(t, &o->optimizer);
  bind_compression_options(t, &o->compression);
  bind_run_options(t, &o->run);
  t->add_check([o] {
    if (o->shard_rank >= o->topology.shards) {
      throw UsageError("--shard-rank " + std::to_string(o->shard_rank) + " must be < --shards " +
                       std::to_string(o->topology.shards));
    }
  });
}

int cmd_ps(int argc, char** argv) {
  PsOptions opt;
  OptionTable table("ps", "Run one parameter-server shard (ZeroMQ) for the workers of a run.");
  bind_ps_options(&table, &opt);
  return run_command(table, argc, argv, [] { return not_implemented("ps"); });
}

}  // namespace gradzip::cli
