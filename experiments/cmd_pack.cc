// `gradzip pack` options; the body is not written yet.
#include "experiments/cmd_pack.h"

#include "experiments/commands.h"

namespace gradzip::cli {

void bind_pack_options(OptionTable* t, PackOptions* o) {
  t->group("Pack");
  t->add("dataset", &o->dataset, "dataset name, e.g. fashion-mnist");
  t->add("data-dir", &o->data_dir, "directory holding the original dataset files");
  t->add("output", &o->output, "output directory (required)");
  t->add_choice("split", &o->split, {"all", "train", "test"}, "which split(s) to pack");
  t->add("shards", &o->shards, "output files per split", Range{1, 4096});
}

int cmd_pack(int argc, char** argv) {
  PackOptions opt;
  OptionTable table("pack", "Pack a dataset into gradzip's binary format for fast loading.");
  bind_pack_options(&table, &opt);
  return run_command(table, argc, argv, [&opt] {
    if (opt.output.empty()) throw UsageError("--output is required");
    return not_implemented("pack");
  });
}

}  // namespace gradzip::cli
