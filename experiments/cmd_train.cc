// `gradzip train` options; the training body is not written yet.
#include "experiments/cmd_train.h"

#include <fstream>

#include "experiments/commands.h"

namespace gradzip::cli {

bool is_cluster_keyword(const std::string& cluster) {
  return cluster == "sim" || cluster == "local" || cluster == "netem" || cluster == "slurm" || cluster == "mpi";
}

void bind_train_options(OptionTable* t, TrainOptions* o) {
  bind_model_data_options(t, &o->data);
  t->group("Training");
  t->add("epochs", &o->epochs, "passes over the training set", Range{1, 100000});
  t->add("max-steps", &o->max_steps, "stop after this many steps per worker; 0 = no limit", Range{0, 9.0e18});
  t->add("eval-every", &o->eval_every, "epochs between test-set evaluations", Range{1, 100000});
  bind_optimizer_options(t, &o->optimizer);
  bind_compression_options(t, &o->compression);
  bind_topology_options(t, &o->topology);
  t->group("Cluster and links");
  t->add("cluster", &o->cluster, "sim | local | netem | slurm | mpi | path to a cluster file");
  t->add("link", &o->link, "link model: pcie3|pcie4|pcie5|nvlink|1gbe|10gbe|25gbe|100gbe");
  bind_run_options(t, &o->run);
  t->add_check([o] {
    if (is_cluster_keyword(o->cluster)) return;
    std::ifstream f(o->cluster);
    if (!f) {
      throw UsageError("bad value '" + o->cluster +
                       "' for --cluster: not sim|local|netem|slurm|mpi and not a readable cluster file");
    }
  });
}

int cmd_train(int argc, char** argv) {
  TrainOptions opt;
  OptionTable table("train", "Train a model with compressed gradient communication and write a run directory.");
  bind_train_options(&table, &opt);
  return run_command(table, argc, argv, [] { return not_implemented("train"); });
}

}  // namespace gradzip::cli
