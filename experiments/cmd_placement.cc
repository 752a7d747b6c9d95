// `gradzip placement` options; the body is not written yet.
#include "experiments/cmd_placement.h"

#include "experiments/commands.h"

namespace gradzip::cli {

void bind_placement_options(OptionTable* t, PlacementOptions* o) {
  t->group("Placement");
  t->add("model", &o->model, "model whose parameters are placed");
  t->add("shards", &o->shards, "number of shards", Range{1, 1024});
  t->add_choice("strategy", &o->strategy, {"balanced", "round-robin", "hash"}, "placement strategy");
  t->add("bucket-mb", &o->bucket_mb, "gradient bucket size in MiB", Range{0.001, 4096.0});
  t->add_choice("format", &o->format, {"table", "json"}, "output format");
}

int cmd_placement(int argc, char** argv) {
  PlacementOptions opt;
  OptionTable table("placement", "Show how a model's parameters are placed on parameter-server shards.");
  bind_placement_options(&table, &opt);
  return run_command(table, argc, argv, [] { return not_implemented("placement"); });
}

}  // namespace gradzip::cli
