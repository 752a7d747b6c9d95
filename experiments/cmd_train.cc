// `gradzip train`: binds the train options (experiments/train/options.h) and runs the
// path they select (experiments/train/run.h); --resume continues a stopped run
// (experiments/train/resume.h).
#include "experiments/commands.h"
#include "experiments/train/resume.h"
#include "experiments/train/run.h"

namespace gradzip::cli {

int run_train(const TrainOptions& given, const OptionTable& table) {
  const bool whole_run = given.role.empty();
  if (!given.resume.empty() && !whole_run) {
    throw UsageError("--resume continues a whole run; one shard or worker process takes --resume-step");
  }
  if (given.role == "shard") return run_shard_role(given);
  if (given.role == "worker") return run_worker_role(given);
  if (!whole_run) throw UsageError("--role " + given.role + ": allowed shard | worker (or empty)");
  const bool here = given.cluster == "sim" || given.cluster == "local" || given.cluster == "netem";
  if (!here) {
    if (!given.resume.empty() || given.run.resume_step > 0) {
      throw UsageError("--resume and --resume-step: supported with --cluster sim, local and netem (and for ps and "
                       "worker processes started by hand), not yet under --cluster " + given.cluster);
    }
    return run_cluster_rank(given, table);
  }
  if (given.resume.empty() && given.run.resume_step > 0) {
    throw UsageError("--resume-step is for one shard or worker process; continue a whole run with --resume RUN_DIR");
  }
  // The run directory is fixed here: its checkpoints live in it.
  TrainOptions o = given;
  if (o.run.run_dir.empty()) o.run.run_dir = runlog::default_run_dir("train");
  std::unique_ptr<ResumeState> resume;
  if (!o.resume.empty()) {
    resume = std::make_unique<ResumeState>(prepare_resume(o, plan_run(o)));
    o.run.resume_step = resume->step;
  }
  if (o.cluster == "sim") return run_sim(o, table, resume.get());
  return run_local_cluster(o, table, resume.get());
}

int cmd_train(int argc, char** argv) {
  TrainOptions opt;
  OptionTable table("train", "Train a model with compressed gradient communication and write a run directory.");
  bind_train_options(&table, &opt);
  return run_train_command(table, argc, argv, [&] { return run_train(opt, table); });
}

}  // namespace gradzip::cli
