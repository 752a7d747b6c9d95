// Binding of the shared option groups (see options.h).
#include "experiments/options.h"

#include <cctype>

namespace gradzip::cli {

comm::OptimizerOptions cli_default_sgd() {
  comm::OptimizerOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  o.nesterov = false;
  o.weight_decay = 5e-4;
  o.schedule = comm::LrSchedule::kCosine;
  o.gamma = 0.1;
  return o;
}

comm::PlacementStrategy placement_strategy(const std::string& name) {
  if (name == "balanced") return comm::PlacementStrategy::kGreedyBytes;
  if (name == "round-robin") return comm::PlacementStrategy::kRoundRobin;
  if (name == "partitioned") return comm::PlacementStrategy::kPartitioned;
  throw UsageError("bad placement '" + name + "': allowed are balanced, round-robin, partitioned");
}

bool valid_device(const std::string& device) {
  if (device == "cpu" || device == "cuda" || device == "auto") return true;
  if (device.rfind("cuda:", 0) != 0 || device.size() == 5) return false;
  for (std::size_t i = 5; i < device.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(device[i]))) return false;
  }
  return device.size() <= 8;
}

void bind_optimizer_options(OptionTable* t, OptimizerOptions* o) {
  t->group("Optimizer (SGD on the parameter-server shards)");
  t->add("lr", &o->sgd.lr, "base learning rate after warm-up", Range{0.0, 1e6});
  t->add("momentum", &o->sgd.momentum, "momentum coefficient; 0 = plain SGD", Range{0.0, 1.0});
  t->add("nesterov", &o->sgd.nesterov, "use Nesterov momentum");
  t->add("weight-decay", &o->sgd.weight_decay, "L2 weight decay coefficient", Range{0.0, 1.0});
  using comm::LrSchedule;
  t->add_enum("lr-schedule", &o->sgd.schedule,
              {{"constant", LrSchedule::kConstant}, {"step", LrSchedule::kStep}, {"cosine", LrSchedule::kCosine}},
              "learning-rate schedule");
  t->add("lr-milestones", &o->lr_milestones, "comma-separated epochs where 'step' multiplies lr by --lr-gamma");
  t->add("lr-gamma", &o->sgd.gamma, "factor applied at each milestone", Range{0.0, 1.0});
  t->add("warmup-epochs", &o->warmup_epochs, "linear warm-up from lr/10, in epochs", Range{0.0, 1e6});
  t->add_check([o] {
    if (o->sgd.schedule == LrSchedule::kStep && o->lr_milestones.empty()) {
      throw UsageError("--lr-schedule step needs --lr-milestones (e.g. 30,60)");
    }
    for (char c : o->lr_milestones) {
      if (!std::isdigit(static_cast<unsigned char>(c)) && c != ',' && c != '.' && c != ' ') {
        throw UsageError("bad value '" + o->lr_milestones + "' for --lr-milestones: expected epochs like 30,60");
      }
    }
  });
}

void bind_compression_options(OptionTable* t, CompressionOptions* o) {
  t->group("Compression (see 'gradzip compressors')");
  t->add("compressor", &o->compressor, "uplink compressor spec [memory+]codec[:key=value,...], e.g. ef+qsgd:bits=4");
  t->add("memory", &o->memory, "error-feedback memory spec; overrides the compressor's memory part when set");
  t->add("compressor-rules", &o->compressor_rules,
         "per-tensor specs, first match wins: FILE or inline 'GLOB=spec;numel<N=spec;...' (e.g. "
         "'*bn*=identity;numel<1024=identity;fc.*=ef+fp16'); unmatched tensors use --compressor");
  t->add("downlink", &o->downlink,
         "'dense' (fp32 parameters) or a codec spec for the parameter delta, with server-side error feedback "
         "(CODEC or ef+CODEC, e.g. ef+topk:ratio=0.01; sync mode)");
  t->add("bucket-mb", &o->bucket_mb, "gradient bucket size in MiB", Range{0.001, 4096.0});
  t->add("first-bucket-mb", &o->first_bucket_mb,
         "size in MiB of the bucket of the last layers (backward's first, pushed earliest; PyTorch DDP uses 1); "
         "0 = --bucket-mb",
         Range{0.0, 4096.0});
  t->add("min-compress-numel", &o->min_compress_numel, "tensors with fewer elements are sent uncompressed");
  t->add("downlink-resync", &o->downlink_resync,
         "compressed downlink: every N steps pull the parameters dense and replace the worker's replica; 0 = never",
         Range{0, 9.0e18});
  t->add_check([o] {
    if (o->downlink_resync > 0 && o->downlink == "dense") {
      throw UsageError("--downlink-resync needs a compressed --downlink (e.g. topk:ratio=0.01)");
    }
  });
}

