// `gradzip placement`: prints the placement plan of a model over parameter-server shards
// (comm::make_layout: the same computation workers and shards do) and its imbalance.
#include "experiments/cmd_placement.h"

#include <iostream>

#include <nlohmann/json.hpp>

#include "comm/layout.h"
#include "experiments/commands.h"
#include "experiments/options.h"
#include "trainer/models.h"

namespace gradzip::cli {

void bind_placement_options(OptionTable* t, PlacementOptions* o) {
  t->group("Placement");
  t->add("model", &o->model, "model whose parameters are placed");
  t->add("shards", &o->shards, "number of shards", Range{1, 1024});
  t->add_choice("strategy", &o->strategy, {"balanced", "round-robin", "partitioned"},
                "placement strategy: balanced (largest tensor to the least-loaded shard), round-robin (by "
                "tensor), partitioned (tensors cut into bucket-size pieces spread greedily)");
  t->add("bucket-mb", &o->bucket_mb, "gradient bucket size in MiB", Range{0.001, 4096.0});
  t->add_choice("format", &o->format, {"table", "json"}, "output format");
}

int cmd_placement(int argc, char** argv) {
  PlacementOptions opt;
  OptionTable table("placement", "Show how a model's parameters are placed on parameter-server shards.");
  bind_placement_options(&table, &opt);
  return run_command(table, argc, argv, [&opt] {
    trainer::ModelSpec spec;  // CIFAR-shaped input (3x32x32, 10 classes) by default
    spec.name = opt.model;
    comm::ModelSignature sig;
    try {
      sig.tensors = trainer::model_parameters(spec);
    } catch (const std::exception& e) {
      throw UsageError(std::string("--model: ") + e.what());
    }
    comm::PlacementOptions p;
    p.num_shards = static_cast<std::uint32_t>(opt.shards);
    p.strategy = placement_strategy(opt.strategy);
    p.bucket_bytes = std::max<std::uint64_t>(4, static_cast<std::uint64_t>(opt.bucket_mb * 1048576.0) / 4 * 4);
    const comm::Layout layout = comm::make_layout(sig, p);
    if (opt.format == "json") {
      nlohmann::json j;
      j["placement"] = p.canonical();
      j["parameters"] = layout.total_numel;
      j["imbalance"] = layout.imbalance();
      j["shard_bytes"] = nlohmann::json::array();
      for (auto n : layout.shard_numel) j["shard_bytes"].push_back(4 * n);
      j["buckets"] = nlohmann::json::array();
      for (const auto& b : layout.buckets) {
        j["buckets"].push_back({{"id", b.id}, {"shard", b.shard}, {"offset", b.offset}, {"numel", b.numel},
                                {"compressed", b.compressed}});
      }
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << "model " << opt.model << "\n" << layout.describe(sig);
    }
    return static_cast<int>(kExitOk);
  });
}

}  // namespace gradzip::cli
