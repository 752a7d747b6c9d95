// The training-config builder and run plan (see config.h).
#include "experiments/train/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "experiments/cmd_train_auto.h"
#include "experiments/train/accounting.h"
#include "experiments/train/collective.h"
#include "quant/registry.h"
#include "quant/rules.h"
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

/// The resolved compressor of every bucket and the tensors it covers (summary.json
/// "buckets").
nlohmann::json bucket_specs_json(const comm::Layout& layout, const comm::ModelSignature& sig) {
  nlohmann::json out = nlohmann::json::array();
  std::size_t t = 0;
  std::uint64_t tensor_begin = 0;
  for (const auto& b : layout.buckets) {
    while (t < sig.tensors.size() && tensor_begin + sig.tensors[t].numel <= b.offset) tensor_begin += sig.tensors[t++].numel;
    nlohmann::json names = nlohmann::json::array();
    std::uint64_t begin = tensor_begin;
    for (std::size_t u = t; u < sig.tensors.size() && begin < b.offset + b.numel; begin += sig.tensors[u++].numel) {
      if (sig.tensors[u].numel > 0) names.push_back(sig.tensors[u].name);
    }
    out.push_back({{"id", b.id}, {"shard", b.shard}, {"offset", b.offset}, {"numel", b.numel}, {"tensors", names},
                   {"spec", b.compressed ? layout.specs[b.spec] : "identity (below --min-compress-numel)"}});
  }
  return out;
}

}  // namespace

std::string downlink_codec(const std::string& downlink) {
  const auto plus = downlink.find('+');
  if (plus == std::string::npos) return downlink;
  if (downlink.compare(0, plus, "ef") == 0) return downlink.substr(plus + 1);
  throw UsageError("--downlink " + downlink + ": the downlink's memory is always server-side error feedback (the "
                   "shards' replica keeps what was not sent); write ef+CODEC or CODEC, e.g. ef+topk:ratio=0.01");
}

std::uint64_t steps_per_epoch(std::size_t train_images, int workers, int batch) {
  return (train_images / static_cast<std::size_t>(workers)) / static_cast<std::size_t>(batch);
}

trainer::TrainConfig make_train_config(const TrainingOptions& o, std::size_t train_images) {
  if (o.eval_every != 1) throw UsageError("--eval-every: the trainer evaluates after every epoch; use 1");
  if (o.compression.downlink != "dense") {
    if (o.topology.mode != comm::SyncMode::kSync) {
      throw UsageError("--downlink " + o.compression.downlink + " needs --mode sync (the shards keep one replica of "
                       "the parameters for all workers; async and ssp pull dense)");
    }
    try {
      quant::make_codec(downlink_codec(o.compression.downlink));
    } catch (const quant::SpecError& e) {
      throw UsageError(std::string("--downlink: ") + e.what());
    }
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
  check_collective_options(o);
  c.placement.num_shards = static_cast<std::uint32_t>(o.topology.shards);  // 1 under collectives
  c.placement.strategy = placement_strategy(o.topology.placement);
  c.placement.bucket_bytes = static_cast<std::uint64_t>(o.compression.bucket_mb * 1048576.0);
  c.placement.min_compress_numel = o.compression.min_compress_numel;
  c.placement.first_bucket_bytes = static_cast<std::uint64_t>(o.compression.first_bucket_mb * 1048576.0);
  c.compressor = aggregation_only(o) ? "identity" : o.compression.compressor;  // thc/powersgd: the transport's
  c.memory = aggregation_only(o) ? "" : o.compression.memory;
  if (ps_powersgd(o)) c.ps_powersgd = quant::parse_compressor_spec(o.compression.compressor).codec;
  if (!o.compression.compressor_rules.empty()) {
    try {
      c.compressor_rules = quant::read_rules_argument(o.compression.compressor_rules);
    } catch (const quant::SpecError& e) {
      throw UsageError(e.what());
    }
  }
  c.downlink = downlink_codec(o.compression.downlink);
  c.downlink_resync_steps = static_cast<std::uint64_t>(o.compression.downlink_resync);
  c.mode = o.topology.mode;
  c.ssp_slack = static_cast<std::uint32_t>(o.topology.slack);
  c.overlap = o.overlap == "on";
  c.encode_threads = o.encode_threads;
  const Straggler straggler = parse_straggler(o.topology.straggler, o.topology.workers);
  c.straggler_worker = straggler.worker;
  c.straggler_factor = straggler.factor;
  const InjectedFault fault = parse_inject_fault(o.inject_fault);
  c.fault_step = fault.step;
  if (fault.kind == "hook") c.fault = trainer::TrainConfig::Fault::kHook;
  if (fault.kind == "push") c.fault = trainer::TrainConfig::Fault::kPush;
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
    const nlohmann::json auto_plan = resolve_auto_compressor(&p.cfg, data.train.channels, data.train.height,
                                                             data.train.width, data.train.classes);
    try {
      p.compressor_spec = quant::run_compressor_string(p.cfg.compressor, p.cfg.memory, p.cfg.compressor_rules);
    } catch (const quant::SpecError& e) {
      throw UsageError(std::string(p.cfg.compressor_rules.empty() ? "--compressor: " : "--compressor-rules: ") +
                       e.what());
    }
    if (p.cfg.augment.pca_jitter > 0 && data.train.channels != 3) {
      throw UsageError("--augment pca: PCA colour jitter needs RGB images; " + o.data.dataset + " has " +
                       std::to_string(data.train.channels) + " channel(s)");
    }
    p.signature = trainer::make_signature(p.cfg, data.train.channels, data.train.height, data.train.width,
                                          data.train.classes);
    try {
      p.layout = comm::make_layout(p.signature, p.cfg.placement);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    check_allreduce_specs(o, p.layout);
    p.compressor_facts = {{"buckets", bucket_specs_json(p.layout, p.signature)}};
    if (!auto_plan.is_null()) p.compressor_facts["auto"] = auto_plan;
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
  nlohmann::json facts = {{"compressor", plan.compressor_spec},
          {"augment", trainer::augment_spec(plan.cfg.augment)},
          {"tta", plan.cfg.tta},
          {"workers", plan.cfg.workers},
          {"shards", uses_collective(o) ? 0u : plan.cfg.placement.num_shards},
          {"aggregation", o.aggregation.aggregation},
          {"aggregation_spec", aggregation_only(o) ? o.compression.compressor : ""},
          {"cluster", o.cluster},
          {"model", plan.cfg.model},
          {"dataset", plan.cfg.dataset},
          {"link", link_name},
          {"parameters", plan.parameters},
          {"train_images", plan.train_images},
          {"mode", comm::sync_mode_name(plan.cfg.mode)},
          {"downlink", plan.cfg.downlink},
          {"buckets", plan.compressor_facts.at("buckets")}};
  if (plan.compressor_facts.contains("auto")) facts["auto"] = plan.compressor_facts.at("auto");
  return facts;
}

nlohmann::json stages_json(const trainer::StageSeconds& s) {
  return {{"data_wait", s.data_wait}, {"h2d", s.h2d},   {"compute", s.compute},     {"d2h", s.d2h},
          {"encode", s.encode},       {"send", s.send}, {"pull_wait", s.pull_wait}, {"apply", s.apply}};
}

}  // namespace gradzip::cli
