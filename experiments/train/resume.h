// `gradzip train --resume RUN_DIR`: continues a stopped run (killed, crashed, or ended by
// --max-steps) in its own run directory.
//
//  1. The command line gets `--config RUN_DIR/config.ini --run-dir RUN_DIR` (so the run's
//     configuration applies and options given with --resume override it).
//  2. The resume point is the newest step at which every shard and every worker left a
//     valid checkpoint (comm::find_resume_point; newer, incomplete or corrupt files are
//     named in the log and the "resume" event) and metrics.csv holds the epoch ending
//     there. No such step: comm::CheckpointError naming the missing or corrupt file.
//  3. metrics.csv keeps the rows of the epochs up to that step (later ones, which the
//     resumed run redoes, are dropped) and grows from there; events.jsonl gets a "resume"
//     event; summary.json, rewritten at the end, covers the whole run (steps, bytes and
//     time continue from the last kept row; "resumes" lists each resume).
//  4. The shards restore their checkpoints of that step, the workers their error-feedback
//     memory and BatchNorm statistics (--resume-step for the processes of a local run).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/train/accounting.h"
#include "experiments/train/config.h"

namespace gradzip::cli {

/// Parses `gradzip train|launch` arguments with `table`, adding the run's configuration
/// when --resume RUN_DIR is given (step 1), and runs `body` (cli::run_command).
int run_train_command(OptionTable& table, int argc, char** argv, const std::function<int()>& body);

/// Where a stopped run continues.
struct ResumeState {
  std::uint64_t step = 0;                  ///< resume point (an epoch end)
  std::vector<experiments::EpochRow> kept; ///< metrics rows up to it
  double modeled_comm_s = 0;               ///< the last kept row's modeled_comm_s
  std::vector<std::string> skipped;        ///< newer checkpoint files passed over ("path: problem")
  nlohmann::json event;                    ///< fields of the "resume" event
  nlohmann::json resumes;                  ///< summary.json "resumes", this one appended
};

/// Finds the resume point of the run in o.run.run_dir (step 2). Throws UsageError when
/// the run directory is not a training run or there is nothing left to train, and
/// comm::CheckpointError when no step is complete.
ResumeState prepare_resume(const TrainOptions& o, const RunPlan& plan);

/// Opens the run directory of a resumed run: rewrites config.ini and host.json, continues
/// metrics.csv after the kept rows (step 3).
std::unique_ptr<runlog::RunDir> reopen_run_dir(const TrainOptions& o, const OptionTable& table,
                                               const ResumeState& resume);

/// Sets up `recorder` (after begin()) to continue the kept rows, logs the resume event
/// (and each checkpoint file passed over, in `run`'s log) and records the resumes list
/// in the summary.
void continue_recording(const ResumeState& resume, runlog::RunDir* run, experiments::RunRecorder* recorder);

}  // namespace gradzip::cli
