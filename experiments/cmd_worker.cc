// `gradzip worker`: one worker of a run whose shards were started with `gradzip ps`
// (same training options; experiments/train/run.h: run_worker_process). Prints one line
// per epoch and the step-time breakdown at the end.
#include "experiments/cmd_worker.h"

#include <cstdio>

#include "comm/cluster.h"
#include "experiments/commands.h"
#include "experiments/train/run.h"

namespace gradzip::cli {

int cmd_worker(int argc, char** argv) {
  WorkerOptions opt;
  OptionTable table("worker", "Run one training worker that talks to the parameter-server shards.");
  bind_worker_options(&table, &opt);
  return run_command(table, argc, argv, [&opt] {
    const auto shards = static_cast<std::uint32_t>(opt.topology.shards);
    std::vector<std::string> endpoints;
    if (opt.cluster_file.empty()) {
      endpoints = split_endpoints(opt.connect, "--connect", shards);
    } else {
      try {
        endpoints = comm::load_cluster_file(opt.cluster_file).shard_endpoints();
      } catch (const std::runtime_error& e) {
        throw UsageError(e.what());
      }
      if (endpoints.size() != shards) {
        throw UsageError("--cluster-file lists " + std::to_string(endpoints.size()) + " shards, --shards is " +
                         std::to_string(shards));
      }
    }
    const auto rank = static_cast<std::uint32_t>(opt.worker_rank);
    const WorkerOutcome w =
        run_worker_process(opt, rank, endpoints, [rank](const trainer::EpochMetrics& m, const comm::TrafficCounters&) {
          std::printf("worker %u epoch %d steps %llu train_loss %.4f train_acc %.4f test_acc %.4f up %llu B down %llu B "
                      "%.1f s\n",
                      rank, m.epoch, static_cast<unsigned long long>(m.steps), m.train_loss, m.train_accuracy,
                      m.test_accuracy, static_cast<unsigned long long>(m.bytes_up),
                      static_cast<unsigned long long>(m.bytes_down), m.seconds);
          std::fflush(stdout);
        });
    std::printf("%s", w.result.bottleneck_report().c_str());
    return static_cast<int>(kExitOk);
  });
}

}  // namespace gradzip::cli
