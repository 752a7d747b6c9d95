// `gradzip worker` options; the worker loop is not written yet.
#include "experiments/cmd_worker.h"

#include "experiments/commands.h"

namespace gradzip::cli {

void bind_worker_options(OptionTable* t, WorkerOptions* o) {
  t->group("Worker");
  t->add("connect", &o->connect, "comma-separated ZeroMQ endpoints of the shards, shard 0 first");
  t->add("cluster-file", &o->cluster_file, "cluster file with every shard and worker address (overrides --connect)");
  t->add("worker-rank", &o->worker_rank, "index of this worker in [0, workers)", Range{0, 4095});
  t->add("epochs", &o->epochs, "passes over this worker's part of the training set", Range{1, 100000});
  t->add("max-steps", &o->max_steps, "stop after this many steps; 0 = no limit", Range{0, 9.0e18});
  bind_model_data_options(t, &o->data);
  bind_compression_options(t, &o->compression);
  bind_topology_options(t, &o->topology);
  bind_run_options(t, &o->run);
  t->add_check([o] {
    if (o->worker_rank >= o->topology.workers) {
      throw UsageError("--worker-rank " + std::to_string(o->worker_rank) + " must be < --workers " +
                       std::to_string(o->topology.workers));
    }
  });
}

int cmd_worker(int argc, char** argv) {
  WorkerOptions opt;
  OptionTable table("worker", "Run one training worker that talks to the parameter-server shards.");
  bind_worker_options(&table, &opt);
  return run_command(table, argc, argv, [] { return not_implemented("worker"); });
}

}  // namespace gradzip::cli
