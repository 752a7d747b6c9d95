// `gradzip worker` options; the worker loop is not written yet.
#include "experiments/cmd_worker.h"

#include "experiments/commands.h"

#include <cstdio>
#include <sstream>

#include "comm/zmq_client.h"
#include "quant/rules.h"
#include "trainer/train.h"

namespace gradzip::cli {

void bind_worker_options(OptionTable* t, WorkerOptions* o) {
  t->group("Worker");
  t->add("connect", &o->connect, "comma-separated ZeroMQ endpoints of the shards, shard 0 first");
  t->add("cluster-file", &o->cluster_file, "cluster file with every shard and worker address (overrides --connect)");
  t->add("worker-rank", &o->worker_rank, "index of this worker in [0, workers)", Range{0, 4095});
  t->add("epochs", &o->epochs, "passes over this worker's part of the training set", Range{1, 100000});
  t->add("max-steps", &o->max_steps, "stop after this many steps; 0 = no limit", Range{0, 9.0e18});
  bind_model_data_options(t, &o->data);
  bind_compression_options(t, &o->compression);
  bind_topology_options(t, &o->topology);
  bind_run_options(t, &o->run);
  t->add_check([o] {
    if (o->worker_rank >= o->topology.workers) {
      throw UsageError("--worker-rank " + std::to_string(o->worker_rank) + " must be < --workers " +
                       std::to_string(o->topology.workers));
    }
  });
}

int cmd_worker(int argc, char** argv) {
  WorkerOptions opt;
  OptionTable table("worker", "Run one training worker that talks to the parameter-server shards.");
  bind_worker_options(&table, &opt);
  return run_command(table, argc, argv, [&opt] {
    if (!opt.cluster_file.empty()) throw UsageError("--cluster-file is not supported by the worker yet; use --connect");
    trainer::TrainConfig cfg;
    cfg.model = opt.data.model;
    cfg.dataset = opt.data.dataset;
    cfg.data_dir = opt.data.data_dir;
    cfg.batch_size = static_cast<std::size_t>(opt.data.batch_size);
    cfg.loader_threads = opt.data.loader_threads;
    cfg.device = opt.data.device == "auto" ? "cpu" : opt.data.device;
    cfg.compressor = opt.compression.compressor;
    cfg.memory = opt.compression.memory;
    if (!opt.compression.compressor_rules.empty()) {
      try {
        cfg.compressor_rules = quant::read_rules_argument(opt.compression.compressor_rules);
      } catch (const quant::SpecError& e) {
        throw UsageError(e.what());
      }
    }
    cfg.workers = static_cast<std::uint32_t>(opt.topology.workers);
    cfg.placement.num_shards = static_cast<std::uint32_t>(opt.topology.shards);
    cfg.placement.bucket_bytes = static_cast<std::uint64_t>(opt.compression.bucket_mb * (1 << 20));
    cfg.placement.min_compress_numel = opt.compression.min_compress_numel;
    // The CLI's placement names, mapped onto comm/layout.h's strategies.
    const std::string& pl = opt.topology.placement;
    try {
      cfg.placement.strategy = comm::parse_placement_strategy(pl == "balanced" ? "greedy" : pl == "round-robin" ? "round_robin" : pl);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--placement: ") + e.what());
    }
    cfg.epochs = opt.epochs;
    cfg.max_steps = static_cast<std::uint64_t>(opt.max_steps);
    cfg.seed = opt.run.seed;
    cfg.augment = trainer::default_augment(cfg.dataset, cfg.dataset == "cifar10" || cfg.dataset == "cifar100" ? 3 : 1);

    comm::ZmqClientOptions zo;
    zo.client.placement = cfg.placement;
    std::stringstream endpoints(opt.connect);
    for (std::string ep; std::getline(endpoints, ep, ',');) {
      if (!ep.empty()) zo.shard_endpoints.push_back(ep);
    }
    if (zo.shard_endpoints.size() != cfg.placement.num_shards) {
      throw UsageError("--connect lists " + std::to_string(zo.shard_endpoints.size()) + " endpoints but --shards is " +
                       std::to_string(cfg.placement.num_shards));
    }
    comm::ZmqWorkerTransport transport(zo);
    const auto rank = static_cast<std::uint32_t>(opt.worker_rank);
    const trainer::TrainResult r = trainer::run_worker(cfg, transport, rank, [rank](const trainer::EpochMetrics& m) {
      std::printf("worker %u epoch %d steps %llu train_loss %.4f train_acc %.4f test_acc %.4f up %llu B down %llu B %.1f s\n",
                  rank, m.epoch, static_cast<unsigned long long>(m.steps), m.train_loss, m.train_accuracy,
                  m.test_accuracy, static_cast<unsigned long long>(m.bytes_up),
                  static_cast<unsigned long long>(m.bytes_down), m.seconds);
      std::fflush(stdout);
    });
    transport.shutdown();
    std::printf("%s", r.bottleneck_report().c_str());
    return 0;
  });
}

}  // namespace gradzip::cli
