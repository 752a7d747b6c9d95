// `gradzip train`: binds the train options (experiments/train/options.h) and runs the
// path they select (experiments/train/run.h).
#include "experiments/commands.h"
#include "experiments/train/run.h"

namespace gradzip::cli {

int run_train(const TrainOptions& o, const OptionTable& table) {
  if (o.role == "shard") return run_shard_role(o);
  if (o.role == "worker") return run_worker_role(o);
  if (!o.role.empty()) throw UsageError("--role " + o.role + ": allowed shard | worker (or empty)");
  if (o.cluster == "sim") return run_sim(o, table);
  if (o.cluster == "local" || o.cluster == "netem") return run_local_cluster(o, table);
  return run_cluster_rank(o, table);
}

int cmd_train(int argc, char** argv) {
  TrainOptions opt;
  OptionTable table("train", "Train a model with compressed gradient communication and write a run directory.");
  bind_train_options(&table, &opt);
  return run_command(table, argc, argv, [&] { return run_train(opt, table); });
}

}  // namespace gradzip::cli
