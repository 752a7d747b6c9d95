// The `gradzip` executable: dispatches `gradzip <command> [options]` to cmd_<command>.
// Exit codes: 0 ok, 1 failure, 2 usage error (one line on stderr), 3 not implemented.
#include <cstring>
#include <iostream>

#include "experiments/cli.h"
#include "experiments/commands.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

// The command table: one row per experiments/cmd_<name>.cc.
const Command kCommands[] = {
    {"train", "train a model with compressed gradients; writes a run directory", gradzip::cli::cmd_train},
    {"launch", "start the shards and workers of a run as processes", gradzip::cli::cmd_launch},
    {"ps", "run one parameter-server shard", gradzip::cli::cmd_ps},
    {"worker", "run one training worker", gradzip::cli::cmd_worker},
    {"pack", "pack a dataset into gradzip's binary format", gradzip::cli::cmd_pack},
    {"compressors", "list codecs and error-feedback memories with their parameters", gradzip::cli::cmd_compressors},
    {"placement", "show how parameters are placed on shards", gradzip::cli::cmd_placement},
    {"report", "compare run directories: table and figures", gradzip::cli::cmd_report},
    {"sweep", "run a sweep file (codecs x workers x links x seeds), resumable", gradzip::cli::cmd_sweep},
    {"keys", "write CURVE key pairs for the shards and workers of a run", gradzip::cli::cmd_keys},
    {"version", "print version and build information", gradzip::cli::cmd_version},
};

void print_usage(std::ostream& os) {
  os << "usage: gradzip <command> [options]\n"
        "Low-precision gradient communication: compressors, parameter server, experiments.\n\n"
        "Commands:\n";
  for (const auto& c : kCommands) {
    os << "  " << c.name << std::string(14 - std::strlen(c.name), ' ') << c.summary << "\n";
  }
  os << "\n'gradzip <command> --help' lists a command's options; every command accepts\n"
        "--config FILE (INI; the command line overrides it) and --print-config.\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "gradzip: missing command (see 'gradzip --help')\n";
    return gradzip::cli::kExitUsage;
  }
  const char* name = argv[1];
  if (!std::strcmp(name, "--help") || !std::strcmp(name, "-h") || !std::strcmp(name, "help")) {
    print_usage(std::cout);
    return gradzip::cli::kExitOk;
  }
  if (!std::strcmp(name, "--version")) return gradzip::cli::cmd_version(1, argv + 1);
  for (const auto& c : kCommands) {
    if (!std::strcmp(name, c.name)) return c.run(argc - 1, argv + 1);
  }
  std::cerr << "gradzip: unknown command '" << name << "' (see 'gradzip --help')\n";
  return gradzip::cli::kExitUsage;
}
