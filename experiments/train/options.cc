// Binding of the train and worker options (see options.h).
#include "experiments/train/options.h"

#include <fstream>

#include "experiments/curve_keys.h"
#include "experiments/train/collective.h"
#include "experiments/link_model.h"
#include "trainer/augment_spec.h"
#include "trainer/errors.h"

namespace gradzip::cli {

void bind_training_options(OptionTable* t, TrainingOptions* o, const std::function<void()>& command_groups) {
  bind_model_data_options(t, &o->data);
  t->group("Training");
  t->add("epochs", &o->epochs, "passes over the training set", Range{1, 100000});
  t->add("max-steps", &o->max_steps, "stop after this many steps per worker; 0 = no limit", Range{0, 9.0e18});
  t->add("eval-every", &o->eval_every, "epochs between test-set evaluations", Range{1, 100000});
  t->add("augment", &o->augment,
         "training augmentation: none, or transforms among scale:min=F, crop:pad=N, flip, "
         "colour:brightness=F,contrast=F, pca:sigma=F (e.g. crop:pad=4,flip; see README)");
  t->add("tta", &o->tta, "test-time augmentation: average predictions over flips and 2-pixel shifts");
  bind_optimizer_options(t, &o->optimizer);
  bind_compression_options(t, &o->compression);
  bind_topology_options(t, &o->topology);
  bind_aggregation_options(t, &o->aggregation);
  t->add("curve-keys", &o->curve_keys,
         "directory written by 'gradzip keys': encrypt and authenticate every connection with CURVE; "
         "empty = plain TCP");
  t->group("Step pipeline");
  t->add_choice("overlap", &o->overlap, {"on", "off"},
                "on: encode and push each gradient bucket as backward completes it, pull per bucket, and start a "
                "layer's forward once its buckets arrived (CPU); off: backward, then push all, then pull");
  t->add("encode-threads", &o->encode_threads, "threads encoding buckets while backward runs (--overlap on)",
         Range{1, 256});
  t->add("inject-fault", &o->inject_fault,
         "testing: hook:STEP makes a gradient hook of worker 0 fail at STEP (--overlap on), push:STEP its pushes; "
         "the run must stop with a typed error and a complete run directory");
  t->add_check([o] {
    if (parse_inject_fault(o->inject_fault).kind == "hook" && o->overlap != "on") {
      throw UsageError("--inject-fault hook:STEP needs --overlap on (the sequential step has no gradient hooks)");
    }
  });
  if (command_groups) command_groups();
  t->group("Quick runs");
  t->add("width", &o->width, "model base width in channels; 0 = the published width", Range{0, 4096});
  t->add("train-subset", &o->train_subset, "train on the first N training images; 0 = all", Range{0, 1e9});
  t->add("test-subset", &o->test_subset, "evaluate on the first N test images; 0 = all", Range{0, 1e9});
  t->add("torch-threads", &o->torch_threads, "torch intra-op threads per process; 0 = default", Range{0, 1024});
  bind_run_options(t, &o->run);
  t->add_check([o] {
    try {
      trainer::parse_augment_spec(o->augment);
    } catch (const trainer::ConfigError& e) {
      throw UsageError(e.what());
    }
    // Absolute, so that the processes a launcher starts elsewhere find the same keys.
    try {
      if (!o->curve_keys.empty()) o->curve_keys = experiments::curve_key_dir(o->curve_keys);
    } catch (const experiments::CurveKeyError& e) {
      throw UsageError(e.what());
    }
  });
}

InjectedFault parse_inject_fault(const std::string& text) {
  InjectedFault f;
  if (text.empty()) return f;
  const auto colon = text.find(':');
  const std::string bad = "bad value '" + text + "' for --inject-fault: expected hook:STEP or push:STEP";
  if (colon == std::string::npos) throw UsageError(bad);
  f.kind = text.substr(0, colon);
  const std::string digits = text.substr(colon + 1);
  if ((f.kind != "hook" && f.kind != "push") || digits.empty() ||
      digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) {
    throw UsageError(bad);
  }
  f.step = std::stoull(digits);
  return f;
}

bool is_cluster_keyword(const std::string& cluster) {
  return cluster == "sim" || cluster == "local" || cluster == "netem" || cluster == "slurm" || cluster == "mpi";
}

void bind_train_options(OptionTable* t, TrainOptions* o) {
  bind_training_options(t, o, [t, o] {
    t->group("Cluster and links");
    t->add("cluster", &o->cluster,
           "sim | local | netem | slurm | mpi | path to a cluster file ({\"ps\": [host:port..], \"worker\": "
           "[host:port..]}; \"ps\": [] under a collective --aggregation, one rank per worker)");
    t->add("link", &o->link, "link model (and netem shaping): pcie3|pcie4|pcie5|nvlink|eth1g|eth10g|eth25g|eth100g "
                             "(1gbe.. aliases) or custom:bw=<n>gbit,lat=<n>us");
    t->add("sim-link-delay", &o->sim_link_delay,
           "--cluster sim: each worker waits for its pushes and pulls to cross its own --link (bandwidth only)");
    t->add_choice("netem-delay", &o->netem_delay, {"on", "off", "if-available"},
                  "netem: add the link's latency with sch_netem (if-available: skip with a warning when missing)");
    t->add("report-links", &o->report_links, "link profiles whose modeled step time goes into summary.json");
    t->add("process-timeout", &o->process_timeout_s, "local/netem: kill every process after this many seconds",
           Range{1, 1e7});
    t->group("Resuming a run");
    t->add("resume", &o->resume,
           "RUN_DIR: continue a stopped run (sim, local, netem) from its newest complete checkpoint "
           "(--checkpoint-every); reads RUN_DIR/config.ini, options given here override it");
    t->group("One process of a multi-process run (set by --cluster local/netem, or by hand)");
    t->add("role", &o->role, "empty: run the whole job; shard | worker: be one process of it");
    t->add("rank", &o->rank, "shard id or worker rank of this process", Range{0, 1 << 20});
    t->add("endpoints", &o->endpoints, "worker: comma-separated shard endpoints tcp://host:port, shard 0 first");
    t->add("bind", &o->bind, "shard: endpoint to bind; empty = tcp://127.0.0.1:0 (port chosen by the OS)");
  });
  t->add_check([o] {
    try {
      experiments::parse_link(o->link);
      experiments::parse_link_list(o->report_links);
    } catch (const experiments::LinkModelError& e) {
      throw UsageError(e.what());
    }
  });
  t->add_check([o] {
    if (is_cluster_keyword(o->cluster)) return;
    std::ifstream f(o->cluster);
    if (!f) {
      throw UsageError("bad value '" + o->cluster +
                       "' for --cluster: not sim|local|netem|slurm|mpi and not a readable cluster file");
    }
  });
}

void bind_worker_options(OptionTable* t, WorkerOptions* o) {
  bind_training_options(t, o, [t, o] {
    t->group("Worker");
    t->add("connect", &o->connect, "comma-separated ZeroMQ endpoints of the shards, shard 0 first");
    t->add("cluster-file", &o->cluster_file,
           "cluster file with every shard and worker address (overrides --connect)");
    t->add("worker-rank", &o->worker_rank, "index of this worker in [0, workers)", Range{0, 4095});
  });
  t->add_check([o] {
    if (o->worker_rank >= o->topology.workers) {
      throw UsageError("--worker-rank " + std::to_string(o->worker_rank) + " must be < --workers " +
                       std::to_string(o->topology.workers));
    }
  });
}

}  // namespace gradzip::cli
