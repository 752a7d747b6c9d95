// Sweeps: a sweep file names a base config and axes (codecs x workers x links x seeds,
// or any `gradzip train` option); it expands into the cross product of runs, each in its
// own run directory under one output folder. Resumable: a run whose directory already
// holds a valid summary.json is skipped. Runs go in parallel up to a limit, each as a
// child process (`gradzip train --config BASE --<key> <value>... --run-dir DIR`).
//
// Sweep file (INI; '#' or ';' start a comment):
//
//   [sweep]
//   base = experiments/configs/quickstart.ini   # relative paths: to the sweep file
//   out = runs/codec-sweep                       # relative: to the working directory
//   parallel = 2                                 # runs at once
//   timeout = 3600                               # seconds per run, then it is killed
//   names = varying                              # run names: varying (default) | all axes
//   [axes]                                       # one line per axis, values separated by spaces
//   codecs = identity fp16 ef+qsgd:bits=4 ef+topk:ratio=0.01
//   workers = 2 4
//   links = eth1g eth10g
//   seeds = 1 2 3
//   [fixed]                                      # options given to every run
//   epochs = 2
//
// Axis and fixed keys are `gradzip train` option names; the plural aliases codecs,
// links, seeds map to compressor, link, seed. Spec strings contain no spaces (quant/spec.h),
// so spaces separate values. Axes expand in file order, the last one varying fastest.
// A run's name joins option=value of its axes with more than one value (every axis when
// there is only one, or when `names = all`): with `names = all`, sweeps that share one out
// folder and differ in single-valued axes (e.g. `aggregation = powersgd`, or a `downlink`)
// keep apart runs that would otherwise both be called `seed=1`.
#pragma once

#include <cstdint>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace gradzip::experiments {

/// A malformed sweep file or a bad sweep setting; names the file and line.
class SweepError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SweepSpec {
  std::string base_config;  ///< config file given to every run with --config (may be empty)
  std::string out_dir;      ///< folder holding one directory per run
  int parallel = 1;         ///< runs at once, >= 1
  double run_timeout_s = 3600;  ///< a run still going after this is killed and counted failed
  bool name_every_axis = false;  ///< `names = all`: single-valued axes are named in run names too
  std::vector<std::pair<std::string, std::string>> fixed;  ///< option -> value for every run
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;  ///< option -> values
};

/// Reads and validates a sweep file (see the header comment). Throws SweepError.
SweepSpec parse_sweep_file(const std::string& path);
/// Same, from text; `origin` names the source in errors and `base_dir` resolves a
/// relative base config path ("" leaves it as written).
SweepSpec parse_sweep_text(const std::string& text, const std::string& origin, const std::string& base_dir);

/// One expanded run.
struct SweepRun {
  std::string name;  ///< directory name, e.g. "compressor=ef+qsgd_bits=4__seed=1" (file-name safe)
  std::string dir;   ///< out_dir/name
  std::vector<std::pair<std::string, std::string>> settings;  ///< fixed then axis values, option -> value
};

/// The cross product of the axes, in order (last axis fastest). Names are unique.
std::vector<SweepRun> expand_sweep(const SweepSpec& spec);

/// True when `run_dir` holds a summary.json that parses as a JSON object and, if it has
/// a "status" field, says "complete" (what a finished `gradzip train` writes).
bool run_finished(const std::string& run_dir);

/// One line about a finished run from its summary.json, e.g. "final test accuracy 71.20%
/// (best 72.00%), 1152 steps, 2.0 MB up, 30.4 MB down" (final_test_accuracy,
/// best_test_accuracy, steps, bytes_up, bytes_down); fields the summary lacks are left
/// out, and "" when there is no readable summary.json.
std::string run_result_line(const std::string& run_dir);

/// How to start one run: argv prefix (e.g. {"/path/gradzip", "train"}); the runner
/// appends --config BASE (when set), then --<option> <value> per setting, then --run-dir DIR.
struct SweepRunnerOptions {
  std::vector<std::string> command;
  bool dry_run = false;  ///< only list what would run
  /// Progress lines, flushed as they happen (nullptr: none): how many runs were already
  /// finished, then for each run its start and its end — runs done / total, elapsed time,
  /// an estimate of the time left (elapsed / runs ended so far x runs still to end) and
  /// the run's result line (run_result_line) or why it failed — and, while runs go on,
  /// a line every `heartbeat_s` naming them. `gradzip sweep` prints them on stdout.
  std::ostream* progress = &std::cout;
  double heartbeat_s = 300;  ///< seconds between "still running" lines
};

struct SweepResult {
  std::vector<std::string> skipped;    ///< already finished (summary.json present)
  std::vector<std::string> completed;  ///< ran and exited 0
  std::vector<std::string> failed;     ///< exited non-zero, was killed, or timed out ("name: reason")
  std::vector<std::string> planned;    ///< dry run: the command lines that would run
};

/// Runs every unfinished run of `spec`, at most spec.parallel at once, each in its own
/// process group (a timeout kills the group). An unfinished run directory (left by a
/// failed or interrupted attempt) is removed before its run starts again. Each child's
/// stdout/stderr go to <out>/logs/<name>.log and its argv to <out>/logs/<name>.cmd.
/// Throws SweepError when the output folder cannot be created.
SweepResult run_sweep(const SweepSpec& spec, const SweepRunnerOptions& options);

}  // namespace gradzip::experiments