void bind_topology_options(OptionTable* t, TopologyOptions* o) {
  t->group("Topology and synchronisation");
  t->add("workers", &o->workers, "number of workers", Range{1, 4096});
  t->add("shards", &o->shards, "number of parameter-server shards", Range{1, 1024});
  t->add_choice("placement", &o->placement, {"balanced", "round-robin"},
                "how parameter tensors are placed on shards");
  using comm::SyncMode;
  t->add_enum("mode", &o->mode, {{"sync", SyncMode::kSync}, {"async", SyncMode::kAsync}, {"ssp", SyncMode::kSsp}},
              "aggregation: sync, async, or stale-synchronous (ssp, with --slack)");
  t->add("slack", &o->slack, "steps a worker may run ahead of the slowest one (ssp only)", Range{0, 1000000});
  t->add("worker-timeout", &o->worker_timeout_s, "seconds of silence before a worker is declared dead",
         Range{0.001, 1e7});
  t->add("heartbeat-interval", &o->heartbeat_interval_s,
         "seconds; workers send heartbeats this often and a silent worker is declared dead after --worker-timeout "
         "even between steps (0 = off)",
         Range{0.0, 1e7});
  t->add("straggler", &o->straggler,
         "W:FACTOR: worker W's compute is FACTOR (>= 1) times slower (it sleeps (FACTOR-1) x its forward+backward); "
         "empty = none");
  t->add_check([o] {
    if (o->heartbeat_interval_s > 0 && o->heartbeat_interval_s * 2 > o->worker_timeout_s) {
      throw UsageError("--heartbeat-interval must be at most half of --worker-timeout (" +
                       std::to_string(o->worker_timeout_s) + " s), or a live worker is declared dead");
    }
    if (o->mode == SyncMode::kSsp && o->slack < 1) throw UsageError("--mode ssp needs --slack >= 1");
    if (o->mode != SyncMode::kSsp && o->slack != 0) {
      throw UsageError("--slack is only meaningful with --mode ssp (got --mode " +
                       std::string(comm::sync_mode_name(o->mode)) + ")");
    }
    parse_straggler(o->straggler, o->workers);
  });
}

Straggler parse_straggler(const std::string& text, int workers) {
  Straggler s;
  if (text.empty()) return s;
  const auto colon = text.find(':');
  const std::string bad = "bad value '" + text + "' for --straggler: expected W:FACTOR, e.g. 1:3 (worker 1, 3x slower)";
  if (colon == std::string::npos) throw UsageError(bad);
  try {
    std::size_t used_w = 0, used_f = 0;
    s.worker = std::stoi(text.substr(0, colon), &used_w);
    s.factor = std::stod(text.substr(colon + 1), &used_f);
    if (used_w != colon || used_f != text.size() - colon - 1) throw UsageError(bad);
  } catch (const std::logic_error&) {
    throw UsageError(bad);
  }
  if (s.worker < 0 || s.worker >= workers) {
    throw UsageError("--straggler " + text + ": worker " + std::to_string(s.worker) + " is not in [0, --workers " +
                     std::to_string(workers) + ")");
  }
  if (!(s.factor >= 1.0) || s.factor > 1000.0) {
    throw UsageError("--straggler " + text + ": FACTOR must be in [1, 1000]");
  }
  return s;
}

void bind_model_data_options(OptionTable* t, ModelDataOptions* o) {
  t->group("Model and data");
  t->add("model", &o->model, "model name (see trainer/models)");
  t->add("dataset", &o->dataset, "dataset name, e.g. fashion-mnist");
  t->add("data-dir", &o->data_dir, "directory holding the dataset files");
  t->add("batch-size", &o->batch_size, "samples per worker per step", Range{1, 1 << 20});
  t->add("loader-threads", &o->loader_threads, "data-loader threads per worker", Range{0, 256});
  t->add("device", &o->device, "cpu | cuda | cuda:N | auto");
  t->add_check([o] {
    if (!valid_device(o->device)) {
      throw UsageError("bad value '" + o->device + "' for --device: allowed are cpu, cuda, cuda:N, auto");
    }
  });
}

void bind_run_options(OptionTable* t, RunOptions* o) {
  t->group("Run directory and logging");
  t->add("run-dir", &o->run_dir, "output directory; empty = runs/<UTC time>-<command>");
  t->add_choice("log-level", &o->log_level, {"trace", "debug", "info", "warn", "error"}, "console log level");
  t->add("seed", &o->seed, "master random seed");
  t->add("checkpoint-every", &o->checkpoint_every,
         "epochs between checkpoints of every shard and worker (for --resume); 0 = never", Range{0, 1000000});
  t->add("checkpoint-dir", &o->checkpoint_dir, "checkpoint directory; empty = <run dir>/checkpoints");
  t->add("resume-step", &o->resume_step,
         "start from the shard and worker checkpoints of this step (an epoch end; set by train --resume "
         "for its processes); 0 = fresh start");
}

}  // namespace gradzip::cli
