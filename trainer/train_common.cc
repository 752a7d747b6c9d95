// Torch-free parts of the trainer API: signatures, data loading per config, reports.
#include <cstdio>

#include "quant/registry.h"
#include "quant/rules.h"
#include "trainer/errors.h"
#include "trainer/records.h"
#include "trainer/train.h"

namespace gradzip::trainer {

comm::ModelSignature make_signature(const TrainConfig& config, int channels, int height, int width, int classes) {
  ModelSpec spec;
  spec.name = config.model;
  spec.channels = channels;
  spec.height = height;
  spec.width = width;
  spec.classes = classes;
  spec.base_width = config.base_width;
  comm::ModelSignature sig;
  sig.tensors = model_parameters(spec);
  sig.compressor_spec = quant::run_compressor_string(config.compressor, config.memory, config.compressor_rules);
  sig.downlink_spec = config.downlink;
  sig.placement = config.placement.canonical();
  return sig;
}

DataSplit load_config_data(const TrainConfig& config) {
  DataSplit s;
  if (config.dataset == "synthetic") {
    s = make_synthetic(config.synthetic);
  } else if (config.dataset == "records") {
    s.train = read_records(list_record_shards(config.data_dir, "train"));
    s.test = read_records(list_record_shards(config.data_dir, "test"));
  } else {
    s = load_dataset(config.dataset, config.data_dir);
  }
  s.train = take_first(s.train, config.train_subset);
  s.test = take_first(s.test, config.test_subset);
  if (s.train.size() == 0 || s.test.size() == 0) {
    throw DataError(config.data_dir, "data set '" + config.dataset + "' has an empty train or test split");
  }
  return s;
}

void set_shard_checkpoints(const TrainConfig& config, std::uint64_t steps_per_epoch, comm::ShardOptions* shard) {
  shard->checkpoint_dir = config.checkpoint_dir;
  shard->checkpoint_every =
      config.checkpoint_dir.empty() ? 0 : static_cast<std::uint64_t>(config.checkpoint_every) * steps_per_epoch;
  shard->restore = config.resume_step > 0;
  shard->restore_version = config.resume_step;
}

AugmentOptions default_augment(const std::string& dataset, int channels) {
  AugmentOptions a;
  if (channels == 3 || dataset == "cifar10" || dataset == "cifar100") {
    a.crop_padding = 4;
    a.horizontal_flip = true;
  }
  return a;
}

std::string dominant_stage(const StageSeconds& s) {
  const std::pair<const char*, double> stages[] = {
      {"data_wait", s.data_wait}, {"h2d", s.h2d},   {"compute", s.compute},     {"d2h", s.d2h},
      {"encode", s.encode},       {"send", s.send}, {"pull_wait", s.pull_wait}, {"apply", s.apply}};
  const char* best = "none";
  double v = 0;
  for (const auto& st : stages) {
    if (st.second > v) {
      v = st.second;
      best = st.first;
    }
  }
  return best;
}

std::string TrainResult::bottleneck_report() const {
  const std::pair<const char*, double> rows[] = {
      {"data_wait", stages.data_wait}, {"h2d", stages.h2d},   {"compute", stages.compute},
      {"d2h", stages.d2h},             {"encode", stages.encode}, {"send", stages.send},
      {"pull_wait", stages.pull_wait}, {"apply", stages.apply}};
  const double total = stages.total();
  std::string out;
  char line[128];
  for (const auto& r : rows) {
    std::snprintf(line, sizeof(line), "%-10s %10.3f s  %5.1f%%\n", r.first, r.second, total > 0 ? 100 * r.second / total : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof(line), "dominant stage: %s; device compute fraction %.1f%%\n", bottleneck.c_str(),
                100 * device_fraction);
  return out + line;
}

}  // namespace gradzip::trainer
