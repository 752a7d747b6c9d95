// From options to a training run: the one builder of the trainer's config (for train,
// ps, launch and worker alike), the run plan every path starts from (data size, model
// signature, bucket layout, canonical compressor spec), and the run directory of a
// training run. trainer/train.h is torch-free: so is this file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/layout.h"
#include "comm/transport.h"
#include "experiments/runlog/rundir.h"
#include "experiments/train/options.h"
#include "trainer/train.h"

namespace gradzip::cli {

/// Steps per epoch as the trainer computes them: each worker trains on an equal shard of
/// the training set, `batch` images per step (trainer/worker.cc).
std::uint64_t steps_per_epoch(std::size_t train_images, int workers, int batch);

/// The codec of a --downlink value: "dense", "CODEC[:k=v]" or "ef+CODEC[:k=v]" (the
/// shards' downlink always keeps the replica x^, server-side error feedback, so "ef+"
/// names what happens anyway). Throws UsageError for any other memory.
std::string downlink_codec(const std::string& downlink);

/// The trainer's config from the shared options. `train_images` is the size of the
/// (subset of the) training set, for turning epochs into steps (LR schedule, warm-up).
/// Throws UsageError for what the trainer cannot do (eval every N > 1 epochs, a
/// compressed downlink outside sync mode, unevenly spaced LR milestones, a batch larger
/// than a worker's share of the data, checkpoints without a directory). The checkpoint
/// directory is --checkpoint-dir, else <--run-dir>/checkpoints.
trainer::TrainConfig make_train_config(const TrainingOptions& o, std::size_t train_images);

/// What every training path (sim, local, netem, cluster ranks, ps, worker) starts from.
struct RunPlan {
  trainer::TrainConfig cfg;
  comm::ModelSignature signature;
  comm::Layout layout;
  std::size_t train_images = 0;
  std::string compressor_spec;        ///< canonical "[memory+]codec:..." of cfg.compressor
  std::uint64_t parameters = 0;       ///< model parameter count
  std::vector<double> shard_fraction; ///< each shard's share of the parameters (sum 1)
  /// summary.json facts of the compressor: "buckets" (every bucket's tensors and resolved
  /// spec) and, for --compressor auto, "auto" (the choice; experiments/auto_choice.h).
  nlohmann::json compressor_facts;
};

/// Loads the data once (for its size and shape), builds the config, resolves
/// --compressor auto and --compressor-rules, checks the compressor spec and computes the
/// layout. Bad data, config, spec or rules: UsageError.
RunPlan plan_run(const TrainingOptions& o);

/// Creates the run directory (--run-dir, or a fresh one under runs/) with its resolved
/// config.ini (section [train]: re-runs use `gradzip train --config`), host.json and
/// the declared metrics columns. `allow_existing`: the directory may already hold
/// procs/ (cluster ranks create it), but never another run's summary.json.
std::unique_ptr<runlog::RunDir> open_run_dir(const TrainOptions& o, const OptionTable& table,
                                             bool allow_existing = false);

/// The resolved configuration as a run directory's config.ini: section [train], and
/// `resume` always empty (re-running a config.ini starts a new run).
std::string run_config_ini(const OptionTable& table);

/// summary.json's fixed facts of a whole run: compressor, augmentation, workers, shards,
/// cluster, model, dataset, link, parameters, train_images.
nlohmann::json summary_facts(const TrainOptions& o, const RunPlan& plan, const std::string& link_name);

/// summary.json's "stages": seconds per step stage.
nlohmann::json stages_json(const trainer::StageSeconds& s);

}  // namespace gradzip::cli
