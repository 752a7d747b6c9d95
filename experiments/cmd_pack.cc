// `gradzip pack` options; the body is not written yet.
#include "experiments/cmd_pack.h"

#include "experiments/commands.h"

#include <cstdio>

#include "trainer/dataset.h"
#include "trainer/records.h"

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
    // Reads the original files (typed DataError naming a bad file) and writes each split
    // as `shards` record files "<split>-NNNNN.gzr" with per-record checksums
    // (trainer/records.h); `gradzip train --dataset records --data-dir <output>` reads them.
    const trainer::DataSplit data = trainer::load_dataset(opt.dataset, opt.data_dir);
    auto pack = [&](const trainer::Dataset& d, const char* split) {
      const std::size_t bytes = d.size() * (16 + d.image_bytes());
      const std::size_t per_shard = (bytes + static_cast<std::size_t>(opt.shards) - 1) / static_cast<std::size_t>(opt.shards);
      const auto paths = trainer::pack_records(d, opt.output, split, per_shard);
      std::printf("%s: %zu images -> %zu record files in %s\n", split, d.size(), paths.size(), opt.output.c_str());
    };
    if (opt.split != "test") pack(data.train, "train");
    if (opt.split != "train") pack(data.test, "test");
    return 0;
  });
}

}  // namespace gradzip::cli
