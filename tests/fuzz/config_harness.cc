// Fuzz harness of the CLI's INI config reader (experiments/cli.h): `gradzip train
// --config FILE` with the shared option groups bound. A bad file is a UsageError (exit
// code 2), nothing else; an accepted file's resolved configuration, printed as INI
// (--print-config) and read back, gives the same values (the README's promise).
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "experiments/cli.h"
#include "experiments/options.h"
#include "tests/fuzz/harness.h"
#include "tests/fuzz/util.h"

namespace gradzip::fuzz {
namespace {

/// Every option group shared by train/ps/worker/launch, plus a signed 64-bit option (the
/// one binding kind the groups do not use).
struct AllOptions {
  cli::OptimizerOptions optimizer;
  cli::CompressionOptions compression;
  cli::TopologyOptions topology;
  cli::ModelDataOptions model_data;
  cli::RunOptions run;
  std::int64_t offset = 0;
};

using Values = std::vector<std::pair<std::string, std::string>>;

/// The option table, built once (it is the expensive part); its fields live in `options`.
struct Command {
  AllOptions options;
  cli::OptionTable table{"train", "fuzz harness"};
  Command() {
    cli::bind_optimizer_options(&table, &options.optimizer);
    cli::bind_compression_options(&table, &options.compression);
    cli::bind_topology_options(&table, &options.topology);
    cli::bind_model_data_options(&table, &options.model_data);
    cli::bind_run_options(&table, &options.run);
    table.add("offset", &options.offset, "a signed 64-bit option", cli::Range{-1e12, 1e12});
  }
};

/// Parses `gradzip train --config path` from the defaults; true and the resolved values
/// when accepted, false on a UsageError. Any other exception propagates (a failure).
bool parse_config(const std::string& path, Values* values, std::string* ini) {
  static Command command;
  command.options = AllOptions{};
  const char* argv[] = {"train", "--config", path.c_str()};
  std::ostringstream out;
  try {
    const cli::ParseOutcome outcome = command.table.parse(3, argv, out);
    GRADZIP_FUZZ_REQUIRE(outcome == cli::ParseOutcome::kRun, "a config file asked for --help or --print-config");
  } catch (const cli::UsageError& e) {
    GRADZIP_FUZZ_REQUIRE(std::string(e.what()).find('\n') == std::string::npos, "a UsageError spans several lines");
    return false;
  }
  *values = command.table.values();
  *ini = command.table.to_ini();
  return true;
}

}  // namespace

void config(const std::uint8_t* data, std::size_t size) {
  static ScratchFile file("config.ini");
  static ScratchFile printed("printed.ini");
  file.write(data, size);
  Values values;
  std::string ini;
  if (!parse_config(file.path(), &values, &ini)) return;
  printed.write(ini);
  Values again;
  std::string ini_again;
  GRADZIP_FUZZ_REQUIRE(parse_config(printed.path(), &again, &ini_again), "--print-config output of an accepted file is refused");
  GRADZIP_FUZZ_REQUIRE(again == values, "--print-config output does not reproduce the configuration");
}

}  // namespace gradzip::fuzz
