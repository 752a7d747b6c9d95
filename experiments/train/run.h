// `gradzip train` and its paths: one whole run (workers, shards and links simulated in
// one process, or spread over local processes / network namespaces / a cluster), or one
// shard or worker process of a multi-process run. Every path that runs the whole job
// writes the same run directory (experiments/runlog/rundir.h) through one RunRecorder
// (experiments/train/accounting.h).
//
//   sim.cc            --cluster sim: trainer::run_training in this process
//   local_cluster.cc  --cluster local|netem: shard and worker processes under comm::run_launch
//   roles.cc          --role shard|worker: one process; `gradzip worker`
//   cluster_rank.cc   --cluster slurm|mpi|FILE: this rank's role; worker 0 records the run
//   resume.cc         --resume RUN_DIR: where a stopped run continues
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "comm/transport.h"
#include "experiments/train/options.h"
#include "trainer/train.h"

namespace gradzip::cli {

/// Runs what the resolved options describe: the whole job (role empty: sim, local, netem,
/// or this process's part of a FILE/slurm/mpi cluster) or one shard/worker process.
/// Also the body of `gradzip ps` (role shard) and `gradzip launch` (cluster local/netem).
int run_train(const TrainOptions& opt, const OptionTable& table);

struct ResumeState;
/// `resume`: null for a new run; else the run continues (experiments/train/resume.h).
int run_sim(const TrainOptions& o, const OptionTable& table, const ResumeState* resume = nullptr);
int run_local_cluster(const TrainOptions& o, const OptionTable& table, const ResumeState* resume = nullptr);
int run_cluster_rank(TrainOptions o, const OptionTable& table);

/// --role shard: serves shard --rank on --bind until every worker said goodbye.
int run_shard_role(const TrainOptions& o);

/// Called after each epoch of a worker process with its metrics and its transport's
/// cumulative counters.
using WorkerEpochFn = std::function<void(const trainer::EpochMetrics&, const comm::TrafficCounters&)>;

/// What a worker process ends with.
struct WorkerOutcome {
  trainer::TrainResult result;
  comm::TrafficCounters traffic;  ///< this worker's transport counters at the end
};

/// One worker process: connects to the shards at `endpoints` (shard 0 first, --shards of
/// them: split_endpoints), trains worker `rank` of the run `o` describes, says goodbye.
WorkerOutcome run_worker_process(const TrainingOptions& o, std::uint32_t rank, const std::vector<std::string>& endpoints,
                                 const WorkerEpochFn& on_epoch);

/// --role worker: run_worker_process, appending one line per epoch and a final line to
/// <run>/procs/worker<R>.jsonl (format: experiments/train/accounting.h). `each_epoch` is
/// called after each line was written (cluster worker 0 merges the lines there).
int run_worker_role(const TrainOptions& o, const std::function<void()>& each_epoch = {});

/// Splits "a,b,c" into endpoints; throws UsageError naming `option` when their count is
/// not `shards`.
std::vector<std::string> split_endpoints(const std::string& list, const std::string& option, std::uint32_t shards);

}  // namespace gradzip::cli
