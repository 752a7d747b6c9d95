// The training-config builder and run plan (see config.h).
#include "experiments/train/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "experiments/train/accounting.h"
#include "quant/registry.h"
#include "trainer/augment_spec.h"
#include "trainer/errors.h"

#ifndef GRADZIP_TORCH_VERSION
#define GRADZIP_TORCH_VERSION ""
#endif

namespace gradzip::cli {
namespace {

/// comm's step schedule decays every step_size steps, so the milestones (epochs) must be
/// m, 2m, 3m...; returns m.
std::uint64_t milestone_period(const std::string& milestones) {
  std::stringstream ss(milestones);
  std::string item;
  std::vector<long> ms;
  while (std::getline(ss, item, ',')) {
    try {
      ms.push_back(std::stol(item));
    } catch (const std::exception&) {
      throw UsageError("--lr-milestones: '" + item + "' is not an epoch number");
    }
  }
  if (ms.empty() || ms[0] <= 0) throw UsageError("--lr-milestones: needs positive epochs, e.g. 30,60");
  for (std::size_t i = 0; i < ms.size(); ++i) {
    if (ms[i] != ms[0] * static_cast<long>(i + 1)) {
      throw UsageError("--lr-milestones: the PS optimizer decays at evenly spaced epochs (m, 2m, 3m, ...)");
    }
  }
  return static_cast<std::uint64_t>(ms[0]);
}

}  // namespace

std::uint64_t steps_per_epoch(std::size_t train_images, int workers, int batch) {
  return (train_images / static_cast<std::size_t>(workers)) / static_cast<std::size_t>(batch);
}

trainer::TrainConfig make_train_config(const TrainingOptions& o, std::size_t train_images) {
  if (o.eval_every != 1) throw UsageError("--eval-every: the trainer evaluates after every epoch; use 1");
  if (o.topology.mode != comm::SyncMode::kSync) {
    throw UsageError("--mode " + std::string(comm::sync_mode_name(o.topology.mode)) +
                     ": gradzip train runs synchronous SGD (async/ssp: start `gradzip ps --mode` directly)");
  }
  if (o.compression.downlink != "dense") {
    throw UsageError("--downlink " + o.compression.downlink + ": the trainer pulls dense parameters; use dense");
  }
  trainer::TrainConfig c;
  c.model = o.data.model;
  c.base_width = o.width;
  c.dataset = o.data.dataset;
  c.data_dir = o.data.data_dir;
  c.train_subset = static_cast<std::size_t>(o.train_subset);
  c.test_subset = static_cast<std::size_t>(o.test_subset);
  c.epochs = o.epochs;
  c.max_steps = static_cast<std::uint64_t>(o.max_steps);
  c.batch_size = static_cast<std::size_t>(o.data.batch_size);
  c.workers = static_cast<std::uint32_t>(o.topology.workers);
  c.placement.num_shards = static_cast<std::uint32_t>(o.topology.shards);
  c.placement.strategy = placement_strategy(o.topology.placement);
  c.placement.bucket_bytes = static_cast<std::uint64_t>(o.compression.bucket_mb * 1048576.0);
  c.placement.min_compress_numel = o.compression.min_compress_numel;
  c.compressor = o.compression.compressor;
  c.memory = o.compression.memory;
  c.device = o.data.device;
  c.loader_threads = o.data.loader_threads;
  c.seed = o.run.seed;
  c.torch_threads = o.torch_threads;
  c.augment = trainer::parse_augment_spec(o.augment);  // checked when the options were parsed
  c.tta = o.tta;
  c.checkpoint_every = o.run.checkpoint_every;
  c.resume_step = o.run.resume_step;
  if (!o.run.checkpoint_dir.empty()) {
    c.checkpoint_dir = o.run.checkpoint_dir;
  } else if (!o.run.run_dir.empty()) {
    c.checkpoint_dir = (std::filesystem::path(o.run.run_dir) / "checkpoints").string();
  }
  if ((c.checkpoint_every > 0 || c.resume_step > 0) && c.checkpoint_dir.empty()) {
    throw UsageError("--checkpoint-every and --resume-step need --checkpoint-dir or --run-dir");
  }

  const std::uint64_t spe = steps_per_epoch(train_images, o.topology.workers, o.data.batch_size);
  if (spe == 0) {
    throw UsageError("batch size " + std::to_string(o.data.batch_size) + " x " + std::to_string(o.topology.workers) +
                     " workers exceeds the " + std::to_string(train_images) + " training images");
  }
  std::uint64_t total = spe * static_cast<std::uint64_t>(o.epochs);
  if (o.max_steps > 0) total = std::min<std::uint64_t>(total, static_cast<std::uint64_t>(o.max_steps));
  c.optimizer = o.optimizer.sgd;
  c.optimizer.warmup_steps =
      static_cast<std::uint64_t>(std::llround(o.optimizer.warmup_epochs * static_cast<double>(spe)));
  c.optimizer.total_steps = std::max<std::uint64_t>(1, total);
  if (c.optimizer.schedule == comm::LrSchedule::kStep) {
    c.optimizer.step_size = milestone_period(o.optimizer.lr_milestones) * spe;
  }
  return c;
}

RunPlan plan_run(const TrainingOptions& o) {
  trainer::TrainConfig probe;
  probe.dataset = o.data.dataset;
  probe.data_dir = o.data.data_dir;
  probe.train_subset = static_cast<std::size_t>(o.train_subset);
  probe.test_subset = static_cast<std::size_t>(o.test_subset);
  RunPlan p;
  try {
    const trainer::DataSplit data = trainer::load_config_data(probe);
    p.train_images = data.train.size();
    p.cfg = make_train_config(o, p.train_images);
    try {
      p.compressor_spec = quant::make_compressor(p.cfg.compressor, p.cfg.memory).spec();
    } catch (const quant::SpecError& e) {
      throw UsageError(std::string("--compressor: ") + e.what());
    }
    if (p.cfg.augment.pca_jitter > 0 && data.train.channels != 3) {
      throw UsageError("--augment pca: PCA colour jitter needs RGB images; " + o.data.dataset + " has " +
                       std::to_string(data.train.channels) + " channel(s)");
    }
    p.signature = trainer::make_signature(p.cfg, data.train.channels, data.train.height, data.train.width,
                                          data.train.classes);
    p.layout = comm::make_layout(p.signature, p.cfg.placement);
  } catch (const trainer::DataError& e) {
    throw UsageError(e.what());
  } catch (const trainer::ConfigError& e) {
    throw UsageError(e.what());
  }
  p.parameters = p.signature.total_numel();
  for (auto n : p.layout.shard_numel) {
    p.shard_fraction.push_back(static_cast<double>(n) / static_cast<double>(p.parameters));
  }
  return p;
}

std::unique_ptr<runlog::RunDir> open_run_dir(const TrainOptions& o, const OptionTable& table, bool allow_existing) {
  runlog::RunDirOptions rdo;
  rdo.log_level = o.run.log_level;
  rdo.allow_existing = allow_existing;
  const std::string dir = o.run.run_dir.empty() ? runlog::default_run_dir("train") : o.run.run_dir;
  if (allow_existing && std::filesystem::exists(std::filesystem::path(dir) / "summary.json")) {
    throw UsageError("--run-dir " + dir + " already holds a run (summary.json); choose another directory");
  }
  auto run = runlog::RunDir::create(dir, rdo);
  run->write_config(run_config_ini(table));
  run->write_host_info(GRADZIP_TORCH_VERSION);
  run->declare_metrics(experiments::train_metric_columns());
  return run;
}

std::string run_config_ini(const OptionTable& table) {
  std::istringstream in(table.to_ini("train"));
  std::string out;
  for (std::string line; std::getline(in, line);) out += (line.rfind("resume = ", 0) == 0 ? "resume =" : line) + "\n";
  return out;
}

nlohmann::json summary_facts(const TrainOptions& o, const RunPlan& plan, const std::string& link_name) {
  return {{"compressor", plan.compressor_spec},
          {"augment", trainer::augment_spec(plan.cfg.augment)},
          {"tta", plan.cfg.tta},
          {"workers", plan.cfg.workers},
          {"shards", plan.cfg.placement.num_shards},
          {"cluster", o.cluster},
          {"model", plan.cfg.model},
          {"dataset", plan.cfg.dataset},
          {"link", link_name},
          {"parameters", plan.parameters},
          {"train_images", plan.train_images}};
}

nlohmann::json stages_json(const trainer::StageSeconds& s) {
  return {{"data_wait", s.data_wait}, {"h2d", s.h2d},   {"compute", s.compute},     {"d2h", s.d2h},
          {"encode", s.encode},       {"send", s.send}, {"pull_wait", s.pull_wait}, {"apply", s.apply}};
}

}  // namespace gradzip::cli
