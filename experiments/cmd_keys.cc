// `gradzip keys`: writes the CURVE key directory of a run (experiments/curve_keys.h): one
// server key pair for the shards, one key pair per worker, and the shards' list of
// authorized worker keys. Use it with `--curve-keys DIR` on train, launch, ps and worker.
#include <iostream>

#include "experiments/commands.h"
#include "experiments/curve_keys.h"

namespace gradzip::cli {

int cmd_keys(int argc, char** argv) {
  std::string out = "keys";
  int workers = 2;
  bool force = false;
  OptionTable table("keys", "Write CURVE key pairs for the shards and workers of a run (for --curve-keys DIR).");
  table.group("Keys");
  table.add("out", &out, "directory to write server.key, server.pub, authorized_keys and worker<R>.key into");
  table.add("workers", &workers, "number of worker key pairs (worker0.key ...)", Range{1, 4096});
  table.add("force", &force, "replace existing key files");
  return run_command(table, argc, argv, [&] {
    for (const auto& f : experiments::write_curve_key_dir(out, static_cast<std::uint32_t>(workers), force)) {
      std::cout << f << "\n";
    }
    return static_cast<int>(kExitOk);
  });
}

}  // namespace gradzip::cli
